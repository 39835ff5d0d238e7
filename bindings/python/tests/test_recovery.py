"""Recovery of missed stored messages (docs/RELIABILITY.md): a client whose session cannot be
resumed — here because its `rtm2 serve` restarted — is told first (CONNECTED, not resumed, the
channel announced: a restarted server cannot vouch for messages that were not stored), then gets
every stored message published while it was away, in order, marked ``recovered``, and then the
live ones, not marked."""

from __future__ import annotations

from typing import Any, List

import pytest
import rtm2

from conftest import Server, expect, uid, unlimited


@pytest.fixture
def servers():
    """Servers started by the test (one at a time on the data directory), all stopped at the end."""
    started: List[Server] = []
    yield started
    for s in started:
        s.stop()


async def test_stored_messages_missed_during_a_server_restart_are_recovered(
    make_client: Any, servers: List[Server], tmp_path: Any
) -> None:
    data = ["--data-dir", str(tmp_path / "data"), *unlimited()]
    servers.append(Server(*data))
    a = servers[-1].address
    room = uid("room")

    alice = make_client(uid("alice"), a, reconnect_initial_backoff_ms=20, reconnect_max_backoff_ms=200)
    await alice.login()
    sub = await alice.subscribe(room)
    events = alice.events("link_state", "message")
    bob = make_client(uid("bob"), a)
    await bob.login()
    await bob.publish(room, "before", store_in_history=True)
    before = await expect(sub, "the message before", lambda m: m.message == "before")
    assert before.recovered is False
    await expect(events, "the message before", lambda e: isinstance(e, rtm2.MessageEvent))

    servers[-1].stop()
    await expect(events, "DISCONNECTED", lambda e: isinstance(e, rtm2.LinkStateEvent) and e.current == "DISCONNECTED")

    # While alice cannot connect, the same data directory is served elsewhere and written to.
    servers.append(Server(*data))
    carol = make_client(uid("carol"), servers[-1].address)
    await carol.login()
    for i in range(5):
        await carol.publish(room, f"while away {i}", store_in_history=True)
    await carol.logout()
    servers[-1].stop()

    # Back at alice's address: she reconnects by herself.
    servers.append(Server(*data, listen=a))

    def no_message_first(e: Any) -> bool:
        assert not isinstance(e, rtm2.MessageEvent), f"a message before the notice: {e!r}"
        return e.current == "CONNECTED"

    notice = await expect(events, "CONNECTED to the restarted server", no_message_first, timeout=20)
    assert notice.is_resumed is False
    assert notice.affected_channels == (room,), "a restarted server cannot vouch for the gap"

    recovered = []
    for i in range(5):
        m = await expect(sub, f"while away {i}", lambda m: True)
        assert (m.message, m.recovered, m.publisher) == (f"while away {i}", True, carol.user_id)
        assert m.to_dict()["recovered"] is True
        recovered.append(m)
    assert all(x.timestamp < y.timestamp for x, y in zip(recovered, recovered[1:]))

    dave = make_client(uid("dave"), a)
    await dave.login()
    await dave.publish(room, "after")
    after = await expect(sub, "the message after", lambda m: True)
    assert (after.message, after.recovered) == ("after", False)
    print(f"recovered {len(recovered)} of 5 missed stored messages; announced: {notice.affected_channels}")
