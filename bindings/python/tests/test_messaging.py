"""Login, message channels, user channels and their error codes — each test against the
embedded server and against `rtm2 serve` (the `endpoint` fixture)."""

from __future__ import annotations

import asyncio
from typing import Optional

import pytest
import rtm2
from conftest import WAIT, expect, raises, uid
from rtm2 import ErrorCode as E


async def test_login_logout_and_link_state(make_client, endpoint: Optional[str]) -> None:
    c = make_client(endpoint=endpoint)
    states = c.events("link_state")
    assert c.link_state == "IDLE"
    await c.login(timeout=WAIT)
    assert c.link_state == "CONNECTED"
    ev = await expect(states, "CONNECTED", lambda e: e.current == "CONNECTED")
    assert (ev.previous, ev.service_type, ev.reason, ev.operation) == (
        "CONNECTING",
        "MESSAGE",
        "LOGIN_SUCCESS",
        "LOGIN",
    )
    await raises(E.DUPLICATE_OPERATION, c.login(), rtm2.ClientError)
    await c.logout()
    assert c.link_state == "IDLE"
    ev = await expect(states, "IDLE", lambda e: e.current == "IDLE")
    assert ev.reason == "LOGOUT"
    assert (ev.reason_number, ev.reason_name) == (7, "LOGOUT")
    # Logged in again after a logout.
    await c.login()
    assert c.link_state == "CONNECTED"


