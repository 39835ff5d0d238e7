"""The package surface without any server: codes, errors, records, tokens, argument checks."""

from __future__ import annotations

import importlib.util
import pathlib
import pickle
import sys

import pytest
import rtm2
from conftest import APP_ID, CERT, raises
from rtm2 import ErrorCode, _rtm2

E = ErrorCode


def test_version_and_exports() -> None:
    assert rtm2.__version__ == _rtm2.__version__
    assert rtm2.__version__.count(".") == 2
    for name in rtm2.__all__:
        assert hasattr(rtm2, name), name
    assert (pathlib.Path(rtm2.__file__).parent / "py.typed").exists()


def test_error_codes_come_from_the_native_table() -> None:
    table = _rtm2.error_codes()
    assert [(int(c), c.name) for c in ErrorCode] == [(code, name) for code, name, _ in table]
    assert len(ErrorCode) == 119
    assert E.NOT_LOGIN == 10002
    assert E.CHANNEL_RECEIVER_OFFLINE == 11033
    assert E.HISTORY_PERMISSION_DENIED == 15006
    assert E(11010).name == "CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION"


def test_the_codes_stub_matches_the_native_table() -> None:
    path = pathlib.Path(__file__).resolve().parents[1] / "tools" / "gen_codes_stub.py"
    spec = importlib.util.spec_from_file_location("gen_codes_stub", path)
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.STUB.read_text() == gen.render(), "run bindings/python/tools/gen_codes_stub.py"


@pytest.mark.parametrize(
    "code, cls",
    [
        (E.LOGIN_TIMEOUT, rtm2.RtmTimeoutError),
        (E.RENEW_TOKEN_TIMEOUT, rtm2.RtmTimeoutError),
        (E.CHANNEL_SUBSCRIBE_TIMEOUT, rtm2.RtmTimeoutError),
        (E.CHANNEL_PUBLISH_MESSAGE_TIMEOUT, rtm2.RtmTimeoutError),
        (E.NOT_LOGIN, rtm2.LoginError),
        (E.INVALID_TOKEN, rtm2.LoginError),
        (E.TOKEN_EXPIRED, rtm2.LoginError),
        (E.INCONSISTENT_APPID, rtm2.LoginError),
        (E.INVALID_APP_ID, rtm2.InvalidArgumentError),
        (E.INVALID_USER_ID, rtm2.InvalidArgumentError),
        (E.INVALID_CHANNEL_NAME, rtm2.InvalidArgumentError),
        (E.INVALID_PARAMETER, rtm2.InvalidArgumentError),
        (E.INVALID_CHANNEL_TYPE, rtm2.InvalidArgumentError),
        (E.CHANNEL_INVALID_TOPIC_NAME, rtm2.InvalidArgumentError),
        (E.CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION, rtm2.InvalidArgumentError),
        (E.CHANNEL_CUSTOM_TYPE_LENGTH_OVERFLOW, rtm2.InvalidArgumentError),
        (E.CHANNEL_INVALID_TOPIC_META, rtm2.InvalidArgumentError),
        (E.NOT_INITIALIZED, rtm2.ClientError),
        (E.DUPLICATE_OPERATION, rtm2.ClientError),
        (E.INSTANCE_ALREADY_RELEASED, rtm2.ClientError),
        (E.CHANNEL_INSTANCE_EXCEED_LIMITATION, rtm2.ChannelError),
        (E.CHANNEL_EXCEED_TOPIC_LIMITATION, rtm2.ChannelError),
        (E.CHANNEL_RECEIVER_OFFLINE, rtm2.ChannelError),
        (E.CHANNEL_JOIN_FAILED, rtm2.ChannelError),
        (E.STORAGE_LOCK_NOT_ACQUIRED, rtm2.StorageError),
        (E.PRESENCE_USER_NOT_EXIST, rtm2.PresenceError),
        (E.LOCK_NOT_EXIST, rtm2.LockError),
        (E.HISTORY_NOT_AVAILABLE, rtm2.HistoryError),
    ],
)
def test_error_classes_by_area(code: ErrorCode, cls: type) -> None:
    assert rtm2.error_class(code) is cls
    err = cls(code, "why", "op")
    assert isinstance(err, rtm2.RtmError) and isinstance(err, Exception)
    assert (err.code, err.name, err.reason, err.operation) == (code, code.name, "why", "op")
    assert str(err) == f"op failed: {code.name} ({int(code)}): why"
    assert pickle.loads(pickle.dumps(err)).code == code


