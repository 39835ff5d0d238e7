"""``ErrorCode``: the RTM 2 error-code table, built from the native module's table.

The numbers are not copied here: they come from ``rtm2._rtm2.error_codes()``, which is the
same table the Rust SDK, the C API and the server use. ``_codes.pyi`` lists the members for
type checkers; a test checks that it matches the native table.
"""

from __future__ import annotations

import enum

from . import _rtm2

_TABLE = _rtm2.error_codes()

ErrorCode = enum.IntEnum(  # type: ignore[misc]
    "ErrorCode",
    [(name, code) for code, name, _ in _TABLE],
    module=__name__,
    qualname="ErrorCode",
)
ErrorCode.__doc__ = "An RTM error code (10001…15006); ``int(code)`` is the number, ``code.name`` the reference name."
ErrorCode.__module__ = "rtm2"

_MESSAGES = {code: message for code, _, message in _TABLE}


def describe(code: int) -> str:
    """A short description of an error code ("" for a number not in the table)."""
    return _MESSAGES.get(int(code), "")
