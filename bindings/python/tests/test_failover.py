"""Client failover (docs/CLUSTER.md, "Client failover"): ``endpoint`` takes a list or a
comma-separated str; a bad entry raises 10014; a dead first endpoint is skipped; and a client
whose `rtm2 serve` dies moves to the next one, is told first which channels may have missed
messages, and receives what is published there."""

from __future__ import annotations

import socket

import pytest
import rtm2

from conftest import Server, expect, raises, uid, unlimited

E = rtm2.ErrorCode


def dead_endpoint() -> str:
    """A loopback endpoint nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "tcp://%s:%d" % s.getsockname()


@pytest.fixture
def two_servers():
    servers = [Server(*unlimited()), Server(*unlimited())]
    yield servers
    for s in servers:
        s.stop()


def test_bad_endpoint_lists_raise_10014() -> None:
    for bad in ["127.0.0.1:1,,127.0.0.1:2", "127.0.0.1:1,127.0.0.1:99999", "embedded,127.0.0.1:1"]:
        with pytest.raises(rtm2.InvalidArgumentError) as info:
            rtm2.Client("970CA35de60c44645bbae8a215061b33", uid(), bad)
        assert info.value.code == E.INVALID_PARAMETER, bad
    for bad_list in [[], ["127.0.0.1:1", ""], ["127.0.0.1:1", "nohostport"]]:
        with pytest.raises(rtm2.InvalidArgumentError) as info:
            rtm2.Client("970CA35de60c44645bbae8a215061b33", uid(), bad_list)
        assert info.value.code == E.INVALID_PARAMETER, bad_list
    with pytest.raises(rtm2.InvalidArgumentError) as info:
        rtm2.Client("970CA35de60c44645bbae8a215061b33", uid(), "127.0.0.1:1,127.0.0.1:99999")
    assert "127.0.0.1:99999" in info.value.reason


async def test_a_dead_first_endpoint_is_skipped(make_client, two_servers) -> None:
    live = "tcp://" + two_servers[0].address
    as_str = make_client(uid("str"), f"{dead_endpoint()},{live}")
    await as_str.login()
    as_list = make_client(uid("list"), [dead_endpoint(), live])
    assert as_list.connected_to is None, "not connected before the first login"
    await as_list.login()
    assert as_list.link_state == "CONNECTED"
    assert as_list.connected_to == (live, ""), "the live endpoint; no cluster node"


async def test_a_client_whose_server_dies_moves_to_the_next_one(make_client, two_servers) -> None:
    a, b = ("tcp://" + s.address for s in two_servers)
    room = uid("room")
    mover = make_client(uid("mover"), [a, b], reconnect_initial_backoff_ms=20)
    await mover.login()
    sub = await mover.subscribe(room)
    events = mover.events("link_state", "message")
    pub = make_client(uid("pub"), b)
    await pub.login()

    two_servers[0].stop()
    await expect(events, "DISCONNECTED", lambda e: isinstance(e, rtm2.LinkStateEvent) and e.current == "DISCONNECTED")

    def no_message_first(e) -> bool:
        assert not isinstance(e, rtm2.MessageEvent), f"a message before the notice: {e!r}"
        return e.current == "CONNECTED"

    notice = await expect(events, "CONNECTED on the second server", no_message_first)
    assert notice.is_resumed is False
    assert room in notice.affected_channels
    assert notice.unrestored_channels == ()
    await pub.publish(room, "on b")
    msg = await expect(sub, "the message on b", lambda m: m.message == "on b")
    assert msg.publisher == pub.user_id
    assert mover.connected_to == (b, "")