def test_every_code_has_a_class_and_timeouts_are_timeout_errors() -> None:
    for code in ErrorCode:
        cls = rtm2.error_class(code)
        assert issubclass(cls, rtm2.RtmError)
        assert issubclass(cls, TimeoutError) == code.name.endswith("_TIMEOUT"), code
    assert issubclass(rtm2.InvalidArgumentError, ValueError)
    # An unknown number still makes an error.
    assert rtm2.RtmError(424242).name == "UNKNOWN"


def test_tokens() -> None:
    t = rtm2.build_token(APP_ID, CERT, "alice", 600)
    assert t.startswith("007") and len(t) > 100
    s = rtm2.build_stream_token(APP_ID, CERT, "stage", "alice", 600)
    assert s.startswith("007") and s != t
    with pytest.raises(rtm2.InvalidArgumentError) as info:
        rtm2.build_token("not-an-app-id", CERT, "alice", 600)
    assert info.value.code == E.INVALID_PARAMETER and info.value.operation == "build_token"
    with pytest.raises(rtm2.InvalidArgumentError):
        rtm2.build_stream_token(APP_ID, "short", "stage", "alice", 600)


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(rtm2.InvalidArgumentError) as info:
        rtm2.Client("short", "alice")
    assert info.value.code == E.INVALID_APP_ID
    with pytest.raises(rtm2.InvalidArgumentError) as info:
        rtm2.Client(APP_ID, "")
    assert info.value.code == E.INVALID_USER_ID
    with pytest.raises(rtm2.InvalidArgumentError) as info:
        rtm2.Client(APP_ID, "alice", no_such_parameter=1)
    assert info.value.code == E.INVALID_PARAMETER and "no_such_parameter" in info.value.reason
    with pytest.raises(rtm2.InvalidArgumentError) as info:
        rtm2.Client(APP_ID, "alice", request_timeout_ms=5)
    assert info.value.code == E.INVALID_PARAMETER
    with pytest.raises(rtm2.InvalidArgumentError) as info:
        rtm2.Client(APP_ID, "alice", endpoint="http://example")
    assert info.value.code == E.INVALID_PARAMETER


def test_endpoint_ports_and_hosts_are_checked_at_once() -> None:
    for bad in ["tcp://127.0.0.1:99999", "127.0.0.1:0", "tcp://:9696", "bad host:9696", "::1:9696"]:
        with pytest.raises(rtm2.InvalidArgumentError) as info:
            rtm2.Client(APP_ID, "alice", endpoint=bad)
        assert info.value.code == E.INVALID_PARAMETER, bad
    assert "99999" in str(pytest.raises(rtm2.InvalidArgumentError, rtm2.Client, APP_ID, "a", "127.0.0.1:99999").value)


async def test_presence_timeout_and_heartbeat_are_clamped_like_the_server() -> None:
    c = rtm2.Client(APP_ID, "clamp-check", presence_timeout_s=4, heartbeat_interval_s=1)
    d = rtm2.Client(APP_ID, "clamp-check2", presence_timeout_s=301, heartbeat_interval_s=1801)
    try:
        assert c.get_parameters()["presence_timeout_s"] == 5
        assert c.get_parameters()["heartbeat_interval_s"] == 5
        assert d.get_parameters()["presence_timeout_s"] == 300
        assert d.get_parameters()["heartbeat_interval_s"] == 1800
        c.set_parameters({"presence_timeout_s": 0, "heartbeat_interval_s": 4})
        assert c.get_parameters()["presence_timeout_s"] == 5
        assert c.get_parameters()["heartbeat_interval_s"] == 5
        c.set_parameters({"presence_timeout_s": 42})
        assert c.get_parameters()["presence_timeout_s"] == 42
        with pytest.raises(rtm2.InvalidArgumentError) as info:
            c.set_parameters({"presence_timeout_s": -1})
        assert info.value.code == E.INVALID_PARAMETER
        assert c.get_parameters()["presence_timeout_s"] == 42
    finally:
        await c.close()
        await d.close()


