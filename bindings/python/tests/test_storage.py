"""Storage: channel and user metadata, revisions (compare-and-set), the options, the storage
events (SNAPSHOT, then UPDATE with the whole set) and the error codes."""

from __future__ import annotations

import pathlib
from typing import Any, Callable, Optional

import pytest
import rtm2
from conftest import Server, expect, raises, uid, unlimited
from rtm2 import ErrorCode as E
from rtm2 import MetadataItem as Item


def storage(kind: str, target: str) -> Callable[[Any], bool]:
    return lambda e: isinstance(e, rtm2.StorageEvent) and e.event_type == kind and e.target == target


def kv(md: rtm2.Metadata) -> dict:
    return {i.key: i.value for i in md.items}


async def test_channel_metadata_and_revisions(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    await alice.login()
    await bob.login()
    b_ev = bob.events("storage")
    room = uid("room")
    st = alice.storage

    await bob.subscribe(room, with_message=False, with_presence=False, with_metadata=True)
    snap = await expect(b_ev, "SNAPSHOT", storage("SNAPSHOT", room))
    assert snap.event_type == rtm2.StorageEventType.SNAPSHOT
    assert (snap.storage_type, snap.channel_type, snap.publisher) == ("CHANNEL", "MESSAGE", "")
    assert snap.data == (await st.get_channel_metadata(room)) and snap.data.major_revision == 0
    assert snap.data.items == ()

    w = await st.set_channel_metadata(room, {"topic": "rust", "owner": alice.user_id}, record_author=True)
    assert isinstance(w, rtm2.MetadataWrite) and (w.major_revision, w.total_count) == (1, 2)
    ev = await expect(b_ev, "UPDATE", storage("UPDATE", room))
    assert (ev.storage_type, ev.channel_type, ev.publisher, ev.data.major_revision) == (
        "CHANNEL",
        "MESSAGE",
        alice.user_id,
        1,
    )
    assert [(i.key, i.value, i.revision, i.author, i.updated) for i in ev.data.items] == [
        ("owner", alice.user_id, 1, alice.user_id, 0),
        ("topic", "rust", 1, alice.user_id, 0),
    ]
    md = await bob.storage.get_channel_metadata(room)
    assert md == ev.data and md.get("topic").value == "rust" and md.get("nothing") is None

    # Major revision: -1 no check, N must be the set's.
    await raises(E.STORAGE_OUTDATED_REVISION, st.set_channel_metadata(room, {"topic": "go"}, major_revision=2))
    w = await st.set_channel_metadata(room, {"topic": "go"}, major_revision=1, record_ts=True)
    assert (w.major_revision, w.total_count) == (2, 2)
    ev = await expect(b_ev, "UPDATE 2", storage("UPDATE", room))
    topic = ev.data.get("topic")
    assert (topic.value, topic.revision, topic.author) == ("go", 2, "") and topic.updated > 0
    assert ev.data.get("owner").revision == 1

    # Item revisions: the revision of an item is the major revision of the write that wrote it.
    await raises(E.STORAGE_OUTDATED_REVISION, st.update_channel_metadata(room, [Item("topic", "zig", revision=1)]))
    w = await st.update_channel_metadata(room, [Item("topic", "zig", revision=2)])
    assert w.major_revision == 3
    await raises(E.STORAGE_OUTDATED_REVISION, st.update_channel_metadata(room, {"missing": "x"}))
    await raises(E.STORAGE_OUTDATED_REVISION, st.set_channel_metadata(room, [("topic", "c", 0)]))  # create only
    w = await st.set_channel_metadata(room, [("fresh", "1", 0)])
    assert (w.major_revision, w.total_count) == (4, 3)
    await raises(E.STORAGE_OUTDATED_REVISION, st.set_channel_metadata(room, [Item("nothing", "1", 7)]))
    await raises(E.STORAGE_OUTDATED_REVISION, st.remove_channel_metadata(room, [Item("fresh", revision=3)]))
    w = await st.remove_channel_metadata(room, ["fresh"], major_revision=4)
    assert (w.major_revision, w.total_count) == (5, 2)
    ev = await expect(b_ev, "UPDATE after remove", lambda e: storage("UPDATE", room)(e) and e.data.major_revision == 5)
    assert kv(ev.data) == {"owner": alice.user_id, "topic": "zig"}

    # A stream channel of the same name has its own metadata.
    assert (await st.get_channel_metadata(room, channel_type="STREAM")).major_revision == 0
    w = await st.set_channel_metadata(room, {"s": "1"}, channel_type=rtm2.ChannelType.STREAM)
    assert w.major_revision == 1
    assert kv(await st.get_channel_metadata(room)) == {"owner": alice.user_id, "topic": "zig"}

    # Removing without items removes everything; the major revision keeps counting.
    w = await st.remove_channel_metadata(room)
    assert (w.major_revision, w.total_count) == (6, 0)
    md = await st.get_channel_metadata(room)
    assert (md.major_revision, md.items) == (6, ())
    # major_revision 0 on set: only while the set is empty.
    assert (await st.set_channel_metadata(room, {"a": "1"}, major_revision=0)).major_revision == 7
    await raises(E.STORAGE_OUTDATED_REVISION, st.set_channel_metadata(room, {"b": "1"}, major_revision=0))


async def test_storage_events_need_with_metadata(make_client) -> None:
    alice = make_client()
    bob = make_client()
    await alice.login()
    await bob.login()
    b_ev = bob.events("storage")
    quiet, loud = uid("quiet"), uid("loud")
    await bob.subscribe(quiet)  # with_metadata defaults to False
    await bob.subscribe(loud, with_metadata=True)
    await expect(b_ev, "SNAPSHOT of loud", storage("SNAPSHOT", loud))
    await alice.storage.set_channel_metadata(quiet, {"k": "v"})
    await alice.storage.set_channel_metadata(loud, {"k": "v"})
    ev = await expect(b_ev, "a storage event", lambda e: isinstance(e, rtm2.StorageEvent))
    assert (ev.event_type, ev.target) == ("UPDATE", loud)  # nothing came for `quiet`
    # Joining a stream channel with metadata works the same way.
    sc = bob.stream_channel(quiet)
    await sc.join(with_presence=False, with_metadata=True)
    ev = await expect(b_ev, "stream SNAPSHOT", storage("SNAPSHOT", quiet))
    assert ev.channel_type == "STREAM"
    await alice.storage.set_channel_metadata(quiet, {"k": "stream"}, channel_type="STREAM")
    ev = await expect(b_ev, "stream UPDATE", storage("UPDATE", quiet))
    assert (ev.channel_type, kv(ev.data)) == ("STREAM", {"k": "stream"})


async def test_user_metadata(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    await alice.login()
    await bob.login()
    b_ev = bob.events("storage")

    await bob.storage.subscribe_user_metadata(alice.user_id)
    snap = await expect(b_ev, "SNAPSHOT", storage("SNAPSHOT", alice.user_id))
    assert (snap.storage_type, snap.channel_type, snap.publisher, snap.data.major_revision) == ("USER", "NONE", "", 0)

    # "" is yourself.
    w = await alice.storage.set_user_metadata("", {"status": "online"}, record_ts=True)
    assert (w.major_revision, w.total_count) == (1, 1)
    ev = await expect(b_ev, "UPDATE", storage("UPDATE", alice.user_id))
    assert (ev.storage_type, ev.publisher, kv(ev.data), ev.data.major_revision) == (
        "USER",
        alice.user_id,
        {"status": "online"},
        1,
    )
    md = await bob.storage.get_user_metadata(alice.user_id)
    assert md.get("status").updated > 0 and md.get("status").author == ""
    mine = await alice.storage.get_user_metadata()
    # The same set, read at another time: equal as Metadata (as to the event's data), the
    # responses differ by their timestamps only.
    assert mine.user_id == md.user_id == alice.user_id
    assert rtm2.Metadata.__eq__(mine, md) and mine == ev.data

    # Anyone may write a user's metadata.
    w = await bob.storage.set_user_metadata(alice.user_id, {"note": "hi"}, record_author=True)
    assert w.major_revision == 2
    ev = await expect(b_ev, "UPDATE by bob", storage("UPDATE", alice.user_id))
    assert ev.publisher == bob.user_id and kv(ev.data) == {"note": "hi", "status": "online"}
    assert ev.data.get("note").author == bob.user_id
    await raises(E.STORAGE_OUTDATED_REVISION, alice.storage.update_user_metadata("", [Item("note", "x", 1)]))
    w = await alice.storage.update_user_metadata(alice.user_id, [Item("note", "hello", 2)], major_revision=2)
    assert (w.major_revision, w.total_count) == (3, 2)
    w = await alice.storage.remove_user_metadata("", ["note"])
    assert (w.major_revision, w.total_count) == (4, 1)
    await raises(E.STORAGE_INVALID_ARGUMENT, alice.storage.set_user_metadata("", {"x": "1"}, lock_name="door"))
    await raises(E.STORAGE_OUTDATED_REVISION, alice.storage.update_user_metadata("", {"absent": "1"}))

    # After unsubscribing, nothing more comes: the next event is about carol.
    carol = uid("carol")
    await bob.storage.subscribe_user_metadata(carol)
    await expect(b_ev, "SNAPSHOT of carol", storage("SNAPSHOT", carol))
    await bob.storage.unsubscribe_user_metadata(alice.user_id)
    await raises(E.STORAGE_NOT_SUBSCRIBE, bob.storage.unsubscribe_user_metadata(alice.user_id), rtm2.StorageError)
    await alice.storage.set_user_metadata("", {"after": "1"})
    await alice.storage.set_user_metadata(carol, {"for": "carol"})
    ev = await expect(b_ev, "a storage event", lambda e: isinstance(e, rtm2.StorageEvent))
    assert (ev.event_type, ev.target) == ("UPDATE", carol)
    w = await alice.storage.remove_user_metadata(carol)
    assert w.total_count == 0

    # At most 50 subscribed users.
    for i in range(49):
        await bob.storage.subscribe_user_metadata(f"u{i}-{carol}")
    await raises(E.STORAGE_SUBSCRIBE_USER_EXCEED_LIMITATION, bob.storage.subscribe_user_metadata(uid("one-more")))
    await bob.storage.subscribe_user_metadata(carol)  # already subscribed: fine


async def test_storage_errors(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    room = uid("room")
    await raises(E.NOT_LOGIN, alice.storage.get_channel_metadata(room), rtm2.LoginError)
    await alice.login()
    st = alice.storage
    await raises(
        E.STORAGE_METADATA_ITEM_EXCEED_LIMITATION, st.set_channel_metadata(room, {f"k{i}": "v" for i in range(33)})
    )
    await st.set_channel_metadata(room, {f"k{i}": "v" for i in range(32)})
    await raises(E.STORAGE_INVALID_METADATA_ITEM, st.set_channel_metadata(room, {}), rtm2.InvalidArgumentError)
    await raises(E.STORAGE_KEY_LENGTH_OVERFLOW, st.set_channel_metadata(room, {"x" * 33: "v"}))
    await raises(E.STORAGE_VALUE_LENGTH_OVERFLOW, st.set_channel_metadata(room, {"big": "x" * 16385}))
    await raises(E.STORAGE_INVALID_KEY, st.set_channel_metadata(room, {"_k": "v"}), rtm2.InvalidArgumentError)
    await raises(E.STORAGE_DUPLICATE_KEY, st.set_channel_metadata(room, [("a", "1"), ("a", "2")]))
    await raises(E.STORAGE_INVALID_REVISION, st.set_channel_metadata(room, {"a": "1"}, major_revision=-2))
    await raises(E.STORAGE_INVALID_REVISION, st.set_channel_metadata(room, [Item("a", "1", -5)]))
    await raises(E.STORAGE_INVALID_REVISION, st.update_channel_metadata(room, [Item("k0", "1", 0)]))
    await raises(E.STORAGE_INVALID_REVISION, st.update_channel_metadata(room, {"k0": "1"}, major_revision=0))
    await raises(E.STORAGE_INVALID_REVISION, st.remove_channel_metadata(room, major_revision=0))
    await raises(E.STORAGE_INVALID_LOCK_NAME, st.set_channel_metadata(room, {"a": "1"}, lock_name="bad/name"))
    await raises(E.STORAGE_LOCK_NOT_ACQUIRED, st.set_channel_metadata(room, {"a": "1"}, lock_name="nolock"))
    await raises(E.INVALID_CHANNEL_TYPE, st.set_channel_metadata(room, {"a": "1"}, channel_type="USER"))  # type: ignore[arg-type]
    await raises(E.INVALID_CHANNEL_NAME, st.get_channel_metadata("_room"))
    await raises(E.INVALID_USER_ID, st.get_user_metadata("a" * 65))
    await raises(E.INVALID_USER_ID, st.subscribe_user_metadata(""))
    # A whole set is at most 16 KB.
    big = uid("big")
    w = await st.set_channel_metadata(big, {"big16000": "x" * 16000})
    assert (w.major_revision, w.total_count) == (1, 1)
    await raises(E.STORAGE_METADATA_LENGTH_OVERFLOW, st.set_channel_metadata(big, {"more": "x" * 1000}))


async def test_metadata_guarded_by_a_lock(make_client, endpoint: Optional[str]) -> None:
    alice = make_client(uid("alice"), endpoint)
    bob = make_client(uid("bob"), endpoint)
    await alice.login()
    await bob.login()
    room = uid("room")
    await alice.lock.set_lock(room, "door")
    await alice.lock.acquire_lock(room, "door")
    w = await alice.storage.set_channel_metadata(room, {"k": "v"}, lock_name="door")
    assert w.major_revision == 1
    await raises(E.STORAGE_LOCK_NOT_ACQUIRED, bob.storage.set_channel_metadata(room, {"k": "w"}, lock_name="door"))
    await raises(E.STORAGE_LOCK_NOT_ACQUIRED, bob.storage.remove_channel_metadata(room, lock_name="door"))
    await alice.lock.release_lock(room, "door")
    await raises(E.STORAGE_LOCK_NOT_ACQUIRED, alice.storage.update_channel_metadata(room, {"k": "x"}, lock_name="door"))


async def test_metadata_survives_a_server_restart_with_a_data_dir(make_client, tmp_path: pathlib.Path) -> None:
    room = uid("durable")
    first = Server("--data-dir", str(tmp_path), *unlimited())
    try:
        a = make_client(endpoint=first.address)
        await a.login()
        await a.storage.set_channel_metadata(room, {"k": "kept"})
        await a.storage.set_user_metadata("", {"me": "too"})
        await a.close()
    finally:
        first.stop()
    second = Server("--data-dir", str(tmp_path), *unlimited())
    try:
        b = make_client(endpoint=second.address)
        await b.login()
        md = await b.storage.get_channel_metadata(room)
        assert (kv(md), md.major_revision) == ({"k": "kept"}, 1)
        assert kv(await b.storage.get_user_metadata(a.user_id)) == {"me": "too"}
    finally:
        second.stop()


async def test_items_the_binding_converts(make_client) -> None:
    c = make_client()
    st = c.storage
    assert repr(st).startswith("<rtm2.Storage of")
    item = Item("k", "v", 3)
    assert (item.key, item.value, item.revision, item.updated, item.author) == ("k", "v", 3, 0, "")
    assert item == Item("k", "v", revision=3) and item != Item("k", "v")
    assert Item("k").to_dict() == {"key": "k", "value": "", "revision": -1, "updated": 0, "author": ""}
    with pytest.raises(TypeError):
        await st.set_channel_metadata("r", "k=v")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await st.set_channel_metadata("r", [42])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        await st.set_channel_metadata("r", [("k", "v", "not a revision")])  # type: ignore[list-item]
    await raises(E.INVALID_CHANNEL_TYPE, st.get_channel_metadata("r", channel_type="ROOM"))  # type: ignore[arg-type]
    await c.close()
    await raises(E.INSTANCE_ALREADY_RELEASED, st.get_user_metadata())
