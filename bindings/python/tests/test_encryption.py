"""End-to-end encryption (``encryption_mode``, ``cipher_key``, ``salt``): clients with the same
settings talk in message channels, peer to peer, in stream topics and through presence states;
a client with another key, or none, gets none of it and counts what it dropped
(``undecryptable_messages``), and so does an encrypting client with a plain one's messages.
Invalid settings raise 10020 at creation."""

from __future__ import annotations

import asyncio
import json
from typing import Any, List, Optional

import pytest
import rtm2
from conftest import APP_ID, WAIT, expect, uid
from rtm2 import ErrorCode as E

SALT = b"0123456789abcdef0123456789abcdef"


def message(channel: str, channel_type: str = "MESSAGE") -> Any:
    return lambda e: isinstance(e, rtm2.MessageEvent) and e.channel == channel and e.channel_type == channel_type


def presence_state(channel: str, publisher: str) -> Any:
    return lambda e: (
        isinstance(e, rtm2.PresenceEvent)
        and e.event_type == rtm2.PresenceEventType.REMOTE_STATE_CHANGED
        and e.channel == channel
        and e.publisher == publisher
    )


async def dropped(client: rtm2.Client, n: int) -> None:
    """Waits (bounded) until `client` has dropped `n` undecryptable messages, and checks that it
    does not drop more."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while client.undecryptable_messages < n and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert client.undecryptable_messages == n, f"{client.user_id}: {client.undecryptable_messages} dropped, not {n}"


async def received(stream: rtm2.EventStream, wait: float = 0.3) -> List[Any]:
    """The messages `stream` holds now (the events of a batch are delivered together, after
    the batch was decrypted and its undecryptable messages counted)."""
    got = []
    while True:
        try:
            ev = await stream.recv(timeout=wait)
        except asyncio.TimeoutError:
            return got
        if ev is None:
            return got
        if isinstance(ev, rtm2.MessageEvent):
            got.append(ev)


async def test_the_same_settings_talk_another_key_and_a_plain_client_get_nothing(
    make_client: Any, endpoint: Optional[str]
) -> None:
    # The three forms of each setting are the same: a name or a constant, bytes or the str of
    # the same UTF-8 bytes.
    alice = make_client(uid("alice"), endpoint, encryption_mode="AES_128_GCM", cipher_key="shared secret", salt=SALT)
    bob = make_client(
        uid("bob"),
        endpoint,
        encryption_mode=rtm2.EncryptionMode.AES_128_GCM,
        cipher_key="shared secret",
        salt=SALT.decode(),
    )
    eve = make_client(uid("eve"), endpoint, encryption_mode=1, cipher_key="another key", salt=SALT)
    plain = make_client(uid("plain"), endpoint)
    for c in (alice, bob, eve, plain):
        await c.login()
    room = uid("room")
    streams = {c.user_id: c.events("message", "presence") for c in (bob, eve, plain)}
    for c in (bob, eve, plain):
        await c.subscribe(room)
    await alice.subscribe(room, with_message=False)

    # A message-channel message.
    await alice.publish(room, "top secret plan", custom_type="note")
    m = await expect(streams[bob.user_id], "alice's message", message(room))
    assert (m.message, m.message_type, m.publisher) == ("top secret plan", "STRING", alice.user_id)
    assert m.custom_type == "note"

    # Peer to peer, binary: to bob, and to the two that cannot read it.
    for c in (bob, eve, plain):
        await alice.publish(c.user_id, b"\x00\x01\x02\xff", channel_type="USER")
    m = await expect(streams[bob.user_id], "alice's peer message", message(bob.user_id, "USER"))
    assert (m.message, m.message_type, m.publisher) == (b"\x00\x01\x02\xff", "BINARY", alice.user_id)

    # A stream topic.
    stage = uid("stage")
    a_sc, b_sc = alice.stream_channel(stage), bob.stream_channel(stage)
    await a_sc.join()
    await b_sc.join()
    await a_sc.join_topic("t")
    await b_sc.subscribe_topic("t", [alice.user_id])
    await a_sc.publish_topic("t", "on stage")
    m = await expect(streams[bob.user_id], "alice's topic message", message(stage, "STREAM"))
    assert (m.message, m.topic, m.publisher) == ("on stage", "t", alice.user_id)

    # A presence state: bob reads it in clear, the others do not see it.
    await alice.presence.set_state(room, {"mood": "secretly happy"})
    ev = await expect(streams[bob.user_id], "alice's state", presence_state(room, alice.user_id))
    assert ev.states == {"mood": "secretly happy"}
    assert (await bob.presence.get_state(room, alice.user_id)).states == {"mood": "secretly happy"}
    for c in (eve, plain):
        assert (await c.presence.get_state(room, alice.user_id)).states == {}, c.user_id

    # Eve (another key) and the plain client dropped the channel message and the peer message,
    # and got none of alice's messages.
    for c in (eve, plain):
        await dropped(c, 2)
        got = [(m.channel, m.message) for m in await received(streams[c.user_id]) if m.publisher == alice.user_id]
        assert got == [], f"{c.user_id} received {got}"
    assert (alice.undecryptable_messages, bob.undecryptable_messages) == (0, 0)


async def test_plain_and_encrypting_clients_drop_each_others_messages(make_client: Any, dev_server: Any) -> None:
    ep = dev_server.address
    plain = make_client(uid("plain"), ep)
    sealed = make_client(uid("sealed"), ep, encryption_mode="AES_256_GCM", cipher_key="k", salt=b"pepper")
    for c in (plain, sealed):
        await c.login()
    room = uid("room")
    p_ev, s_ev = plain.events("message"), sealed.events("message")
    await plain.subscribe(room)
    await sealed.subscribe(room)

    # Each receives its own messages (echoed) and drops the other's: what it receives after
    # the other's message is its own next one.
    await plain.publish(room, "in clear")
    await sealed.publish(room, "sealed")
    await plain.publish(room, "plain again")
    assert (await expect(s_ev, "sealed's own message", message(room))).message == "sealed"
    assert (await expect(p_ev, "plain's own message", message(room))).message == "in clear"
    assert (await expect(p_ev, "plain's second message", message(room))).message == "plain again"
    assert plain.undecryptable_messages == 1
    await dropped(sealed, 2)
    assert await received(s_ev) == []

    # Peer to peer too.
    await plain.publish(sealed.user_id, "psst", channel_type="USER")
    await sealed.publish(plain.user_id, "psst", channel_type="USER")
    await dropped(plain, 2)
    await dropped(sealed, 3)
    assert await received(p_ev) == []
    assert await received(s_ev) == []


async def test_invalid_settings_raise_10020_and_valid_ones_are_accepted() -> None:
    made: List[rtm2.Client] = []
    try:
        for bad in [
            {"encryption_mode": "AES_128_GCM"},  # no key
            {"encryption_mode": "AES_128_GCM", "cipher_key": "", "salt": SALT},
            {"encryption_mode": "AES_256_GCM", "cipher_key": "k", "salt": bytes(33)},
            {"encryption_mode": "AES_256_GCM", "cipher_key": "k", "salt": "é" * 17},  # 34 UTF-8 bytes
            {"encryption_mode": "AES_512_GCM", "cipher_key": "k"},
            {"encryption_mode": "aes_128_gcm", "cipher_key": "k"},
            {"encryption_mode": 3, "cipher_key": "k"},
            {"encryption_mode": -1, "cipher_key": "k"},
            {"encryption_mode": 2**70, "cipher_key": "k"},
            {"cipher_key": "k"},  # a key without a mode: it would go out in clear
            {"encryption_mode": "NONE", "salt": b"s"},
        ]:
            with pytest.raises(rtm2.InvalidArgumentError) as info:
                made.append(rtm2.Client(APP_ID, uid("bad"), **bad))
            err = info.value
            assert (err.code, err.operation) == (E.INVALID_ENCRYPTION_PARAMETER, "new"), bad
            assert err.name == "INVALID_ENCRYPTION_PARAMETER"
            assert int(err.code) == 10020
        # Wrong Python types: TypeError.
        for bad in [
            {"encryption_mode": 1.0, "cipher_key": "k"},
            {"encryption_mode": True, "cipher_key": "k"},
            {"encryption_mode": "AES_128_GCM", "cipher_key": b"k"},
            {"encryption_mode": "AES_128_GCM", "cipher_key": "k", "salt": 42},
        ]:
            with pytest.raises(TypeError):
                made.append(rtm2.Client(APP_ID, uid("bad"), **bad))
        # A 5-byte salt is zero-padded (accepted), as are 32 bytes, no salt, a bytearray or
        # memoryview, the number of a mode and NONE with nothing else.
        for good in [
            {"encryption_mode": "AES_256_GCM", "cipher_key": "k", "salt": b"short"},
            {"encryption_mode": rtm2.EncryptionMode.AES_128_GCM, "cipher_key": "k", "salt": SALT},
            {"encryption_mode": 2, "cipher_key": "k"},
            {"encryption_mode": "AES_128_GCM", "cipher_key": "k", "salt": bytearray(b"pepper")},
            {"encryption_mode": "AES_128_GCM", "cipher_key": "k", "salt": memoryview(b"pepper")},
            {"encryption_mode": "NONE"},
            {"encryption_mode": 0},
            {},
        ]:
            c = rtm2.Client(APP_ID, uid("good"), **good)
            made.append(c)
            assert c.undecryptable_messages == 0
        # Not tuning parameters: the key never shows in the parameters.
        shown = json.dumps(made[-7].get_parameters())
        assert "cipher" not in shown and "salt" not in shown and "encryption" not in shown, shown
        with pytest.raises(rtm2.InvalidArgumentError) as info:
            made[-1].set_parameters({"cipher_key": "k"})
        assert info.value.code == E.INVALID_PARAMETER
    finally:
        for c in made:
            await c.close()
    # A closed client says so, as for the other properties.
    with pytest.raises(rtm2.ClientError) as info:
        made[0].undecryptable_messages
    assert info.value.code == E.INSTANCE_ALREADY_RELEASED


def test_the_encryption_modes_are_an_enum() -> None:
    assert [(m.name, m.number) for m in rtm2.EncryptionMode] == [("NONE", 0), ("AES_128_GCM", 1), ("AES_256_GCM", 2)]
    assert rtm2.EncryptionMode in rtm2.ENUMS and rtm2.EncryptionMode.AES_256_GCM == "AES_256_GCM"
