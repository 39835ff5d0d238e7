"""Against `rtm2 serve` with an app certificate: tokens, expiry notices, renewal, takeover."""

from __future__ import annotations

import asyncio
import time

import rtm2
from conftest import APP_ID, CERT, WAIT, expect, raises, uid
from rtm2 import ErrorCode as E


def is_link(state: str, service: str = "MESSAGE"):
    return lambda e: isinstance(e, rtm2.LinkStateEvent) and e.current == state and e.service_type == service


async def test_bad_tokens_are_refused(make_client, cert_server) -> None:
    user = uid("alice")
    c = make_client(user, cert_server.address)
    states = c.events("link_state")
    err = await raises(E.INVALID_TOKEN, c.login(""), rtm2.LoginError)
    assert err.operation == "login"
    ev = await expect(states, "FAILED after a bad token", is_link("FAILED"))
    assert ev.reason_code > 0
    await raises(E.INVALID_TOKEN, c.login(rtm2.build_token(APP_ID, CERT, "mallory", 600)))
    await raises(E.INVALID_TOKEN, c.login(rtm2.build_token(APP_ID, "0" * 32, user, 600)))
    await raises(E.INVALID_TOKEN, c.login("006garbage"))
    other_app = "a" * 32
    await raises(E.INCONSISTENT_APPID, c.login(rtm2.build_token(other_app, CERT, user, 600)))
    # Another app's token signed with that app's own certificate: the app id is checked first.
    await raises(E.INCONSISTENT_APPID, c.login(rtm2.build_token(other_app, "b" * 32, user, 600)))
    await c.login(rtm2.build_token(APP_ID, CERT, user, 600))
    assert c.link_state == "CONNECTED"

    # Stream channels need their own token.
    name = uid("secure")
    sc = c.stream_channel(name)
    await raises(E.INVALID_TOKEN, sc.join())
    await raises(E.INVALID_TOKEN, sc.join(rtm2.build_stream_token(APP_ID, CERT, "other", user, 600)))
    await raises(E.INCONSISTENT_APPID, sc.join(rtm2.build_stream_token(other_app, "b" * 32, name, user, 600)))
    await sc.join(rtm2.build_stream_token(APP_ID, CERT, name, user, 600))
    assert sc.is_joined


async def test_token_will_expire_then_renew(make_client, cert_server) -> None:
    user = uid("alice")
    c = make_client(user, cert_server.address)
    renewed = asyncio.Event()
    notices = []

    @c.on("token_privilege_will_expire")
    async def renew(ev: rtm2.TokenPrivilegeWillExpireEvent) -> None:
        notices.append(ev)
        await c.renew_token(rtm2.build_token(APP_ID, CERT, user, 600))
        renewed.set()

    states: list = []
    c.on("link_state", states.append)
    issued = int(time.time())
    await c.login(rtm2.build_token(APP_ID, CERT, user, 3))
    await asyncio.wait_for(renewed.wait(), WAIT)
    assert [n.channel for n in notices] == [None]
    await raises(E.INVALID_TOKEN, c.renew_token("garbage"), rtm2.LoginError)
    # Let the first token's lifetime pass on the wall clock: the session survives it.
    await asyncio.sleep(max(0.0, issued + 3 + 2 - time.time()))
    room = uid("room")
    sub = await c.subscribe(room)
    await c.publish(room, "still here")
    m = await sub.recv(timeout=WAIT)
    assert m is not None and m.message == "still here"
    assert c.link_state == "CONNECTED"
    # The link never left CONNECTED (the handler saw every change, in order, before the message).
    assert [e.current for e in states] == ["CONNECTING", "CONNECTED"], states


async def test_same_user_id_takes_over(make_client, cert_server) -> None:
    user = uid("alice")
    first = make_client(user, cert_server.address)
    second = make_client(user, cert_server.address)
    await first.login(rtm2.build_token(APP_ID, CERT, user, 600))
    states = first.events("link_state")
    await second.login(rtm2.build_token(APP_ID, CERT, user, 600))
    ev = await expect(states, "FAILED by takeover", is_link("FAILED"))
    assert (ev.reason, ev.reason_code, ev.previous) == ("SAME_UID_LOGIN", 27, "CONNECTED")
    # The reason in the shape every binding uses: number, name, words.
    assert (ev.reason_number, ev.reason_name) == (27, "SAME_UID_LOGIN")
    assert ev.reason_text, "the takeover says why in words"
    assert first.link_state == "FAILED"
    await raises(E.NOT_LOGIN, first.publish("x", "y"), rtm2.LoginError)
    assert second.link_state == "CONNECTED"
