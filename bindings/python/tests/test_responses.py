"""Every call that changes something answers with a record: the names the call was about and
`timestamp`, the server's time of its answer in ms (agora-rtm-sdk's `{timestamp, channelName,
…}` responses) — checked against the embedded server and `rtm2 serve`, the timestamp between a
clock reading taken before the call and one taken after it."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Dict, List, Optional, Tuple, TypeVar

import rtm2
from conftest import WAIT, uid

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
    for cls, names in RESPONSES.items():
        assert cls.__module__ == "rtm2", cls
        assert cls.__name__ in rtm2.__all__, cls
        assert cls.__match_args__ == (*names, "timestamp"), cls
    assert rtm2.JoinResult.__match_args__ == ("channel", "topics", "timestamp")
    assert rtm2.SubscribeTopicResult.__match_args__ == ("succeeded", "failed", "timestamp")


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
