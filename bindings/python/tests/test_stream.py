"""Stream channels and topics: the quick start, topic events and the limits."""

from __future__ import annotations

from typing import Optional

import rtm2
from conftest import WAIT, expect, raises, uid
from rtm2 import ErrorCode as E


def topic_event(kind: str, channel: str):
    return lambda e: isinstance(e, rtm2.TopicEvent) and e.event_type == kind and e.channel == channel


def stream_message(e: object) -> bool:
    return isinstance(e, rtm2.MessageEvent) and e.channel_type == "STREAM"


async def test_quick_start(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    await alice.login()
    await bob.login()
    alice_events = alice.events("topic", "message", "link_state")
    bob_events = bob.events("topic", "message")
    stage = uid("stage")

    a_sc = alice.stream_channel(stage)
    b_sc = bob.stream_channel(stage)
    assert a_sc.name == stage and not a_sc.is_joined

    joined = await a_sc.join(timeout=WAIT)
    assert joined.channel == stage and joined.topics == ()
    assert a_sc.is_joined
    ev = await expect(
        alice_events, "stream CONNECTED", lambda e: isinstance(e, rtm2.LinkStateEvent) and e.service_type == "STREAM"
    )
    assert (ev.channel, ev.current, ev.reason) == (stage, "CONNECTED", "JOIN_SUCCESS")
    await a_sc.join_topic("slides", meta="presenter", qos="ORDERED", priority="HIGH")
    assert a_sc.joined_topics == ["slides"]

    joined = await b_sc.join()
    assert joined.channel == stage
    assert [t.topic for t in joined.topics] == ["slides"]
    assert len(joined.topics[0].publishers) == 1
    assert (joined.topics[0].publishers[0].user_id, joined.topics[0].publishers[0].meta) == (alice.user_id, "presenter")
    snap = await expect(bob_events, "SNAPSHOT", topic_event("SNAPSHOT", stage))
    assert snap.topics == joined.topics

    # Bob becomes a publisher too: Alice sees REMOTE_JOIN with the meta.
    await b_sc.join_topic("chat", meta="m-b")
    ev = await expect(alice_events, "REMOTE_JOIN", topic_event("REMOTE_JOIN", stage))
    assert (ev.publisher, ev.topics[0].topic, ev.topics[0].publishers[0].meta) == (bob.user_id, "chat", "m-b")

    # Subscribe with no user list: every current publisher.
    r = await b_sc.subscribe_topic("slides")
    assert r.succeeded == (alice.user_id,) and r.failed == ()
    assert b_sc.subscribed_users("slides") == [alice.user_id]

    await a_sc.publish_topic("slides", "slide 1", custom_type="page")
    await a_sc.publish_topic("slides", b"\x01\x02")
    m = await expect(bob_events, "topic message", stream_message)
    assert (m.channel, m.topic, m.publisher, m.message, m.custom_type, m.message_type) == (
        stage,
        "slides",
        alice.user_id,
        "slide 1",
        "page",
        "STRING",
    )
    m = await expect(bob_events, "binary topic message", stream_message)
    assert (m.message, m.message_type) == (b"\x01\x02", "BINARY")

    # Only subscribers of a publisher receive: Alice did not subscribe to "chat" yet.
    await b_sc.publish_topic("chat", "nobody listens")
    r = await a_sc.subscribe_topic("chat", [bob.user_id, "_invalid"])
    assert r.succeeded == (bob.user_id,)
    assert [(f.user_id, f.code) for f in r.failed] == [("_invalid", 6)]
    await b_sc.publish_topic("chat", "now alice listens")
    m = await expect(alice_events, "chat message", stream_message)
    assert m.message == "now alice listens"

    await b_sc.unsubscribe_topic("slides")
    # Nobody subscribed in the topic any more: an empty list (synchronous, as everywhere).
    assert b_sc.subscribed_users("slides") == []
    await raises(E.CHANNEL_TOPIC_NOT_SUBSCRIBED, b_sc.unsubscribe_topic("slides"))

    await a_sc.leave_topic("slides")
    ev = await expect(bob_events, "REMOTE_LEAVE", topic_event("REMOTE_LEAVE", stage))
    assert (ev.publisher, ev.topics[0].topic) == (alice.user_id, "slides")
    await raises(E.CHANNEL_TOPIC_NOT_JOINED, a_sc.leave_topic("slides"))
    await raises(E.CHANNEL_TOPIC_NOT_JOINED, a_sc.publish_topic("slides", "x"))

    # Leaving drops Bob's topic role: Alice sees REMOTE_LEAVE for "chat".
    await b_sc.leave()
    ev = await expect(alice_events, "REMOTE_LEAVE of chat", topic_event("REMOTE_LEAVE", stage))
    assert (ev.publisher, ev.topics[0].topic) == (bob.user_id, "chat")
    await raises(E.CHANNEL_NOT_JOINED, b_sc.leave())
    await raises(E.CHANNEL_NOT_JOINED, b_sc.join_topic("t"))
    async with a_sc:
        pass  # leaves on exit
    assert not a_sc.is_joined


async def test_topic_limits(make_client, endpoint: Optional[str]) -> None:
    a = make_client(endpoint=endpoint)
    await a.login()
    sc = a.stream_channel(uid("limits"))
    await sc.join()
    await raises(E.DUPLICATE_OPERATION, sc.join())
    for i in range(8):
        await sc.join_topic(f"t{i}")
    err = await raises(E.CHANNEL_EXCEED_TOPIC_LIMITATION, sc.join_topic("t8"), rtm2.ChannelError)
    assert err.operation == "join_topic"
    await raises(E.CHANNEL_JOIN_TOPIC_FAILED, sc.join_topic("t0"))
    await raises(E.CHANNEL_INVALID_TOPIC_NAME, sc.join_topic("x" * 17), rtm2.InvalidArgumentError)
    await raises(E.CHANNEL_INVALID_TOPIC_META, sc.join_topic("m", meta="m" * 257), rtm2.InvalidArgumentError)
    # Topic messages: payload + customType at most 1 KiB.
    await sc.publish_topic("t0", b"\x01" * 1024)
    await raises(E.CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION, sc.publish_topic("t0", b"\x01" * 1024, custom_type="x"))
    await raises(E.CHANNEL_TOPIC_NOT_EXIST, sc.subscribe_topic(uid("none")[:16]))
    # 64 publishers per topic: the 65th fails per user.
    r = await sc.subscribe_topic("big", [f"u{i}" for i in range(65)])
    assert len(r.succeeded) == 64 and [(f.user_id, f.code) for f in r.failed] == [("u64", 20003)]
    await raises(E.CHANNEL_EXCEED_TOPIC_USER_LIMITATION, sc.subscribe_topic("big", ["u99"]))
    # A list longer than a stream channel can hold (128) is refused whole (as in C).
    await raises(E.CHANNEL_INVALID_USER_LIST, sc.subscribe_topic("other", [f"u{i}" for i in range(129)]))
    await raises(E.CHANNEL_INVALID_USER_LIST, sc.unsubscribe_topic("big", [f"u{i}" for i in range(129)]))
    # Stream-channel tokens are renewable while joined.
    await sc.renew_token("")
    await sc.leave()
    await raises(E.CHANNEL_NOT_JOINED, sc.renew_token(""))
