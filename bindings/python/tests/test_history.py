"""Message history (``client.history.get_messages`` and ``publish(store_in_history=True)``):
stored messages read back newest first a page at a time, a message not stored is absent, a user
channel's history is its owner's (15004 for another user), 15002 for an invalid range, a
publish to an offline user is stored (11035) and read after login, and encrypted history is
readable with the same key only. Against the embedded server and `rtm2 serve`."""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional

import rtm2
from conftest import WAIT, raises, uid
from rtm2 import ErrorCode as E

SALT = b"0123456789abcdef0123456789abcdef"


async def all_pages(client: rtm2.Client, channel: str, channel_type: str = "MESSAGE", count: int = 2) -> List[Any]:
    """Every stored message of a channel, newest first, `count` per page (paging until
    new_start is 0, bounded)."""
    got: List[Any] = []
    start = 0
    for _ in range(100):
        page = await asyncio.wait_for(
            client.history.get_messages(channel, channel_type, message_count=count, start=start), WAIT
        )
        assert isinstance(page, rtm2.HistoryPage)
        assert page.count == len(page.messages) <= count
        got.extend(page.messages)
        if page.new_start == 0:
            return got
        assert start == 0 or page.new_start < start
        start = page.new_start
    raise AssertionError("paging did not end")


async def test_stored_messages_come_back_newest_first_page_by_page(
    make_client: Any, endpoint: Optional[str]
) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    await alice.login()
    await bob.login()
    room = uid("room")
    for i in range(5):
        await alice.publish(room, f"m{i}", custom_type="note", store_in_history=True)
    await alice.publish(room, "not stored")
    await alice.publish(room, b"\x00\x01", store_in_history=True)
    got = await all_pages(bob, room)
    assert [m.message for m in got] == [b"\x00\x01", "m4", "m3", "m2", "m1", "m0"]
    assert [m.message_type for m in got] == ["BINARY"] + ["STRING"] * 5
    assert all(isinstance(m, rtm2.HistoryMessage) and m.publisher == alice.user_id for m in got)
    assert [m.custom_type for m in got[1:]] == ["note"] * 5
    assert all(a.timestamp > b.timestamp for a, b in zip(got, got[1:]))
    # The first page of two, its fields, and a range: start exclusive, end inclusive.
    first = await bob.history.get_messages(room, message_count=2)
    assert first.count == 2 and first.new_start == got[1].timestamp
    assert first.to_dict()["messages"] == first.messages
    between = await bob.history.get_messages(room, "MESSAGE", start=got[0].timestamp, end=got[3].timestamp)
    assert [m.message for m in between.messages] == ["m4", "m3", "m2"]
    assert between.new_start == 0
    # An empty channel: nothing.
    empty = await bob.history.get_messages(uid("empty"))
    assert (empty.messages, empty.count, empty.new_start) == ((), 0, 0)


async def test_errors(make_client: Any, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    await alice.login()
    room = uid("room")
    # 15002 is an argument error (its name has INVALID), 15004 a HistoryError.
    await raises(
        E.HISTORY_INVALID_TIMESTAMP, alice.history.get_messages(room, start=1000, end=1000), rtm2.InvalidArgumentError
    )
    await raises(E.HISTORY_INVALID_TIMESTAMP, alice.history.get_messages(room, start=1000, end=2000))
    await raises(E.INVALID_CHANNEL_TYPE, alice.history.get_messages(room, "STREAM"), rtm2.InvalidArgumentError)
    await raises(E.INVALID_CHANNEL_TYPE, alice.history.get_messages(room, "NOPE"))
    await raises(E.INVALID_CHANNEL_NAME, alice.history.get_messages("bad channel!\n"))


async def test_a_user_channel_is_its_owners_and_offline_users_get_theirs_later(
    make_client: Any, endpoint: Optional[str]
) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    await alice.login()
    await bob.login()
    await alice.publish(bob.user_id, b"\x01\x02\x03", channel_type="USER", store_in_history=True)
    mine = await bob.history.get_messages(bob.user_id, "USER")
    assert [(m.message, m.message_type, m.publisher) for m in mine.messages] == [
        (b"\x01\x02\x03", "BINARY", alice.user_id)
    ]
    await raises(
        E.HISTORY_OPERATION_NOT_PERMITTED,
        alice.history.get_messages(bob.user_id, rtm2.ChannelType.USER),
        rtm2.HistoryError,
    )
    # An offline receiver: stored, and said so (11035); read after logging in.
    carol_id = uid("carol")
    await raises(
        E.CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED,
        alice.publish(carol_id, "later", channel_type="USER", store_in_history=True),
    )
    carol = make_client(carol_id, endpoint)
    await carol.login()
    hers = await carol.history.get_messages(carol_id, "USER")
    assert [(m.message, m.publisher) for m in hers.messages] == [("later", alice.user_id)]


async def test_encrypted_history_is_read_with_the_same_key_only(make_client: Any, endpoint: Optional[str]) -> None:
    def client(name: str, key: Optional[str]) -> rtm2.Client:
        if key is None:
            return make_client(uid(name), endpoint)  # type: ignore[no-any-return]
        return make_client(uid(name), endpoint, encryption_mode="AES_256_GCM", cipher_key=key, salt=SALT)  # type: ignore[no-any-return]

    alice, bob, eve, plain = client("alice", "k1"), client("bob", "k1"), client("eve", "k2"), client("plain", None)
    for c in (alice, bob, eve, plain):
        await c.login()
    vault = uid("vault")
    await alice.publish(vault, "sealed words", store_in_history=True)
    await alice.publish(vault, b"sealed bytes", store_in_history=True)
    page = await bob.history.get_messages(vault)
    assert [m.message for m in page.messages] == [b"sealed bytes", "sealed words"]
    for other in (eve, plain):
        page = await other.history.get_messages(vault)
        assert page.messages == () and page.count == 0, page


async def test_the_service_is_the_clients(make_client: Any) -> None:
    c = make_client(uid("alice"))
    assert isinstance(c.history, rtm2.History)
    assert "rtm2.History" in repr(c.history)
    await c.close()
    await raises(E.INSTANCE_ALREADY_RELEASED, c.history.get_messages("room"))
