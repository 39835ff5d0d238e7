"""Event handlers (sync, async, decorator), event streams, overflow, handler failures."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, List

import pytest
import rtm2
from conftest import APP_ID, WAIT, expect, uid


async def test_sync_async_and_decorator_handlers(make_client) -> None:
    c = make_client()
    got_sync: List[Any] = []
    got_async: List[Any] = []
    both = asyncio.Event()
    fourth = asyncio.Event()
    threads = set()

    def on_message(ev: rtm2.MessageEvent) -> None:
        threads.add(threading.get_ident())
        got_sync.append(ev.message)

    c.on("message", on_message)

    @c.on("message")
    async def on_message_async(ev: rtm2.MessageEvent) -> None:
        threads.add(threading.get_ident())
        await asyncio.sleep(0)
        got_async.append(ev.message)
        if len(got_async) == 3:
            both.set()
        if len(got_async) == 4:
            fourth.set()

    states: List[str] = []
    c.on("link_state", lambda ev: states.append(ev.current))
    assert on_message_async.__name__ == "on_message_async"  # the decorator returns the function

    await c.login()
    room = uid("room")
    await c.subscribe(room)
    for i in range(3):
        await c.publish(room, f"m{i}")
    await asyncio.wait_for(both.wait(), WAIT)
    assert got_sync == got_async == ["m0", "m1", "m2"]
    assert threads == {threading.get_ident()}, "handlers run on the event loop's thread"
    assert states[:2] == ["CONNECTING", "CONNECTED"]

    # off() removes a handler.
    c.off("message", on_message)
    await c.publish(room, "after off")
    await asyncio.wait_for(fourth.wait(), WAIT)
    assert got_async[-1] == "after off"
    assert got_sync == ["m0", "m1", "m2"]


async def test_a_failing_handler_is_logged_and_the_client_goes_on(make_client, caplog: Any) -> None:
    caplog.set_level(logging.ERROR, logger="rtm2")
    c = make_client()
    seen: List[str] = []
    done = asyncio.Event()

    @c.on("message")
    def boom(ev: rtm2.MessageEvent) -> None:
        raise ZeroDivisionError("sync handler failed")

    @c.on("message")
    async def boom_async(ev: rtm2.MessageEvent) -> None:
        raise KeyError("async handler failed")

    @c.on("message")
    def fine(ev: rtm2.MessageEvent) -> None:
        seen.append(ev.message)
        if len(seen) == 2:
            done.set()

    await c.login()
    room = uid("room")
    sub = await c.subscribe(room)
    await c.publish(room, "one")
    await c.publish(room, "two")
    await asyncio.wait_for(done.wait(), WAIT)
    assert seen == ["one", "two"]
    # The client still works.
    await c.publish(room, "three")
    assert [(await sub.recv(timeout=WAIT)).message for _ in range(3)] == ["one", "two", "three"]  # type: ignore[union-attr]
    for _ in range(10):  # let the failed async handler tasks finish (a few loop turns)
        await asyncio.sleep(0)
    messages = [r.getMessage() for r in caplog.records if r.name == "rtm2"]
    assert any("'message' handler" in m for m in messages), messages
    assert any("async handler" in m for m in messages), messages
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


async def test_event_stream_filters_and_overflows(make_client, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="rtm2")
    c = make_client(event_queue_capacity=4)
    everything = c.events()
    messages_only = c.events("message")
    await c.login()
    room = uid("room")
    sub = await c.subscribe(room)
    for i in range(20):
        await c.publish(room, f"m{i}")

    # The stream's queue (4 events) overflowed: first the count, then what was kept.
    first = await everything.recv(timeout=WAIT)
    assert isinstance(first, rtm2.OverflowEvent) and first.dropped > 0, first
    ev = await messages_only.recv(timeout=WAIT)
    assert isinstance(ev, rtm2.MessageEvent)
    # The subscription iterator skips the notice but counts and logs it.
    got = [await sub.recv(timeout=WAIT) for _ in range(4)]
    assert [m.message for m in got if m] == ["m0", "m1", "m2", "m3"]
    await c.publish(room, "after")
    m = await sub.recv(timeout=WAIT)
    assert m is not None and m.message == "after"
    assert sub.dropped == 16
    assert any("dropped" in r.getMessage() for r in caplog.records if r.name == "rtm2")


def publish_from_thread(channel: str, messages: List[str]) -> threading.Thread:
    """Another user publishes from another thread with its own event loop."""

    async def run() -> None:
        async with rtm2.Client(APP_ID, uid("publisher")) as p:
            await p.login()
            for m in messages:
                await p.publish(channel, m)

    t = threading.Thread(target=lambda: asyncio.run(asyncio.wait_for(run(), WAIT)), daemon=True)
    t.start()
    return t


async def test_handlers_get_overflow_events(make_client) -> None:
    c = make_client(event_queue_capacity=4)
    overflowed = asyncio.Event()
    overflows: List[rtm2.OverflowEvent] = []
    room = uid("room")
    publisher: List[threading.Thread] = []

    @c.on("overflow")
    def on_overflow(ev: rtm2.OverflowEvent) -> None:
        overflows.append(ev)
        overflowed.set()

    @c.on("message")
    def slow(ev: rtm2.MessageEvent) -> None:
        if ev.message == "trigger":
            # Block the event loop while another thread publishes 20 messages.
            publisher.append(publish_from_thread(room, [f"m{i}" for i in range(20)]))
            publisher[0].join(WAIT)

    await c.login()
    await c.subscribe(room)
    await c.publish(room, "trigger")
    await asyncio.wait_for(overflowed.wait(), WAIT)
    assert not publisher[0].is_alive()
    assert overflows[0].dropped >= 20 - 4


async def test_event_streams_are_async_context_managers(make_client) -> None:
    c = make_client()
    async with c.events("link_state") as states:
        await c.login()
        ev = await expect(states, "CONNECTED", lambda e: e.current == "CONNECTED")
        assert isinstance(ev, rtm2.LinkStateEvent)
    assert states.closed
    assert await states.recv(timeout=WAIT) is None


async def test_recv_timeout_raises_timeout_error(make_client) -> None:
    c = make_client()
    await c.login()
    sub = await c.subscribe(uid("quiet"))
    with pytest.raises(asyncio.TimeoutError):
        await sub.recv(timeout=0.05)
    # Nothing was lost by the cancelled wait.
    await c.publish(sub.channel, "later")
    m = await sub.recv(timeout=WAIT)
    assert m is not None and m.message == "later"


async def test_service_events_reach_handlers_and_filtered_streams(make_client) -> None:
    alice = make_client()
    bob = make_client()
    got: List[Any] = []
    done = asyncio.Event()

    @alice.on("presence")
    def on_presence(ev: rtm2.PresenceEvent) -> None:
        got.append(ev)

    @alice.on("storage")
    async def on_storage(ev: rtm2.StorageEvent) -> None:
        got.append(ev)

    def on_lock(ev: rtm2.LockEvent) -> None:
        got.append(ev)
        if ev.event_type == "SET":
            done.set()

    alice.on("lock", on_lock)
    only_locks = alice.events("lock")
    await alice.login()
    await bob.login()
    room = uid("room")
    await alice.subscribe(room, with_presence=True, with_metadata=True, with_lock=True)
    await bob.storage.set_channel_metadata(room, {"k": "v"})
    await bob.lock.set_lock(room, "l")
    await asyncio.wait_for(done.wait(), WAIT)
    kinds = [(type(e).__name__, e.event_type) for e in got]
    for want in [
        ("PresenceEvent", "SNAPSHOT"),
        ("StorageEvent", "SNAPSHOT"),
        ("StorageEvent", "UPDATE"),
        ("LockEvent", "SNAPSHOT"),
        ("LockEvent", "SET"),
    ]:
        assert want in kinds, kinds
    first = await only_locks.recv(timeout=WAIT)
    assert isinstance(first, rtm2.LockEvent) and first.event_type == rtm2.LockEventType.SNAPSHOT
    second = await only_locks.recv(timeout=WAIT)
    assert isinstance(second, rtm2.LockEvent) and (second.event_type, second.lock_name) == ("SET", "l")
    # A handler may call the services.
    answers: List[Any] = []
    answered = asyncio.Event()

    @bob.on("lock")
    async def on_bob_lock(ev: rtm2.LockEvent) -> None:
        if ev.event_type == "SNAPSHOT":
            answers.append(await bob.lock.get_locks(room))
            answered.set()

    await bob.subscribe(room, with_lock=True)
    await asyncio.wait_for(answered.wait(), WAIT)
    assert [d.name for d in answers[0]] == ["l"]


async def test_batched_messages_keep_their_fields_and_handlers_change_safely(make_client) -> None:
    # Events cross in batches whose string fields are shared between consecutive messages:
    # every message must still carry its own channel, type and payload. A handler that
    # removes itself or adds another while a batch is dispatched affects later events only.
    a, b = make_client(), make_client()
    await a.login()
    await b.login()
    c1, c2 = uid("mix1"), uid("mix2")
    await b.subscribe(c1, with_presence=False)
    sub2 = await b.subscribe(c2, with_presence=False)
    sent = []
    for i in range(200):
        channel = c2 if i % 3 == 0 else c1
        message: Any = f"s{i} é" if i % 2 else bytes((i + k) & 255 for k in range(1 + i % 7))
        sent.append((channel, message, "five" if i % 5 == 0 else ""))
    got: List[Any] = []
    late: List[Any] = []
    done = asyncio.Event()

    def on_message(ev: rtm2.MessageEvent) -> None:
        if ev.channel in (c1, c2):
            got.append(ev)
            if len(got) == 100:
                # Swapped while a batch may be in flight: later messages go to `late` only.
                b.off("message", on_message)
                b.on("message", on_late)
            if len(got) + len(late) == len(sent):
                done.set()

    def on_late(ev: rtm2.MessageEvent) -> None:
        if ev.channel in (c1, c2):
            late.append(ev)
            if len(got) + len(late) == len(sent):
                done.set()

    b.on("message", on_message)
    for channel, message, custom_type in sent:
        await a.publish(channel, message, custom_type=custom_type)
    await asyncio.wait_for(done.wait(), WAIT)
    assert len(got) == 100
    for ev, (channel, message, custom_type) in zip(got + late, sent):
        assert (ev.channel, ev.message, ev.custom_type) == (channel, message, custom_type)
        assert ev.message_type == ("STRING" if isinstance(message, str) else "BINARY")
        assert (ev.channel_type, ev.topic, ev.publisher) == ("MESSAGE", "", a.user_id)
    # The subscription of c2 saw its messages in order, through its own iterator.
    mine = [m for m in sent if m[0] == c2]
    seen = []
    async for m in sub2:
        seen.append((m.channel, m.message, m.custom_type))
        if len(seen) == len(mine):
            break
    assert seen == mine
