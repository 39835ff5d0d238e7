"""Locks: set / get / remove / acquire (with the server's queue) / release / revoke, the lock
events (SNAPSHOT, SET, REMOVED, ACQUIRED, RELEASED, EXPIRED), many acquirers, an owner that
vanishes, cancellation, and the error codes."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, List, Optional

import pytest
import rtm2
from conftest import WAIT, expect, raises, uid
from rtm2 import ErrorCode as E


def lock_event(kind: str, name: Optional[str] = None) -> Callable[[Any], bool]:
    return lambda e: isinstance(e, rtm2.LockEvent) and e.event_type == kind and (name is None or e.lock_name == name)


def owners(locks: List[rtm2.LockDetail]) -> dict:
    return {d.name: d.owner for d in locks}


async def test_locks_and_their_events(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    carol = make_client(uid("carol"), endpoint)
    for c in (alice, bob, carol):
        await c.login()
    events = carol.events("lock")
    room = uid("room")
    lk = alice.lock

    await carol.subscribe(room, with_message=False, with_presence=False, with_lock=True)
    snap = await expect(events, "SNAPSHOT", lock_event("SNAPSHOT"))
    assert snap.event_type == rtm2.LockEventType.SNAPSHOT
    assert (snap.channel, snap.channel_type, snap.lock_name, snap.snapshot) == (room, "MESSAGE", "", ())

    await lk.set_lock(room, "door", ttl=30)
    ev = await expect(events, "SET", lock_event("SET", "door"))
    assert (ev.channel, ev.channel_type, ev.ttl, ev.owner, ev.publisher) == (room, "MESSAGE", 30, "", alice.user_id)
    assert ev.timestamp > 0
    await raises(E.LOCK_ALREADY_EXIST, lk.set_lock(room, "door"), rtm2.LockError)
    await raises(E.LOCK_INVALID_NAME, lk.set_lock(room, "bad/name"), rtm2.InvalidArgumentError)
    await lk.set_lock(room, "tiny", ttl=1)  # clamped to 10..300 s
    assert (await expect(events, "SET tiny", lock_event("SET", "tiny"))).ttl == 10
    await lk.set_lock(room, "huge", ttl=1000)
    assert (await expect(events, "SET huge", lock_event("SET", "huge"))).ttl == 300
    await lk.set_lock(room, "default")
    assert (await expect(events, "SET default", lock_event("SET", "default"))).ttl == 10
    locks = await bob.lock.get_locks(room)
    assert all(isinstance(d, rtm2.LockDetail) for d in locks)
    assert {(d.name, d.owner, d.ttl) for d in locks} == {
        ("door", "", 30),
        ("tiny", "", 10),
        ("huge", "", 300),
        ("default", "", 10),
    }

    await lk.acquire_lock(room, "door")
    ev = await expect(events, "ACQUIRED", lock_event("ACQUIRED", "door"))
    assert (ev.owner, ev.publisher, ev.ttl) == (alice.user_id, alice.user_id, 30)
    await lk.acquire_lock(room, "door")  # already yours: fine
    await raises(E.LOCK_ACQUIRE_FAILED, bob.lock.acquire_lock(room, "door"))
    await raises(E.LOCK_NOT_ACQUIRED, bob.lock.release_lock(room, "door"))

    # A retrying acquirer waits in the server's queue, without blocking the loop.
    waiting = asyncio.ensure_future(bob.lock.acquire_lock(room, "door", retry=True))
    assert owners(await carol.lock.get_locks(room))["door"] == alice.user_id
    assert not waiting.done()
    await lk.release_lock(room, "door")
    ev = await expect(events, "RELEASED", lock_event("RELEASED", "door"))
    assert (ev.owner, ev.publisher) == (alice.user_id, alice.user_id)
    ev = await expect(events, "ACQUIRED by bob", lock_event("ACQUIRED", "door"))
    assert (ev.owner, ev.publisher) == (bob.user_id, bob.user_id)
    await asyncio.wait_for(waiting, WAIT)
    assert owners(await lk.get_locks(room))["door"] == bob.user_id

    # Anyone may revoke, naming the owner.
    await raises(E.LOCK_NOT_ACQUIRED, lk.revoke_lock(room, "door", alice.user_id))
    await lk.revoke_lock(room, "door", bob.user_id)
    ev = await expect(events, "RELEASED by revoke", lock_event("RELEASED", "door"))
    assert (ev.owner, ev.publisher) == (bob.user_id, alice.user_id)
    assert owners(await lk.get_locks(room))["door"] == ""

    await raises(E.LOCK_NOT_EXIST, lk.acquire_lock(room, "missing"))
    await raises(E.LOCK_NOT_EXIST, lk.release_lock(room, "missing"))
    await lk.remove_lock(room, "door")
    ev = await expect(events, "REMOVED", lock_event("REMOVED", "door"))
    assert ev.publisher == alice.user_id
    await raises(E.LOCK_NOT_EXIST, lk.remove_lock(room, "door"))
    assert set(owners(await lk.get_locks(room))) == {"tiny", "huge", "default"}

    # A late subscriber's SNAPSHOT lists the locks and their owners.
    await bob.lock.acquire_lock(room, "tiny")
    b_ev = bob.events("lock")
    await bob.subscribe(room, with_lock=True)
    snap = await expect(b_ev, "bob's SNAPSHOT", lock_event("SNAPSHOT"))
    assert {(d.name, d.owner) for d in snap.snapshot} == {("tiny", bob.user_id), ("huge", ""), ("default", "")}


async def test_stream_channel_locks_and_removal_fails_waiters(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    await alice.login()
    await bob.login()
    room = uid("room")
    await raises(E.INVALID_CHANNEL_TYPE, alice.lock.set_lock(room, "door", channel_type="USER"))  # type: ignore[arg-type]
    await alice.lock.set_lock(room, "door", channel_type=rtm2.ChannelType.STREAM)
    assert await alice.lock.get_locks(room) == []  # the message channel of that name has none
    assert owners(await alice.lock.get_locks(room, channel_type="STREAM")) == {"door": ""}

    # Events of a stream channel's locks come to joiners with with_lock.
    a_ev = alice.events("lock")
    await alice.stream_channel(room).join(with_lock=True)
    snap = await expect(a_ev, "stream SNAPSHOT", lock_event("SNAPSHOT"))
    assert snap.channel_type == "STREAM" and [(d.name, d.owner) for d in snap.snapshot] == [("door", "")]

    await alice.lock.acquire_lock(room, "door", channel_type="STREAM")
    waiting = asyncio.ensure_future(bob.lock.acquire_lock(room, "door", channel_type="STREAM", retry=True))
    assert owners(await bob.lock.get_locks(room, channel_type="STREAM")) == {"door": alice.user_id}
    await alice.lock.remove_lock(room, "door", channel_type="STREAM")
    ev = await expect(a_ev, "REMOVED", lock_event("REMOVED", "door"))
    assert ev.channel_type == "STREAM"
    await raises(E.LOCK_NOT_EXIST, waiting, rtm2.LockError)


async def test_many_acquirers_never_two_owners(make_client, endpoint: Optional[str]) -> None:
    room = uid("room")
    observer = make_client(uid("observer"), endpoint)
    await observer.login()
    events = observer.events("lock")
    await observer.subscribe(room, with_message=False, with_presence=False, with_lock=True)
    await expect(events, "SNAPSHOT", lock_event("SNAPSHOT"))
    await observer.lock.set_lock(room, "mutex")
    users = [make_client(uid(f"w{i}"), endpoint) for i in range(8)]
    for u in users:
        await u.login()
    holder: List[str] = []
    order: List[str] = []

    async def work(c: rtm2.Client) -> None:
        for _ in range(3):
            await c.lock.acquire_lock(room, "mutex", retry=True)
            assert holder == [], f"{c.user_id} got the lock while {holder} held it"
            holder.append(c.user_id)
            order.append(c.user_id)
            assert owners(await c.lock.get_locks(room)) == {"mutex": c.user_id}
            holder.remove(c.user_id)
            await c.lock.release_lock(room, "mutex")

    await asyncio.wait_for(asyncio.gather(*(work(u) for u in users)), 4 * WAIT)
    assert sorted(order) == sorted(u.user_id for u in users for _ in range(3))
    # The observer saw strictly alternating ACQUIRED(x) / RELEASED(x).
    seen: List[tuple] = []
    while len(seen) < 2 * len(order):
        ev = await expect(events, "lock events", lambda e: isinstance(e, rtm2.LockEvent) and e.lock_name == "mutex")
        if ev.event_type in ("ACQUIRED", "RELEASED"):
            seen.append((ev.event_type, ev.owner))
    for i in range(0, len(seen), 2):
        assert seen[i][0] == "ACQUIRED" and seen[i + 1] == ("RELEASED", seen[i][1]), seen
    assert [o for t, o in seen if t == "ACQUIRED"] == order


async def test_a_vanished_owner_keeps_its_lock_for_the_ttl(make_client, fast_server, ghosts) -> None:
    ep = fast_server.address
    alice = make_client(uid("alice"), ep)
    carol = make_client(uid("carol"), ep)
    await alice.login()
    await carol.login()
    events = carol.events("lock")
    room = uid("room")
    await carol.subscribe(room, with_message=False, with_presence=False, with_lock=True)
    await alice.lock.set_lock(room, "keep", ttl=10)  # 1 s on this server
    dave = uid("dave")
    ghost = await ghosts(ep, dave, room, lock="keep")
    ev = await expect(events, "ACQUIRED by the ghost", lock_event("ACQUIRED", "keep"))
    assert ev.owner == dave
    # A retrying acquirer gets it once the ttl has passed.
    waiting = asyncio.ensure_future(alice.lock.acquire_lock(room, "keep", retry=True))
    assert owners(await carol.lock.get_locks(room)) == {"keep": dave}
    ghost.kill()
    ev = await expect(events, "RELEASED after the ttl", lock_event("RELEASED", "keep"))
    assert (ev.owner, ev.publisher) == (dave, dave)
    ev = await expect(events, "ACQUIRED by alice", lock_event("ACQUIRED", "keep"))
    assert ev.owner == alice.user_id
    await asyncio.wait_for(waiting, WAIT)
    assert owners(await carol.lock.get_locks(room)) == {"keep": alice.user_id}


async def test_the_owner_hears_expired(make_client, fast_server) -> None:
    ep = fast_server.address
    alice = make_client(uid("alice"), ep)
    carol = make_client(uid("carol"), ep)
    await alice.login()
    await carol.login()
    room = uid("room")
    c_ev = carol.events("lock")
    await carol.subscribe(room, with_message=False, with_presence=False, with_lock=True)
    await alice.lock.set_lock(room, "l", ttl=10)
    await alice.lock.acquire_lock(room, "l")
    a_ev = alice.events("lock")
    await alice.logout()  # its session ends: the lock is kept for the ttl, then freed
    ev = await expect(c_ev, "RELEASED", lock_event("RELEASED", "l"))
    assert ev.owner == alice.user_id
    await alice.login()  # without any subscription: EXPIRED reaches the owner anyway
    ev = await expect(a_ev, "EXPIRED", lock_event("EXPIRED", "l"))
    assert ev.event_type == rtm2.LockEventType.EXPIRED
    assert (ev.channel, ev.channel_type, ev.owner, ev.ttl) == (room, "MESSAGE", alice.user_id, 10)


async def test_acquiring_with_retry_is_cancellable(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    await alice.login()
    await bob.login()
    room = uid("room")
    await alice.lock.set_lock(room, "l")
    await alice.lock.acquire_lock(room, "l")
    # The event loop keeps running while bob waits; cancelling ends the wait at once.
    task = asyncio.ensure_future(bob.lock.acquire_lock(room, "l", retry=True))
    ticks = 0
    while ticks < 20:
        await asyncio.sleep(0)
        ticks += 1
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(bob.lock.acquire_lock(room, "l", retry=True), 0.2)
    # A per-call timeout gives the lock service's timeout code.
    err = await raises(E.LOCK_OPERATION_TIMEOUT, bob.lock.acquire_lock(room, "l", retry=True, timeout=0.2))
    assert isinstance(err, rtm2.RtmTimeoutError) and isinstance(err, TimeoutError)


async def test_a_cancelled_acquisition_is_not_granted_later(make_client) -> None:
    alice = make_client()
    bob = make_client()
    await alice.login()
    await bob.login()
    room = uid("room")
    await alice.lock.set_lock(room, "l")
    for round in range(10):
        await alice.lock.acquire_lock(room, "l")
        if round % 2 == 0:  # cancelled (asyncio.wait_for waits for the cancellation to complete)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(bob.lock.acquire_lock(room, "l", retry=True), 0.1)
        else:  # timed out in the SDK
            await raises(E.LOCK_OPERATION_TIMEOUT, bob.lock.acquire_lock(room, "l", retry=True, timeout=0.1))
        # No fence through bob's connection: the withdrawal is already on the server.
        await alice.lock.release_lock(room, "l")
        assert owners(await alice.lock.get_locks(room)) == {"l": ""}, f"round {round}"


async def test_lock_errors_and_arguments(make_client, endpoint: Optional[str]) -> None:
    c = make_client(uid("alice"), endpoint)
    room = uid("room")
    await raises(E.NOT_LOGIN, c.lock.get_locks(room), rtm2.LoginError)
    await c.login()
    lk = c.lock
    assert repr(lk).startswith("<rtm2.Locks of")
    await raises(E.INVALID_CHANNEL_NAME, lk.get_locks("_room"))
    await raises(E.LOCK_INVALID_NAME, lk.acquire_lock(room, "x" * 65))
    await raises(E.INVALID_USER_ID, lk.revoke_lock(room, "l", ""))
    await raises(E.INVALID_CHANNEL_TYPE, lk.get_locks(room, channel_type="NONE"))  # type: ignore[arg-type]
    for i in range(32):
        await lk.set_lock(room, f"l{i}")
    err = await raises(E.LOCK_OPERATION_FAILED, lk.set_lock(room, "l32"))
    assert "32" in err.reason
    await c.close()
    await raises(E.INSTANCE_ALREADY_RELEASED, lk.get_locks(room))


async def test_fencing_tokens(make_client, endpoint: Optional[str]) -> None:
    """Every grant returns a fencing token, strictly increasing; it is in ACQUIRED events and
    get_locks; a metadata write naming a stale token is refused with 12008."""
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    for c in (alice, bob):
        await c.login()
    events = alice.events("lock")
    room = uid("room")
    await alice.subscribe(room, with_message=False, with_presence=False, with_lock=True)
    await alice.lock.set_lock(room, "vault")

    t1 = await alice.lock.acquire_lock(room, "vault")
    assert isinstance(t1, int) and t1 > 0
    assert (await expect(events, "ACQUIRED", lock_event("ACQUIRED", "vault"))).fencing_token == t1
    assert await alice.lock.acquire_lock(room, "vault") == t1  # the same grant
    [detail] = await bob.lock.get_locks(room)
    assert (detail.owner, detail.fencing_token) == (alice.user_id, t1)

    waiting = asyncio.ensure_future(bob.lock.acquire_lock(room, "vault", retry=True))
    await bob.lock.get_locks(room)  # the acquisition was sent
    await alice.lock.release_lock(room, "vault")
    assert (await expect(events, "RELEASED", lock_event("RELEASED", "vault"))).fencing_token == t1
    t2 = await asyncio.wait_for(waiting, WAIT)
    assert t2 > t1
    await bob.lock.release_lock(room, "vault")
    t3 = await alice.lock.acquire_lock(room, "vault")
    assert t3 > t2

    st = alice.storage
    err = await raises(E.STORAGE_LOCK_NOT_ACQUIRED, st.set_channel_metadata(room, {"k": "v"}, lock_name="vault", fencing_token=t1))
    assert "stale" in str(err)
    w = await st.set_channel_metadata(room, {"k": "v"}, lock_name="vault", fencing_token=t3)
    assert w.major_revision == 1
    await raises(E.STORAGE_INVALID_ARGUMENT, st.set_channel_metadata(room, {"k": "v"}, fencing_token=t3))