async def test_arguments_the_binding_converts() -> None:
    c = rtm2.Client(APP_ID, "args-check")
    try:
        with pytest.raises(rtm2.InvalidArgumentError) as info:
            c.on("no-such-event", print)
        assert info.value.code == E.INVALID_EVENT_HANDLER
        with pytest.raises(TypeError):
            c.on("message", 42)  # type: ignore[call-overload]
        await raises(E.INVALID_CHANNEL_TYPE, c.publish("c", "x", channel_type="BROADCAST"))  # type: ignore[arg-type]
        await raises(E.INVALID_PARAMETER, c.publish("c", "x", timeout=-1))
        await raises(E.INVALID_PARAMETER, c.publish("c", "x", timeout=float("nan")))
        with pytest.raises(TypeError):
            await c.publish("c", 42)  # type: ignore[arg-type]
        with pytest.raises(rtm2.InvalidArgumentError) as info:
            c.stream_channel("")
        assert info.value.code == E.INVALID_CHANNEL_NAME
        sc = c.stream_channel("s")
        await raises(E.INVALID_PARAMETER, sc.join_topic("t", qos="SOMETIMES"))  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await sc.subscribe_topic("t", "alice")
        with pytest.raises(rtm2.InvalidArgumentError):
            c.set_parameters({"unknown": True})
        c.set_parameters({"request_timeout_ms": 5000})
        assert c.get_parameters()["request_timeout_ms"] == 5000
    finally:
        await c.close()
    # A closed client says so.
    await raises(E.INSTANCE_ALREADY_RELEASED, c.publish("c", "x"), rtm2.ClientError)
    await raises(E.INSTANCE_ALREADY_RELEASED, c.login())
    await c.close()  # idempotent
    assert c.closed


def test_records_are_dataclass_like() -> None:
    a = _rtm2.PublisherInfo  # records are made by the SDK only
    assert a.__module__ == "rtm2"
    assert "user_id" in a.__match_args__
    with pytest.raises(TypeError):
        a()  # type: ignore[call-arg]


def test_enums_come_from_the_native_tables() -> None:
    tables = dict(_rtm2.enum_tables())
    assert [e.__name__ for e in rtm2.ENUMS] == [name for name, _ in _rtm2.enum_tables()]
    for e in rtm2.ENUMS:
        assert e.__module__ == "rtm2" and issubclass(e, rtm2.RtmEnum) and issubclass(e, str)
        assert [(m.value, m.number) for m in e] == tables[e.__name__]
    P = rtm2.PresenceEventType
    assert [(m.name, m.number) for m in P] == [
        ("NONE", 0),
        ("SNAPSHOT", 1),
        ("INTERVAL", 2),
        ("REMOTE_JOIN", 3),
        ("REMOTE_LEAVE", 4),
        ("REMOTE_TIMEOUT", 5),
        ("REMOTE_STATE_CHANGED", 6),
        ("ERROR_OUT_OF_SERVICE", 7),
    ]
    assert [(m.name, m.number) for m in rtm2.StorageType] == [("NONE", 0), ("USER", 1), ("CHANNEL", 2)]
    assert [(m.name, m.number) for m in rtm2.StorageEventType] == [
        ("NONE", 0),
        ("SNAPSHOT", 1),
        ("SET", 2),
        ("UPDATE", 3),
        ("REMOVE", 4),
    ]
    assert [(m.name, m.number) for m in rtm2.LockEventType] == [
        ("NONE", 0),
        ("SNAPSHOT", 1),
        ("SET", 2),
        ("REMOVED", 3),
        ("ACQUIRED", 4),
        ("RELEASED", 5),
        ("EXPIRED", 6),
    ]
    assert rtm2.ChannelType.STREAM.number == 2 and rtm2.LinkStateChangeReason.SAME_UID_LOGIN.number == 27
    # They are the names the events carry.
    assert P.SNAPSHOT == "SNAPSHOT" and str(P.SNAPSHOT) == "SNAPSHOT" and f"{P.SNAPSHOT}" == "SNAPSHOT"
    assert P("REMOTE_JOIN") is P.REMOTE_JOIN
    assert pickle.loads(pickle.dumps(rtm2.LockEventType.EXPIRED)) is rtm2.LockEventType.EXPIRED


