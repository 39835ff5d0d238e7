"""Presence: who_now / where_now, user state (cached before entering, applied on entry), the
presence events (SNAPSHOT, REMOTE_JOIN, REMOTE_LEAVE, REMOTE_TIMEOUT, REMOTE_STATE_CHANGED,
INTERVAL), be_quiet, stream channels, paging and the error codes."""

from __future__ import annotations

from typing import Any, Callable, Optional

import pytest
import rtm2
from conftest import Server, expect, raises, uid, unlimited
from rtm2 import ErrorCode as E


def presence(kind: str, channel: str, publisher: Optional[str] = None) -> Callable[[Any], bool]:
    return lambda e: (
        isinstance(e, rtm2.PresenceEvent)
        and e.event_type == kind
        and e.channel == channel
        and (publisher is None or e.publisher == publisher)
    )


def ids(users: Any) -> set:
    return {u.user_id for u in users}


async def test_state_snapshot_join_leave_and_state_events(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    carol = make_client(uid("carol"), endpoint)
    for c in (alice, bob, carol):
        await c.login()
    a_ev = alice.events("presence")
    b_ev = bob.events("presence")
    room = uid("lobby")

    # Set before subscribing: kept locally (no one sees it yet), applied on subscribe.
    await alice.presence.set_state(room, {"mood": "happy"})
    await raises(E.PRESENCE_USER_NOT_EXIST, carol.presence.get_state(room, alice.user_id), rtm2.PresenceError)
    await alice.subscribe(room)
    snap = await expect(a_ev, "alice's SNAPSHOT", presence("SNAPSHOT", room))
    assert snap.event_type == rtm2.PresenceEventType.SNAPSHOT
    assert (snap.channel_type, snap.publisher, snap.states, snap.interval) == ("MESSAGE", "", {}, None)
    assert [(u.user_id, u.states) for u in snap.snapshot] == [(alice.user_id, {"mood": "happy"})]
    assert snap.timestamp > 0

    await bob.subscribe(room)
    snap = await expect(b_ev, "bob's SNAPSHOT", presence("SNAPSHOT", room))
    assert {u.user_id: u.states for u in snap.snapshot} == {alice.user_id: {"mood": "happy"}, bob.user_id: {}}
    join = await expect(a_ev, "REMOTE_JOIN of bob", presence("REMOTE_JOIN", room))
    assert (join.publisher, join.channel_type, join.snapshot, join.interval) == (bob.user_id, "MESSAGE", (), None)
    st = await bob.presence.get_state(room, alice.user_id)
    assert isinstance(st, rtm2.UserState)
    assert (st.user_id, st.states) == (alice.user_id, {"mood": "happy"})

    # Every change reaches the others as one REMOTE_STATE_CHANGED with the full state.
    await bob.presence.set_state(room, [("role", "host"), ("seat", "1")])
    ev = await expect(a_ev, "state of bob", presence("REMOTE_STATE_CHANGED", room, bob.user_id))
    assert ev.states == {"role": "host", "seat": "1"}
    await bob.presence.set_state(room, {"seat": "2"})
    ev = await expect(a_ev, "seat 2", presence("REMOTE_STATE_CHANGED", room, bob.user_id))
    assert ev.states == {"role": "host", "seat": "2"}
    await bob.presence.remove_state(room, ["seat"])
    ev = await expect(a_ev, "seat removed", presence("REMOTE_STATE_CHANGED", room, bob.user_id))
    assert ev.states == {"role": "host"}

    # Asking needs no subscription.
    r = await carol.presence.get_online_users(room)
    assert isinstance(r, rtm2.OnlineUsers)
    assert ids(r.occupants) == {alice.user_id, bob.user_id} and r.total_occupancy == 2 and r.next_page == ""
    assert all(u.states == {} for u in r.occupants)  # include_state defaults to False
    r = await carol.presence.who_now(room, include_state=True)
    assert {u.user_id: u.states for u in r.occupants} == {
        alice.user_id: {"mood": "happy"},
        bob.user_id: {"role": "host"},
    }
    r = await carol.presence.who_now(room, include_user_id=False)
    assert (r.occupants, r.total_occupancy) == ((), 2)
    chs = await carol.presence.get_user_channels(alice.user_id)
    assert all(isinstance(c, rtm2.ChannelInfo) for c in chs)
    assert [(c.channel, c.channel_type) for c in chs] == [(room, "MESSAGE")]
    assert [(c.channel, c.channel_type) for c in await alice.presence.where_now()] == [(room, "MESSAGE")]
    assert await carol.presence.where_now() == []

    # Removing every key: others see the empty state.
    await bob.presence.remove_state(room)
    ev = await expect(a_ev, "state cleared", presence("REMOTE_STATE_CHANGED", room, bob.user_id))
    assert ev.states == {}
    assert (await carol.presence.get_state(room, bob.user_id)).states == {}

    # Leaving removes the user and its state.
    await bob.unsubscribe(room)
    ev = await expect(a_ev, "REMOTE_LEAVE of bob", presence("REMOTE_LEAVE", room, bob.user_id))
    assert ev.channel_type == "MESSAGE"
    await raises(E.PRESENCE_USER_NOT_EXIST, carol.presence.get_state(room, bob.user_id))
    assert ids((await carol.presence.who_now(room)).occupants) == {alice.user_id}

    # A logout is a leave, not a timeout.
    await alice.presence.set_state(room, {"mood": "tired"})
    await bob.subscribe(room)
    await alice.logout()
    ev = await expect(b_ev, "REMOTE_LEAVE of alice", presence("REMOTE_LEAVE", room, alice.user_id))
    assert ev.publisher == alice.user_id


async def test_be_quiet_without_presence_and_stream_channels(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    carol = make_client(uid("carol"), endpoint)
    for c in (alice, bob, carol):
        await c.login()
    a_ev = alice.events("presence")
    c_ev = carol.events("presence")
    room = uid("room")
    await alice.subscribe(room)
    await expect(a_ev, "SNAPSHOT", presence("SNAPSHOT", room))

    # be_quiet: sees everyone (itself too), is seen by no one.
    await carol.subscribe(room, be_quiet=True)
    snap = await expect(c_ev, "carol's SNAPSHOT", presence("SNAPSHOT", room))
    assert ids(snap.snapshot) == {alice.user_id, carol.user_id}
    await carol.presence.set_state(room, {"hidden": "yes"})
    r = await bob.presence.who_now(room)
    assert ids(r.occupants) == {alice.user_id} and r.total_occupancy == 1
    assert await bob.presence.where_now(carol.user_id) == []
    # Without presence: not present, no presence events.
    await bob.subscribe(room, with_presence=False)
    assert ids((await carol.presence.who_now(room)).occupants) == {alice.user_id}
    # The next event alice gets is about dave: nothing was announced about carol or bob.
    dave = make_client(uid("dave"), endpoint)
    await dave.login()
    await dave.subscribe(room)
    ev = await expect(a_ev, "an event", lambda e: isinstance(e, rtm2.PresenceEvent))
    assert (ev.event_type, ev.publisher) == ("REMOTE_JOIN", dave.user_id)
    ev = await expect(c_ev, "REMOTE_JOIN of dave", presence("REMOTE_JOIN", room, dave.user_id))

    # A stream channel of the same name is another channel.
    sc = alice.stream_channel(room)
    await sc.join()
    snap = await expect(a_ev, "stream SNAPSHOT", presence("SNAPSHOT", room))
    assert snap.channel_type == "STREAM" and ids(snap.snapshot) == {alice.user_id}
    r = await bob.presence.who_now(room, channel_type=rtm2.ChannelType.STREAM)
    assert ids(r.occupants) == {alice.user_id} and r.total_occupancy == 1
    chs = await bob.presence.where_now(alice.user_id)
    assert {(c.channel_type, c.channel) for c in chs} == {("MESSAGE", room), ("STREAM", room)}
    b_ev = bob.events("presence")
    bob_sc = bob.stream_channel(room)
    await bob_sc.join()
    await alice.presence.set_state(room, {"on": "stage"}, channel_type="STREAM")
    ev = await expect(b_ev, "stream state", presence("REMOTE_STATE_CHANGED", room, alice.user_id))
    assert (ev.channel_type, ev.states) == ("STREAM", {"on": "stage"})
    st = await bob.presence.get_state(room, alice.user_id, channel_type="STREAM")
    assert st.states == {"on": "stage"}
    # join passes be_quiet and with_presence too.
    await carol.stream_channel(room).join(be_quiet=True)
    await dave.stream_channel(room).join(with_presence=False)
    r = await bob.presence.who_now(room, channel_type="STREAM")
    assert ids(r.occupants) == {alice.user_id, bob.user_id} and r.total_occupancy == 2
    assert (await bob.presence.get_state(room, alice.user_id)).states == {}
    await sc.leave()
    ev = await expect(b_ev, "stream REMOTE_LEAVE", presence("REMOTE_LEAVE", room, alice.user_id))
    assert ev.channel_type == "STREAM"
    assert [(c.channel_type, c.channel) for c in await bob.presence.where_now(alice.user_id)] == [("MESSAGE", room)]


async def test_who_now_pages(make_client) -> None:
    server = Server("--presence-page-size", "2", *unlimited())
    try:
        users = [make_client(uid(f"p{i}"), server.address) for i in range(5)]
        room = uid("paged")
        for u in users:
            await u.login()
            await u.subscribe(room)
            await u.presence.set_state(room, {"n": u.user_id})
        asker = users[0]
        seen = []
        page = ""
        pages = 0
        while True:
            r = await asker.presence.who_now(room, include_state=True, page=page)
            pages += 1
            assert len(r.occupants) <= 2 and r.total_occupancy == 5
            seen += [(u.user_id, u.states["n"]) for u in r.occupants]
            page = r.next_page
            if not page:
                break
            assert pages < 5, "next_page never ended"
        assert pages == 3
        assert sorted(seen) == sorted((u.user_id, u.user_id) for u in users)
        await raises(E.PRESENCE_INVALID_ARGUMENT, asker.presence.who_now(room, page="_not a page"))
    finally:
        server.stop()


async def test_a_vanished_user_times_out(make_client, fast_server, ghosts) -> None:
    alice = make_client(uid("alice"), fast_server.address)
    await alice.login()
    room = uid("room")
    events = alice.events("presence")
    await alice.subscribe(room)
    dave = uid("dave")
    ghost = await ghosts(fast_server.address, dave, room)
    await expect(events, "REMOTE_JOIN of the ghost", presence("REMOTE_JOIN", room, dave))
    assert ids((await alice.presence.who_now(room)).occupants) == {alice.user_id, dave}
    ghost.kill()
    ev = await expect(events, "REMOTE_TIMEOUT", presence("REMOTE_TIMEOUT", room, dave))
    assert ev.event_type == rtm2.PresenceEventType.REMOTE_TIMEOUT and ev.channel_type == "MESSAGE"
    assert ids((await alice.presence.who_now(room)).occupants) == {alice.user_id}
    await raises(E.PRESENCE_USER_NOT_EXIST, alice.presence.get_state(room, dave))


async def test_interval_mode(make_client) -> None:
    # More than 2 users present: changes come as one INTERVAL event per 300 ms.
    server = Server("--presence-announce-max", "2", "--presence-interval-ms", "300", *unlimited())
    try:
        a, b, c, d = (make_client(uid(n), server.address) for n in "abcd")
        for x in (a, b, c, d):
            await x.login()
        room = uid("room")
        a_ev = a.events("presence")
        await a.subscribe(room)
        await b.subscribe(room)
        await expect(a_ev, "REMOTE_JOIN of b", presence("REMOTE_JOIN", room, b.user_id))
        await c.subscribe(room)
        ev = await expect(a_ev, "INTERVAL", presence("INTERVAL", room))
        assert ev.event_type == rtm2.PresenceEventType.INTERVAL and ev.publisher == ""
        iv = ev.interval
        assert isinstance(iv, rtm2.PresenceInterval)
        assert (iv.joined, iv.left, iv.timed_out, iv.total_occupancy) == ((c.user_id,), (), (), 3)
        await c.presence.set_state(room, {"k": "v"})
        ev = await expect(a_ev, "INTERVAL with a state", presence("INTERVAL", room))
        assert ev.interval.joined == ()
        assert [(u.user_id, u.states) for u in ev.interval.states] == [(c.user_id, {"k": "v"})]
        await d.subscribe(room)
        await b.unsubscribe(room)
        got = {"joined": set(), "left": set()}
        while got != {"joined": {d.user_id}, "left": {b.user_id}}:
            ev = await expect(a_ev, "INTERVAL with d and b", presence("INTERVAL", room))
            got["joined"] |= set(ev.interval.joined)
            got["left"] |= set(ev.interval.left)
        assert ev.interval.total_occupancy == 3
        # Back at the threshold: per-user events again.
        await c.unsubscribe(room)
        await expect(a_ev, "REMOTE_LEAVE of c", presence("REMOTE_LEAVE", room, c.user_id))
    finally:
        server.stop()


async def test_presence_errors(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    room = uid("room")
    await raises(E.NOT_LOGIN, alice.presence.who_now(room), rtm2.LoginError)
    await raises(E.NOT_LOGIN, alice.presence.where_now())
    await alice.login()
    await alice.subscribe(room)
    p = alice.presence
    await raises(E.PRESENCE_INVALID_ARGUMENT, p.who_now(room, include_user_id=False, include_state=True))
    await raises(E.INVALID_CHANNEL_TYPE, p.who_now(room, channel_type="USER"), rtm2.InvalidArgumentError)  # type: ignore[arg-type]
    await raises(E.INVALID_CHANNEL_NAME, p.who_now("_bad"), rtm2.InvalidArgumentError)
    await raises(E.INVALID_USER_ID, p.where_now("a" * 65))
    await raises(E.INVALID_USER_ID, p.get_state(room, ""))
    # Limits: 32 pairs (counted with the existing ones), key <= 32 bytes, value <= 16 KB.
    await raises(E.PRESENCE_STATE_COUNT_OVERFLOW, p.set_state(room, {f"k{i}": "v" for i in range(33)}))
    err = await raises(E.PRESENCE_STATE_KEY_SIZE_OVERFLOW, p.set_state(room, {"x" * 33: "v"}))
    assert err.operation == "set_state"
    await raises(E.PRESENCE_STATE_VALUE_SIZE_OVERFLOW, p.set_state(room, {"big": "x" * 16385}))
    await p.set_state(room, {"big": "x" * 16384})
    await raises(E.PRESENCE_INVALID_STATE_KEY, p.set_state(room, {"_x": "1"}), rtm2.InvalidArgumentError)
    await raises(E.PRESENCE_STATE_DUPLICATE_KEY, p.set_state(room, [("a", "1"), ("a", "2")]))
    await raises(E.PRESENCE_INVALID_ARGUMENT, p.set_state(room, {}))
    await raises(E.INVALID_CHANNEL_TYPE, p.set_state(room, {"a": "b"}, channel_type="USER"))  # type: ignore[arg-type]
    await raises(E.PRESENCE_INVALID_STATE_KEY, p.remove_state(room, ["_x"]))
    # A state never has more than 32 keys: removing more at once is refused (as in C).
    await raises(E.PRESENCE_STATE_COUNT_OVERFLOW, p.remove_state(room, [f"k{i}" for i in range(33)]))
    await p.set_state(room, {f"k{i}": "v" for i in range(31)})  # 32 with "big"
    await raises(E.PRESENCE_STATE_COUNT_OVERFLOW, p.set_state(room, {"one": "more"}))
    await p.set_state(room, {"k0": "overwritten"})  # an existing key adds nothing
    # At most 100 channels' state is kept before entering them.
    bob = make_client(uid("bob"), endpoint)
    await bob.login()
    for i in range(100):
        await bob.presence.set_state(f"later{i}-{room}", {"a": "b"})
    err = await raises(E.PRESENCE_CACHED_TOO_MANY_STATES, bob.presence.set_state(f"later100-{room}", {"a": "b"}))
    assert isinstance(err, rtm2.PresenceError)
    await bob.presence.set_state(f"later5-{room}", {"c": "d"})  # a channel already kept is fine
    await bob.subscribe(f"later7-{room}")
    await bob.presence.remove_state(f"later8-{room}")  # forgets a kept state, locally
    await bob.presence.set_state(f"later100-{room}", {"a": "b"})
    assert (await alice.presence.get_state(f"later7-{room}", bob.user_id)).states == {"a": "b"}


async def test_state_calls_before_login_are_refused_with_not_login(make_client) -> None:
    # A state set before login would be dropped by the login (which starts a new session
    # cache): it is refused instead, as is removing state.
    alice = make_client()
    room = uid("room")
    await raises(E.NOT_LOGIN, alice.presence.set_state(room, {"mood": "early"}), rtm2.LoginError)
    await raises(E.NOT_LOGIN, alice.presence.remove_state(room), rtm2.LoginError)
    await alice.login()
    await alice.presence.set_state(room, {"mood": "later"})  # kept until subscribing


async def test_the_100_kept_states_do_not_count_entered_channels(make_client) -> None:
    alice = make_client()
    await alice.login()
    room = uid("room")
    await alice.subscribe(room)
    await alice.presence.set_state(room, {"here": "yes"})  # present: set on the server
    for i in range(100):  # the reference keeps up to 100 channels not entered yet
        await alice.presence.set_state(f"later{i}-{room}", {"a": "b"})


async def test_arguments_the_binding_converts(make_client) -> None:
    c = make_client()
    p = c.presence
    assert repr(p).startswith("<rtm2.Presence of <rtm2.Client")
    assert p.who_now == p.get_online_users and p.where_now == p.get_user_channels
    await raises(E.INVALID_CHANNEL_TYPE, p.who_now("r", channel_type="BROADCAST"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await p.set_state("r", "a:b")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await p.set_state("r", {"a": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        await p.remove_state("r", "a")
    await raises(E.INVALID_PARAMETER, p.who_now("r", timeout=0))
    await c.close()
    await raises(E.INSTANCE_ALREADY_RELEASED, p.who_now("r"), rtm2.ClientError)
