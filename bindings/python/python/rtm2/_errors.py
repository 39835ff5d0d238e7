"""Exceptions. Every failure of an rtm2 operation raises :class:`RtmError` (or a subclass),
carrying the RTM ``code`` (an :class:`ErrorCode`), its ``name``, the ``reason`` and the
``operation`` that failed. The codes are identical in Python, Rust and C.

Subclasses group the codes so that callers can catch a family; the first rule that matches
picks the class:

==========================  ===============================================================
``RtmTimeoutError``         the operation ran out of time (per-call ``timeout=`` or the request
                            timeout) — whatever its code, e.g. 11007 for ``join`` — or the
                            code's name ends in ``_TIMEOUT`` (10011 LOGIN_TIMEOUT, 10026,
                            11019, 11026, 12018, 13012, 14002, 15003). Also a ``TimeoutError``.
``LoginError``              login, session and token codes: 10002 NOT_LOGIN, 10005
                            INVALID_TOKEN, 10009 TOKEN_EXPIRED, 10010, 10012, 10013, 10015,
                            10016 INCONSISTENT_APPID, 10023 LOGIN_CANCELED, 10025
                            NOT_CONNECTED, 10027 DUPLICATE_USER_ID
``InvalidArgumentError``    an argument breaks a rule (a name, a size, a parameter): codes
                            whose name contains ``INVALID`` or ends in ``_OVERFLOW`` /
                            ``LENGTH_EXCEED_LIMITATION`` / ``DUPLICATE_KEY``, e.g. 10003,
                            10006, 10008, 10014, 10019, 11008, 11010, 11018, 11029. Also a
                            ``ValueError``.
``ClientError``             other 10xxx codes (10001 NOT_INITIALIZED, 10017
                            DUPLICATE_OPERATION, 10018 INSTANCE_ALREADY_RELEASED, ...)
``ChannelError``            other 11xxx codes (11005 limit, 11014 topic limit, 11033 receiver
                            offline, ...)
``StorageError``            12xxx      ``PresenceError`` 13xxx
``LockError``               14xxx      ``HistoryError``  15xxx
==========================  ===============================================================
"""

from __future__ import annotations

from typing import Any, Dict, Tuple, Type, Union

from . import _rtm2
from ._codes import ErrorCode, describe

__all__ = [
    "RtmError",
    "RtmTimeoutError",
    "LoginError",
    "InvalidArgumentError",
    "ClientError",
    "ChannelError",
    "StorageError",
    "PresenceError",
    "LockError",
    "HistoryError",
    "error_class",
]


class RtmError(_rtm2.RtmErrorBase):
    """An rtm2 operation failed with an RTM error code."""

    code: Union[ErrorCode, int]
    """The RTM code (an :class:`ErrorCode` for every code in the table)."""
    name: str
    """The reference name of the code, e.g. ``"CHANNEL_RECEIVER_OFFLINE"``."""
    reason: str
    """What went wrong, in words."""
    operation: str
    """The operation that failed, e.g. ``"publish"``."""

    def __init__(self, code: int, reason: str = "", operation: str = "") -> None:
        super().__init__(code, reason, operation)
        try:
            self.code = ErrorCode(code)
            self.name = self.code.name
        except ValueError:
            self.code = int(code)
            self.name = "UNKNOWN"
        self.reason = reason or describe(code)
        self.operation = operation

    def __str__(self) -> str:
        where = f"{self.operation} failed: " if self.operation else ""
        return f"{where}{self.name} ({int(self.code)}): {self.reason}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={int(self.code)}, name={self.name!r}, "
            f"reason={self.reason!r}, operation={self.operation!r})"
        )

    def __reduce__(self) -> Tuple[Any, Tuple[int, str, str]]:
        return (type(self), (int(self.code), self.reason, self.operation))


class RtmTimeoutError(RtmError, TimeoutError):
    """The operation did not complete in time (per-call ``timeout=`` or the request timeout)."""


class LoginError(RtmError):
    """Login, session or token: not logged in, bad or expired token, login rejected."""


class InvalidArgumentError(RtmError, ValueError):
    """An argument breaks a rule: a name, a size, a parameter."""


class ClientError(RtmError):
    """Other client-level (10xxx) errors."""


class ChannelError(RtmError):
    """Message channels, user channels, stream channels and topics (11xxx)."""


class StorageError(RtmError):
    """Storage (12xxx)."""


class PresenceError(RtmError):
    """Presence (13xxx)."""


class LockError(RtmError):
    """Locks (14xxx)."""


class HistoryError(RtmError):
    """Message history (15xxx)."""


_LOGIN = {
    "NOT_LOGIN",
    "INVALID_TOKEN",
    "TOKEN_EXPIRED",
    "LOGIN_NO_SERVER_RESOURCES",
    "LOGIN_REJECTED",
    "LOGIN_ABORTED",
    "LOGIN_NOT_AUTHORIZED",
    "INCONSISTENT_APPID",
    "LOGIN_CANCELED",
    "NOT_CONNECTED",
    "DUPLICATE_USER_ID",
}

_AREAS: Dict[int, Type[RtmError]] = {
    10: ClientError,
    11: ChannelError,
    12: StorageError,
    13: PresenceError,
    14: LockError,
    15: HistoryError,
}


def _classify(code: int, name: str) -> Type[RtmError]:
    if name.endswith("_TIMEOUT"):
        return RtmTimeoutError
    if name in _LOGIN:
        return LoginError
    if "INVALID" in name or name.endswith(("_OVERFLOW", "LENGTH_EXCEED_LIMITATION", "DUPLICATE_KEY")):
        return InvalidArgumentError
    return _AREAS.get(code // 1000, RtmError)


_CLASSES: Dict[int, Type[RtmError]] = {int(c): _classify(int(c), c.name) for c in ErrorCode}


def error_class(code: int) -> Type[RtmError]:
    """The exception class raised for an RTM code."""
    return _CLASSES.get(int(code), RtmError)


def _from_native(code: int, reason: str, operation: str, timed_out: bool = False) -> RtmError:
    """Called by the native module to make the exception of a failed operation.

    ``timed_out`` marks an operation that ran out of time even when its code is a generic
    failure code (``join`` times out with 11007 CHANNEL_JOIN_FAILED, for example)."""
    cls = RtmTimeoutError if timed_out else error_class(code)
    return cls(code, reason, operation)