async def test_pubsub_string_binary_custom_type(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    await alice.login()
    await bob.login()
    room = uid("room")
    bob_sub = await bob.subscribe(room)
    alice_sub = await alice.subscribe(room)
    assert bob_sub.channel == room and bob.subscribed_channels == [room]

    await alice.publish(room, "hello bob", custom_type="text")
    await alice.publish(room, b"\x00\x01\x02\xff")
    await alice.publish(room, bytearray(b"ba"))
    await alice.publish(room, memoryview(b"mv"))

    m = await bob_sub.recv(timeout=WAIT)
    assert m is not None
    assert (m.channel, m.channel_type, m.publisher, m.topic) == (room, "MESSAGE", alice.user_id, "")
    assert (m.message_type, m.message, m.custom_type) == ("STRING", "hello bob", "text")
    assert isinstance(m.message, str) and m.timestamp > 1_600_000_000_000
    assert "message='hello bob'" in repr(m) and repr(m).startswith("MessageEvent(")
    assert m.to_dict()["publisher"] == alice.user_id
    m2 = await bob_sub.recv(timeout=WAIT)
    assert m2 is not None
    assert (m2.message_type, m2.message, m2.custom_type) == ("BINARY", b"\x00\x01\x02\xff", "")
    assert isinstance(m2.message, bytes)
    assert m2 != m and m == m
    assert [(await bob_sub.recv(timeout=WAIT)).message for _ in range(2)] == [b"ba", b"mv"]  # type: ignore[union-attr]

    # Own messages are echoed by default.
    echo = await alice_sub.recv(timeout=WAIT)
    assert echo is not None and echo.message == "hello bob" and echo.publisher == alice.user_id

    # Unsubscribe ends the iteration; a second one is 11002.
    await bob.unsubscribe(room)
    assert await bob_sub.recv(timeout=WAIT) is None
    got = [m async for m in bob_sub]
    assert got == []
    await raises(E.CHANNEL_NOT_SUBSCRIBED, bob.unsubscribe(room), rtm2.ChannelError)


async def test_many_messages_arrive_in_order_and_in_batches(make_client, endpoint: Optional[str]) -> None:
    a = make_client(endpoint=endpoint)
    await a.login()
    room = uid("room")
    sub = await a.subscribe(room)
    n = 300
    for i in range(n):
        await a.publish(room, f"m{i}")
    # Read through the native receiver to see the batches.
    native = sub._native
    got: list = []
    waits = 0
    while len(got) < n:
        assert await asyncio.wait_for(native.wait(1000), WAIT)
        waits += 1
        got.extend(ev.message for ev in native.take(1000))
    assert got == [f"m{i}" for i in range(n)]
    assert waits < n / 2, f"{waits} crossings for {n} messages: not batched"


async def test_own_messages_can_be_turned_off(make_client, endpoint: Optional[str]) -> None:
    me = make_client(endpoint=endpoint, receive_own_messages=False)
    other = make_client(endpoint=endpoint)
    await me.login()
    await other.login()
    room = uid("room")
    sub = await me.subscribe(room)
    await me.publish(room, "from me")
    await other.publish(room, "from other")
    m = await sub.recv(timeout=WAIT)
    assert m is not None and m.message == "from other"


async def test_peer_to_peer_and_offline_receiver(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob_id = uid("bob")
    await alice.login()
    err = await raises(
        E.CHANNEL_RECEIVER_OFFLINE, alice.publish(bob_id, "are you there?", channel_type="USER"), rtm2.ChannelError
    )
    assert err.operation == "publish"

    bob = make_client(bob_id, endpoint)
    inbox = bob.events("message")
    await bob.login()
    await alice.publish(bob_id, "hi bob", channel_type="USER", custom_type="dm")
    m = await expect(inbox, "peer message", lambda e: True)
    assert (m.channel_type, m.channel, m.publisher, m.message, m.custom_type) == (
        "USER",
        bob_id,
        alice.user_id,
        "hi bob",
        "dm",
    )
    await bob.logout()
    await raises(E.CHANNEL_RECEIVER_OFFLINE, alice.publish(bob_id, "gone?", channel_type="USER"))


async def test_errors_carry_exact_codes(make_client, endpoint: Optional[str]) -> None:
    a = make_client(endpoint=endpoint)

    # Before login.
    err = await raises(E.NOT_LOGIN, a.publish("c", "x"), rtm2.LoginError)
    assert err.operation == "publish"
    await raises(E.NOT_LOGIN, a.subscribe("c"), rtm2.LoginError)
    await raises(E.NOT_LOGIN, a.stream_channel("s").join())

    await a.login()
    # Names.
    for bad in ["", "_x", "c" * 65, "null", "bad/slash", "é"]:
        await raises(E.INVALID_CHANNEL_NAME, a.publish(bad, "x"), rtm2.InvalidArgumentError)
    await raises(E.INVALID_CHANNEL_NAME, a.subscribe("_bad"), rtm2.InvalidArgumentError)
    await raises(E.INVALID_USER_ID, a.publish("bad user!\n", "x", channel_type="USER"))
    await a.publish("c" * 64, "x")
    # Payloads: 32 KiB is the limit (payload + customType).
    await raises(E.CHANNEL_INVALID_MESSAGE, a.publish("c", ""))
    await a.publish("c", b"\x07" * 32 * 1024)
    err = await raises(E.CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION, a.publish("c", b"\x07" * (32 * 1024 + 1)))
    assert isinstance(err, ValueError)
    await raises(E.CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION, a.publish("c", "s" * (32 * 1024 + 1)))
    await raises(E.CHANNEL_CUSTOM_TYPE_LENGTH_OVERFLOW, a.publish("c", "x", custom_type="t" * 33))
    await a.publish("c", "x", custom_type="t" * 32)
    await raises(E.INVALID_CHANNEL_TYPE, a.publish("c", "x", channel_type="STREAM"))  # type: ignore[arg-type]
    await a.publish("c", "x", store_in_history=True)  # stored (see test_history.py)

    # 50 subscribed channels are fine, the 51st is not; re-subscribing is an update.
    prefix = uid("ch")
    subs = [await a.subscribe(f"{prefix}-{i}") for i in range(50)]
    assert len(a.subscribed_channels) == 50
    await raises(E.CHANNEL_INSTANCE_EXCEED_LIMITATION, a.subscribe(f"{prefix}-50"), rtm2.ChannelError)
    await a.subscribe(f"{prefix}-0", with_presence=False)
    del subs

    # Parameters.
    for bad in [{"no_such_key": 1}, {"request_timeout_ms": 5}, "not json", "[1]"]:
        try:
            a.set_parameters(bad)  # type: ignore[arg-type]
        except rtm2.InvalidArgumentError as e:
            assert e.code == E.INVALID_PARAMETER
        else:
            raise AssertionError(f"set_parameters({bad!r}) did not fail")

    await a.logout()
    await raises(E.NOT_LOGIN, a.publish("c", "x"))


async def test_events_end_when_the_client_closes(make_client, endpoint: Optional[str]) -> None:
    c = make_client(endpoint=endpoint)
    stream = c.events()
    await c.login()
    room = uid("room")
    sub = await c.subscribe(room)
    await c.publish(room, "last")
    m = await sub.recv(timeout=WAIT)
    assert m is not None and m.message == "last"
    await c.close()
    # What was delivered before the close is still read, then both iterations end.
    kinds = [type(ev).__name__ async for ev in stream]
    assert "MessageEvent" in kinds and kinds[-1] == "LinkStateEvent", kinds
    assert [m async for m in sub] == []
    assert c.closed


async def test_rate_limits_of_a_default_server(make_client) -> None:
    from conftest import Server, serve_supports

    if not serve_supports("--no-rate-limits"):
        pytest.skip("this rtm2 serve has no per-client rate limits")
    server = Server()  # the reference limits: 60 publishes per second per client
    try:
        a = make_client(endpoint=server.address)
        await a.login()
        with pytest.raises(rtm2.ClientError) as info:
            for i in range(200):
                await asyncio.wait_for(a.publish("burst", f"m{i}"), WAIT)
        assert info.value.code == E.OPERATION_RATE_EXCEED_LIMITATION
        assert i >= 59, f"limited after only {i} publishes"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def reference_server():
    """`rtm2 serve` with the reference rate limits (the shared servers turn them off)."""
    from conftest import Server

    s = Server()
    yield s
    s.stop()


@pytest.mark.parametrize("where", ["embedded", "serve"])
async def test_a_third_subscribe_of_one_channel_within_5_s_is_11020(make_client, reference_server, where) -> None:
    # The embedded server keeps this reference rule though its throughput limits are off.
    endpoint = None if where == "embedded" else str(reference_server.address)
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    await alice.login()
    await bob.login()
    busy = uid("busy")
    for _ in range(2):
        await alice.subscribe(busy)
        await alice.unsubscribe(busy)
    err = await raises(E.CHANNEL_SUBSCRIBE_TOO_FREQUENT, alice.subscribe(busy), rtm2.ChannelError)
    assert err.operation == "subscribe"
    assert "2 times within 5 s" in err.reason, err.reason
    assert alice.subscribed_channels == []
    # Per channel and per client.
    await alice.subscribe(uid("calm"))
    await bob.subscribe(busy)
