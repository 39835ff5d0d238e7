"""The RTM enumerations as constants: ``rtm2.ChannelType``, ``rtm2.PresenceEventType``,
``rtm2.StorageType``, ``rtm2.StorageEventType``, ``rtm2.LockEventType``, ``rtm2.LinkState``,
``rtm2.EncryptionMode``, ...

Events and results carry enumerations as their reference names (plain ``str``, e.g.
``ev.event_type == "SNAPSHOT"``). The constants are ``str`` enums whose values are those names,
so they compare equal to the fields (``ev.event_type == rtm2.PresenceEventType.SNAPSHOT``) and
are accepted wherever a name is (``channel_type=rtm2.ChannelType.STREAM``). ``member.number``
is the reference number (``rtm2.PresenceEventType.REMOTE_TIMEOUT.number == 5``).

The members are not copied here: they come from ``rtm2._rtm2.enum_tables()``, the Rust SDK's
own enumerations. ``_enums.pyi`` lists them for type checkers; a test checks that it matches.
"""

from __future__ import annotations

import enum
from typing import Dict, Tuple

from . import _rtm2

_NUMBERS: Dict[Tuple[str, str], int] = {}


class RtmEnum(str, enum.Enum):
    """Base of the RTM enumerations: a ``str`` (the reference name) with a ``number``."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @property
    def number(self) -> int:
        """The reference number of the value (e.g. 1 for ``ChannelType.MESSAGE``)."""
        return _NUMBERS[(type(self).__name__, self.value)]


def _make(name: str, values: "list[tuple[str, int]]") -> "type[RtmEnum]":
    cls = RtmEnum(name, [(v, v) for v, _ in values], module="rtm2", qualname=name)  # type: ignore[call-overload]
    for v, n in values:
        _NUMBERS[(name, v)] = n
    cls.__doc__ = f"RTM {name}: " + ", ".join(f"{v} {n}" for v, n in values) + "."
    return cls  # type: ignore[no-any-return]


_TABLES = {name: _make(name, values) for name, values in _rtm2.enum_tables()}

ChannelType = _TABLES["ChannelType"]
MessageType = _TABLES["MessageType"]
EncryptionMode = _TABLES["EncryptionMode"]
MessageQos = _TABLES["MessageQos"]
MessagePriority = _TABLES["MessagePriority"]
TopicEventType = _TABLES["TopicEventType"]
PresenceEventType = _TABLES["PresenceEventType"]
StorageType = _TABLES["StorageType"]
StorageEventType = _TABLES["StorageEventType"]
LockEventType = _TABLES["LockEventType"]
ServiceType = _TABLES["ServiceType"]
LinkState = _TABLES["LinkState"]
LinkOperation = _TABLES["LinkOperation"]
LinkStateChangeReason = _TABLES["LinkStateChangeReason"]

ENUMS: Tuple["type[RtmEnum]", ...] = tuple(_TABLES.values())
"""Every enumeration, in the native table's order."""
