"""Every call that changes something answers with a record: the names the call was about and
`timestamp`, the server's time of its answer in ms (agora-rtm-sdk's `{timestamp, channelName,
…}` responses); every call that returns data returns it with that `timestamp` too — checked
against the embedded server and `rtm2 serve`, the timestamp between a clock reading taken
before the call and one taken after it."""

from __future__ import annotations

import asyncio
import copy
import pickle
import sys
import time
from typing import Any, Awaitable, Dict, List, Optional, Tuple, TypeVar

import pytest
import rtm2
from conftest import WAIT, expect, uid

T = TypeVar("T")

RESPONSES: Dict[type, Tuple[str, ...]] = {
    rtm2.LoginResponse: (),
    rtm2.LogoutResponse: (),
    rtm2.RenewTokenResponse: ("channel",),
    rtm2.PublishResponse: ("channel",),
    rtm2.UnsubscribeResponse: ("channel",),
    rtm2.LeaveChannelResponse: ("channel",),
    rtm2.JoinTopicResponse: ("channel", "topic"),
    rtm2.LeaveTopicResponse: ("channel", "topic"),
    rtm2.PublishTopicMessageResponse: ("channel", "topic"),
    rtm2.UnsubscribeTopicResponse: ("channel", "topic"),
    rtm2.SetStateResponse: ("channel", "channel_type"),
    rtm2.RemoveStateResponse: ("channel", "channel_type"),
    rtm2.SetLockResponse: ("channel", "channel_type", "lock_name"),
    rtm2.RemoveLockResponse: ("channel", "channel_type", "lock_name"),
    rtm2.ReleaseLockResponse: ("channel", "channel_type", "lock_name"),
    rtm2.RevokeLockResponse: ("channel", "channel_type", "lock_name"),
    rtm2.SubscribeUserMetaResponse: ("user_id",),
    rtm2.UnsubscribeUserMetaResponse: ("user_id",),
}


# The results of the calls that return data: their fields, `timestamp` last.
DATA_RESPONSES: Dict[type, Tuple[str, ...]] = {
    rtm2.OnlineUsers: ("occupants", "total_occupancy", "next_page"),
    rtm2.GetUserChannelsResponse: ("channels", "total_channel"),
    rtm2.GetStateResponse: ("user_id", "states", "channel", "channel_type"),
    rtm2.MetadataWrite: ("major_revision", "total_count"),
    rtm2.GetChannelMetadataResponse: ("major_revision", "items", "channel", "channel_type"),
    rtm2.GetUserMetadataResponse: ("major_revision", "items", "user_id"),
    rtm2.GetLockResponse: ("channel", "channel_type", "lock_details", "total_locks"),
    rtm2.AcquireLockResponse: ("channel", "channel_type", "lock_name", "fencing_token"),
    rtm2.HistoryPage: ("messages", "count", "new_start"),
}


def now_ms() -> int:
    return int(time.time() * 1000)


async def timed(awaitable: Awaitable[T]) -> Tuple[T, int, int]:
    """The result of `awaitable` and the clock (ms) just before and just after awaiting it."""
    before = now_ms()
    result = await asyncio.wait_for(awaitable, WAIT)
    return result, before, now_ms()


def check(result: Any, cls: type, before: int, after: int, **fields: Any) -> None:
    """`result` is a `cls` with these fields, and its timestamp is in [before, after]."""
    assert type(result) is cls, f"expected {cls.__name__}, got {result!r}"
    assert result.to_dict() == {**fields, "timestamp": result.timestamp}, result
    assert isinstance(result.timestamp, int)
    assert before <= result.timestamp <= after, f"{result!r}: not in [{before}, {after}]"


def test_response_records() -> None:
    for cls, names in {**RESPONSES, **DATA_RESPONSES}.items():
        assert cls.__module__ == "rtm2", cls
        assert cls.__name__ in rtm2.__all__, cls
        assert cls.__match_args__ == (*names, "timestamp"), cls
    assert rtm2.JoinResult.__match_args__ == ("channel", "topics", "timestamp")
    assert rtm2.SubscribeTopicResult.__match_args__ == ("succeeded", "failed", "timestamp")
    # What the calls returned before they carried a time, they still are.
    assert issubclass(rtm2.GetStateResponse, rtm2.UserState)
    assert issubclass(rtm2.GetChannelMetadataResponse, rtm2.Metadata)
    assert issubclass(rtm2.GetUserMetadataResponse, rtm2.Metadata)
    assert issubclass(rtm2.GetUserChannelsResponse, list) and issubclass(rtm2.GetLockResponse, list)
    assert issubclass(rtm2.AcquireLockResponse, int)
    # The records that events carry too have no time of their own (the event has one).
    assert rtm2.UserState.__match_args__ == ("user_id", "states")
    assert rtm2.Metadata.__match_args__ == ("major_revision", "items")