def test_the_enums_stub_matches_the_native_tables() -> None:
    path = pathlib.Path(__file__).resolve().parents[1] / "tools" / "gen_codes_stub.py"
    spec = importlib.util.spec_from_file_location("gen_codes_stub", path)
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.ENUMS_STUB.read_text() == gen.render_enums(), "run bindings/python/tools/gen_codes_stub.py"


def test_service_records_and_event_names() -> None:
    assert set(rtm2.EVENT_TYPES) >= {"presence", "storage", "lock"}
    assert rtm2.EVENT_TYPES["presence"] is rtm2.PresenceEvent
    assert rtm2.EVENT_TYPES["storage"] is rtm2.StorageEvent
    assert rtm2.EVENT_TYPES["lock"] is rtm2.LockEvent
    for cls, fields in [
        (
            rtm2.PresenceEvent,
            ("event_type", "channel_type", "channel", "publisher", "states", "snapshot", "interval", "timestamp"),
        ),
        (rtm2.PresenceInterval, ("joined", "left", "timed_out", "states", "total_occupancy")),
        (rtm2.UserState, ("user_id", "states")),
        (rtm2.GetStateResponse, ("user_id", "states", "channel", "channel_type", "timestamp")),
        (rtm2.OnlineUsers, ("occupants", "total_occupancy", "next_page", "timestamp")),
        (rtm2.ChannelInfo, ("channel", "channel_type")),
        (rtm2.StorageEvent, ("event_type", "storage_type", "channel_type", "target", "publisher", "data", "timestamp")),
        (rtm2.Metadata, ("major_revision", "items")),
        (rtm2.GetChannelMetadataResponse, ("major_revision", "items", "channel", "channel_type", "timestamp")),
        (rtm2.GetUserMetadataResponse, ("major_revision", "items", "user_id", "timestamp")),
        (rtm2.MetadataItem, ("key", "value", "revision", "updated", "author")),
        (rtm2.MetadataWrite, ("major_revision", "total_count", "timestamp")),
        (
            rtm2.LockEvent,
            (
                "event_type",
                "channel_type",
                "channel",
                "lock_name",
                "ttl",
                "owner",
                "publisher",
                "snapshot",
                "timestamp",
                "fencing_token",
            ),
        ),
        (rtm2.LockDetail, ("name", "owner", "ttl", "fencing_token")),
        (rtm2.HistoryPage, ("messages", "count", "new_start", "timestamp")),
    ]:
        assert cls.__module__ == "rtm2", cls
        assert cls.__match_args__ == fields, cls
    with pytest.raises(TypeError):
        rtm2.LockEvent()  # type: ignore[call-arg]  # made by the SDK only
    item = rtm2.MetadataItem("k", "v")
    assert repr(item) == "MetadataItem(key='k', value='v', revision=-1, updated=0, author='')"
    with pytest.raises(AttributeError):
        item.value = "w"  # type: ignore[misc]
    if sys.version_info >= (3, 10):  # records work in `match` statements
        scope: dict = {"item": item, "rtm2": rtm2}
        exec("match item:\n    case rtm2.MetadataItem(k, v, r):\n        got = (k, v, r)", scope)
        assert scope["got"] == ("k", "v", -1)
