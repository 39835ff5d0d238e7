"""Requests that time out while the server is stalled (SIGSTOP) and that it carries out once it
runs again leave the client in agreement with the server: a join is adopted (announced with
the stream channel's CONNECTED event; leave and join work afterwards), a subscribe withdrawn
(others see the user leave again; its messages do not arrive)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import Any, Iterator

import rtm2
from conftest import WAIT, Server, expect, raises, uid, unlimited
from rtm2 import ErrorCode as E


@contextlib.contextmanager
def stalled(server: Server) -> Iterator[None]:
    """The server process stopped (no request is read or answered), then resumed."""
    os.kill(server.proc.pid, signal.SIGSTOP)
    deadline = time.monotonic() + WAIT
    with open(f"/proc/{server.proc.pid}/stat") as stat:
        while stat.read().split(") ")[1][0] != "T":
            assert time.monotonic() < deadline, "the server did not stop"
            time.sleep(0.005)
            stat.seek(0)
    try:
        yield
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


async def test_a_join_that_timed_out_on_a_stalled_server_is_adopted(make_client) -> None:
    server = Server(*unlimited())
    try:
        c = make_client(endpoint=server.address)
        await c.login()
        links = c.events("link_state")
        stage = c.stream_channel(uid("stage"))
        with stalled(server):
            await raises(E.CHANNEL_JOIN_FAILED, stage.join(timeout=0.3))
            assert not stage.is_joined
        ev = await expect(
            links,
            "the late join's CONNECTED",
            lambda e: e.service_type == "STREAM" and e.current == "CONNECTED",
        )
        assert ev.reason == "JOIN_SUCCESS"
        assert stage.is_joined
        # Not stuck: a topic, leave, and a new join all work.
        await stage.join_topic("t")
        await stage.leave()
        assert not stage.is_joined
        await stage.join()
        await stage.leave()
    finally:
        server.stop()


async def test_a_subscribe_that_timed_out_on_a_stalled_server_is_withdrawn(make_client) -> None:
    server = Server(*unlimited())
    try:
        c = make_client(uid("slow"), server.address)
        watcher = make_client(uid("watcher"), server.address)
        await c.login()
        await watcher.login()
        room = uid("room")
        presence = watcher.events("presence")
        await watcher.subscribe(room)
        await c.subscribe("sync")
        with stalled(server):
            await raises(E.CHANNEL_SUBSCRIBE_TIMEOUT, c.subscribe(room, timeout=0.3))
        assert c.subscribed_channels == ["sync"]

        def is_(kind: str) -> Any:
            return lambda e: e.event_type == kind and e.channel == room and e.publisher == c.user_id

        await expect(presence, "the late subscribe's REMOTE_JOIN", is_("REMOTE_JOIN"))
        await expect(presence, "the withdrawal's REMOTE_LEAVE", is_("REMOTE_LEAVE"))
        now = await watcher.presence.who_now(room)
        assert [u.user_id for u in now.occupants] == [watcher.user_id]

        messages = c.events("message")
        await watcher.publish(room, "not for the slow client")
        await watcher.publish("sync", "marker")
        m = await expect(messages, "the marker", lambda e: e.channel in (room, "sync"))
        assert (m.channel, m.message) == ("sync", "marker")
        assert c.subscribed_channels == ["sync"]
    finally:
        server.stop()