async def test_every_call_answers_with_its_record(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    room, stage = uid("room"), uid("stage")
    M = "MESSAGE"

    r, t0, t1 = await timed(alice.login())
    check(r, rtm2.LoginResponse, t0, t1)
    assert repr(r) == f"LoginResponse(timestamp={r.timestamp})"
    await bob.login()

    sub, t0, t1 = await timed(alice.subscribe(room))
    assert sub.channel == room and t0 <= sub.timestamp <= t1

    r, t0, t1 = await timed(alice.publish(room, "hello"))
    check(r, rtm2.PublishResponse, t0, t1, channel=room)
    r, t0, t1 = await timed(alice.publish(room, b"kept", store_in_history=True))
    check(r, rtm2.PublishResponse, t0, t1, channel=room)
    r, t0, t1 = await timed(alice.publish(bob.user_id, "psst", channel_type="USER"))
    check(r, rtm2.PublishResponse, t0, t1, channel=bob.user_id)

    r, t0, t1 = await timed(alice.renew_token(""))
    check(r, rtm2.RenewTokenResponse, t0, t1, channel=None)

    sc = alice.stream_channel(stage)
    joined, t0, t1 = await timed(sc.join())
    assert type(joined) is rtm2.JoinResult and joined.channel == stage and t0 <= joined.timestamp <= t1
    r, t0, t1 = await timed(sc.join_topic("slides"))
    check(r, rtm2.JoinTopicResponse, t0, t1, channel=stage, topic="slides")
    r, t0, t1 = await timed(sc.publish_topic("slides", "page 1"))
    check(r, rtm2.PublishTopicMessageResponse, t0, t1, channel=stage, topic="slides")
    st, t0, t1 = await timed(sc.subscribe_topic("slides", [alice.user_id]))
    assert st.succeeded == (alice.user_id,) and t0 <= st.timestamp <= t1
    r, t0, t1 = await timed(sc.unsubscribe_topic("slides"))
    check(r, rtm2.UnsubscribeTopicResponse, t0, t1, channel=stage, topic="slides")
    r, t0, t1 = await timed(sc.leave_topic("slides"))
    check(r, rtm2.LeaveTopicResponse, t0, t1, channel=stage, topic="slides")
    r, t0, t1 = await timed(sc.renew_token(""))
    check(r, rtm2.RenewTokenResponse, t0, t1, channel=stage)
    r, t0, t1 = await timed(sc.leave())
    check(r, rtm2.LeaveChannelResponse, t0, t1, channel=stage)

    p = alice.presence
    r, t0, t1 = await timed(p.set_state(room, {"mood": "busy"}))
    check(r, rtm2.SetStateResponse, t0, t1, channel=room, channel_type=M)
    r, t0, t1 = await timed(p.remove_state(room, ["mood"]))
    check(r, rtm2.RemoveStateResponse, t0, t1, channel=room, channel_type=M)
    # Not present in that channel: kept locally until then, answered at the client's time.
    r, t0, t1 = await timed(p.set_state(stage, {"k": "v"}, channel_type=rtm2.ChannelType.STREAM))
    check(r, rtm2.SetStateResponse, t0, t1, channel=stage, channel_type="STREAM")

    lk = alice.lock
    r, t0, t1 = await timed(lk.set_lock(room, "door", ttl=10))
    check(r, rtm2.SetLockResponse, t0, t1, channel=room, channel_type=M, lock_name="door")
    await lk.acquire_lock(room, "door")
    r, t0, t1 = await timed(lk.release_lock(room, "door"))
    check(r, rtm2.ReleaseLockResponse, t0, t1, channel=room, channel_type=M, lock_name="door")
    await bob.lock.acquire_lock(room, "door")
    r, t0, t1 = await timed(lk.revoke_lock(room, "door", bob.user_id))
    check(r, rtm2.RevokeLockResponse, t0, t1, channel=room, channel_type=M, lock_name="door")
    r, t0, t1 = await timed(lk.remove_lock(room, "door"))
    check(r, rtm2.RemoveLockResponse, t0, t1, channel=room, channel_type=M, lock_name="door")

    r, t0, t1 = await timed(alice.storage.subscribe_user_metadata(bob.user_id))
    check(r, rtm2.SubscribeUserMetaResponse, t0, t1, user_id=bob.user_id)
    r, t0, t1 = await timed(alice.storage.unsubscribe_user_metadata(bob.user_id))
    check(r, rtm2.UnsubscribeUserMetaResponse, t0, t1, user_id=bob.user_id)

    r, t0, t1 = await timed(sub.unsubscribe())
    check(r, rtm2.UnsubscribeResponse, t0, t1, channel=room)
    r, t0, t1 = await timed(alice.logout())
    check(r, rtm2.LogoutResponse, t0, t1)


async def test_responses_compare_by_fields(make_client, endpoint: Optional[str]) -> None:
    c = make_client(uid("eq"), endpoint)
    await c.login()
    room = uid("room")
    a = await c.publish(room, "a")
    b = await c.publish(room, "b")
    assert a == a and a != 42
    assert (a == b) == (a.timestamp == b.timestamp)
    assert repr(a) == f"PublishResponse(channel={room!r}, timestamp={a.timestamp})"


async def test_pipelined_publishes_each_answer_with_their_channel_and_time(
    make_client, endpoint: Optional[str]
) -> None:
    # Hundreds of publishes started at once, in call order, to two channels in turn: each
    # completes with its own channel and a time within the burst, none later than a publish
    # made after all of them. (Not asserted: that the times never go back in call order — the
    # core gives a publish the time of the latest acknowledgement when its outcome is read,
    # not of the one that covered it, so an outcome read late carries a later time than the
    # next publish's.)
    c = make_client(uid("pub"), endpoint)
    await c.login()
    rooms = (uid("even"), uid("odd"))
    n = 1000
    before = now_ms()
    native: Any = c._native
    futures = [native.publish(rooms[i % 2], str(i), "MESSAGE", "", False, None) for i in range(n)]
    futures += [asyncio.ensure_future(c.publish(rooms[i % 2], str(i))) for i in range(n, 2 * n)]
    results: List[rtm2.PublishResponse] = await asyncio.wait_for(asyncio.gather(*futures), WAIT)
    after = now_ms()
    last, t0, t1 = await timed(c.publish(rooms[0], "last"))
    check(last, rtm2.PublishResponse, t0, t1, channel=rooms[0])
    for i, r in enumerate(results):
        assert type(r) is rtm2.PublishResponse and r.channel == rooms[i % 2], (i, r)
        assert before <= r.timestamp <= after, f"publish {i}: {r.timestamp} not in [{before}, {after}]"
        assert r.timestamp <= last.timestamp, f"publish {i} answered after the one made later: {r!r}, {last!r}"


async def test_every_call_that_returns_data_answers_with_its_time(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    await alice.login()
    await bob.login()
    room = uid("room")
    M = "MESSAGE"
    await alice.presence.set_state(room, {"mood": "busy"})
    await alice.subscribe(room)

    # -- presence
    p = bob.presence
    r, t0, t1 = await timed(p.get_online_users(room, include_state=True))
    check(r, rtm2.OnlineUsers, t0, t1, occupants=r.occupants, total_occupancy=1, next_page="")
    [occupant] = r.occupants
    assert type(occupant) is rtm2.UserState and (occupant.user_id, occupant.states) == (alice.user_id, {"mood": "busy"})
    r, t0, t1 = await timed(p.who_now(room, include_user_id=False))
    check(r, rtm2.OnlineUsers, t0, t1, occupants=(), total_occupancy=1, next_page="")

    r, t0, t1 = await timed(p.get_user_channels(alice.user_id))
    check(r, rtm2.GetUserChannelsResponse, t0, t1, channels=tuple(r), total_channel=1)
    assert [(c.channel, c.channel_type) for c in r.channels] == [(room, M)]
    r, t0, t1 = await timed(alice.presence.where_now())
    check(r, rtm2.GetUserChannelsResponse, t0, t1, channels=tuple(r), total_channel=1)
    r, t0, t1 = await timed(p.where_now(uid("nobody")))
    check(r, rtm2.GetUserChannelsResponse, t0, t1, channels=(), total_channel=0)

    r, t0, t1 = await timed(p.get_state(room, alice.user_id))
    mood = {"mood": "busy"}
    check(r, rtm2.GetStateResponse, t0, t1, user_id=alice.user_id, states=mood, channel=room, channel_type=M)
    assert repr(r) == (
        f"GetStateResponse(user_id={alice.user_id!r}, states={{'mood': 'busy'}}, channel={room!r}, "
        f"channel_type='MESSAGE', timestamp={r.timestamp})"
    )

    # -- storage: writes answer with MetadataWrite, reads with the Metadata and its scope
    st = alice.storage
    r, t0, t1 = await timed(st.set_channel_metadata(room, {"a": "1", "b": "2"}))
    check(r, rtm2.MetadataWrite, t0, t1, major_revision=1, total_count=2)
    r, t0, t1 = await timed(st.update_channel_metadata(room, {"a": "3"}))
    check(r, rtm2.MetadataWrite, t0, t1, major_revision=2, total_count=2)
    r, t0, t1 = await timed(st.remove_channel_metadata(room, ["b"]))
    check(r, rtm2.MetadataWrite, t0, t1, major_revision=3, total_count=1)
    r, t0, t1 = await timed(bob.storage.get_channel_metadata(room))
    check(r, rtm2.GetChannelMetadataResponse, t0, t1, major_revision=3, items=r.items, channel=room, channel_type=M)
    assert [(i.key, i.value, i.revision) for i in r.items] == [("a", "3", 2)] and r.get("a") == r.items[0]
    r, t0, t1 = await timed(st.get_channel_metadata(room, channel_type="STREAM"))
    check(r, rtm2.GetChannelMetadataResponse, t0, t1, major_revision=0, items=(), channel=room, channel_type="STREAM")

    r, t0, t1 = await timed(st.set_user_metadata("", {"s": "on"}))
    check(r, rtm2.MetadataWrite, t0, t1, major_revision=1, total_count=1)
    r, t0, t1 = await timed(st.update_user_metadata(alice.user_id, {"s": "off"}))
    check(r, rtm2.MetadataWrite, t0, t1, major_revision=2, total_count=1)
    r, t0, t1 = await timed(bob.storage.get_user_metadata(alice.user_id))
    check(r, rtm2.GetUserMetadataResponse, t0, t1, major_revision=2, items=r.items, user_id=alice.user_id)
    assert r.get("s").value == "off"
    r, t0, t1 = await timed(st.remove_user_metadata(""))
    check(r, rtm2.MetadataWrite, t0, t1, major_revision=3, total_count=0)
    r, t0, t1 = await timed(st.get_user_metadata())  # "" is you: the response names you
    check(r, rtm2.GetUserMetadataResponse, t0, t1, major_revision=3, items=(), user_id=alice.user_id)

    # -- locks
    lk = alice.lock
    await lk.set_lock(room, "door")
    r, t0, t1 = await timed(lk.acquire_lock(room, "door"))
    check(r, rtm2.AcquireLockResponse, t0, t1, channel=room, channel_type=M, lock_name="door", fencing_token=int(r))
    token = r
    assert type(token.fencing_token) is int and token.fencing_token > 0
    r, t0, t1 = await timed(lk.acquire_lock(room, "door"))  # already yours: the same grant
    check(r, rtm2.AcquireLockResponse, t0, t1, channel=room, channel_type=M, lock_name="door", fencing_token=token)
    r, t0, t1 = await timed(bob.lock.get_locks(room))
    check(r, rtm2.GetLockResponse, t0, t1, channel=room, channel_type=M, lock_details=tuple(r), total_locks=1)
    [detail] = r
    assert (detail.name, detail.owner, detail.fencing_token) == ("door", alice.user_id, token)
    r, t0, t1 = await timed(bob.lock.get_locks(room, channel_type="STREAM"))
    check(r, rtm2.GetLockResponse, t0, t1, channel=room, channel_type="STREAM", lock_details=(), total_locks=0)
    # A queued acquisition answers with the time of its grant: after the release that made it.
    waiting = asyncio.ensure_future(bob.lock.acquire_lock(room, "door", retry=True))
    await bob.lock.get_locks(room)  # the acquisition was sent
    t0 = now_ms()
    released = await lk.release_lock(room, "door")
    r = await asyncio.wait_for(waiting, WAIT)
    t1 = now_ms()
    check(r, rtm2.AcquireLockResponse, t0, t1, channel=room, channel_type=M, lock_name="door", fencing_token=int(r))
    assert r > token and r.timestamp >= released.timestamp

    # -- history
    await alice.publish(room, "kept", store_in_history=True)
    r, t0, t1 = await timed(bob.history.get_messages(room))
    check(r, rtm2.HistoryPage, t0, t1, messages=r.messages, count=1, new_start=0)
    assert [m.message for m in r.messages] == ["kept"] and r.messages[0].timestamp <= r.timestamp
    r, t0, t1 = await timed(bob.history.get_messages(uid("empty")))
    check(r, rtm2.HistoryPage, t0, t1, messages=(), count=0, new_start=0)


async def test_data_results_are_what_they_were(make_client, endpoint: Optional[str]) -> None:
    """The results that gained a time are still what they were: a UserState, a Metadata, a list,
    an int — existing code keeps working, and the events' records carry no time of their own."""
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    await alice.login()
    await bob.login()
    room = uid("room")
    presence, storage = bob.events("presence"), bob.events("storage")
    await alice.presence.set_state(room, {"k": "v"})
    await alice.subscribe(room, with_metadata=True)
    await bob.subscribe(room, with_metadata=True)

    # get_state: a UserState, equal to the one a snapshot carries.
    snap = await expect(presence, "SNAPSHOT", lambda e: e.event_type == "SNAPSHOT" and e.channel == room)
    [in_snapshot] = [u for u in snap.snapshot if u.user_id == alice.user_id]
    assert type(in_snapshot) is rtm2.UserState and not hasattr(in_snapshot, "timestamp")
    st = await bob.presence.get_state(room, alice.user_id)
    assert isinstance(st, rtm2.UserState) and st == in_snapshot and in_snapshot == st and st != 42
    extra = {"channel": room, "channel_type": "MESSAGE", "timestamp": st.timestamp}
    assert st.to_dict() == {**in_snapshot.to_dict(), **extra}
    with pytest.raises(AttributeError):
        st.timestamp = 0  # type: ignore[misc]  # frozen

    # Metadata reads: a Metadata, equal to the set an event carries; two reads of the same set
    # differ by their time only.
    await alice.storage.set_channel_metadata(room, {"topic": "rust"})
    ev = await expect(storage, "UPDATE", lambda e: e.event_type == "UPDATE" and e.target == room)
    assert type(ev.data) is rtm2.Metadata and not hasattr(ev.data, "timestamp")
    md = await bob.storage.get_channel_metadata(room)
    assert isinstance(md, rtm2.Metadata) and md == ev.data and ev.data == md
    again = await bob.storage.get_channel_metadata(room)
    assert rtm2.Metadata.__eq__(again, md) and (again == md) == (again.timestamp == md.timestamp)

    # get_user_channels / get_locks: lists.
    chs = await bob.presence.where_now(alice.user_id)
    assert isinstance(chs, list) and len(chs) == chs.total_channel == 1 and chs[0].channel == room
    assert repr(chs) == repr(list(chs)) and chs == list(chs)
    none = await bob.presence.where_now(uid("nobody"))
    assert none == [] and not none and isinstance(none.timestamp, int)
    assert await bob.lock.get_locks(room) == []
    await alice.lock.set_lock(room, "door", ttl=30)
    locks = await bob.lock.get_locks(room)
    [detail] = locks
    assert locks == [detail] and repr(locks) == f"[{detail!r}]" and locks.lock_details == (detail,)
    assert type(copy.copy(locks)) is rtm2.GetLockResponse and copy.copy(locks).to_dict() == locks.to_dict()
    with pytest.raises(AttributeError):
        locks.timestamp = 0  # type: ignore[misc]

    # acquire_lock: the fencing token, an int (str, repr, format, arithmetic, hashing, pickling).
    token = await alice.lock.acquire_lock(room, "door")
    n = int(token)
    assert isinstance(token, int) and token == n and hash(token) == hash(n) and token + 1 == n + 1
    assert str(token) == repr(token) == f"{token}" == str(n) and {token: 1}[n] == 1
    assert pickle.loads(pickle.dumps(token)).to_dict() == token.to_dict()
    w = await alice.storage.set_channel_metadata(room, {"doc": "v2"}, lock_name="door", fencing_token=token)
    assert w.major_revision == 2
    with pytest.raises(AttributeError):
        token.timestamp = 0  # type: ignore[misc]

    if sys.version_info >= (3, 10):  # the responses work in `match` statements
        scope: Dict[str, Any] = {"rtm2": rtm2, "st": st, "md": md, "token": token, "locks": locks, "chs": chs}
        exec(
            "match st:\n    case rtm2.UserState(u, s):\n        a = (u, s)\n"
            "match st:\n    case rtm2.GetStateResponse(u, s, c, ct, ts):\n        b = (c, ts)\n"
            "match md:\n    case rtm2.Metadata(major, items):\n        c = major\n"
            "match token:\n    case rtm2.AcquireLockResponse(lock_name=name, fencing_token=t):\n        d = (name, t)\n"
            "match locks:\n    case [rtm2.LockDetail(name='door')]:\n        e = len(locks)\n"
            "match chs:\n    case rtm2.GetUserChannelsResponse(channels, total, ts):\n        f = total\n",
            scope,
        )
        assert scope["a"] == (alice.user_id, {"k": "v"}) and scope["b"] == (room, st.timestamp)
        assert scope["c"] == 1 and scope["d"] == ("door", n) and scope["e"] == 1 and scope["f"] == 1
