"""SDK logs → the standard ``logging`` module.

Records of the Rust SDK go to the logger ``rtm2`` and its children, named after the Rust
module: ``rtm2_core::client`` → ``rtm2.core.client``, ``rtm2_server::engine`` →
``rtm2.server.engine``. rtm2 adds no handlers: configure ``logging`` as usual.

The native side only formats records at or above the effective level of the ``rtm2`` logger
(so that quiet applications pay nothing). That level is read when a :class:`~rtm2.Client` is
made; call :func:`refresh_log_level` after changing it later.
"""

from __future__ import annotations

import atexit
import logging
from typing import Iterable, Tuple

from . import _rtm2

TRACE = 5
"""Level of the SDK's most detailed records (below ``logging.DEBUG``)."""

logging.addLevelName(TRACE, "TRACE")

logger = logging.getLogger("rtm2")


def _logger_name(target: str) -> str:
    # rtm2_core::client -> rtm2.core.client
    name = target.replace("::", ".")
    if name.startswith("rtm2_"):
        name = "rtm2." + name[len("rtm2_") :]
    elif not name.startswith("rtm2"):
        name = "rtm2." + name
    return name


def _emit(records: Iterable[Tuple[int, str, str]]) -> None:
    """Called by the native ``rtm2-log`` thread with a batch of ``(level, target, message)``."""
    for level, target, message in records:
        log = logging.getLogger(_logger_name(target))
        if log.isEnabledFor(level):
            # The record's "path" is the Rust module (the Python line would be this one).
            log.handle(log.makeRecord(log.name, level, target, 0, message, (), None, "rust"))


def _lowest_level() -> int:
    level = logger.getEffectiveLevel()
    for name, obj in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("rtm2.") and isinstance(obj, logging.Logger):
            level = min(level, obj.getEffectiveLevel())
    return level


def refresh_log_level() -> None:
    """Makes the SDK's native filter follow the current levels of the ``rtm2`` loggers
    (the lowest effective level of ``rtm2`` and its children)."""
    _rtm2.set_log_level(_lowest_level())


# Before the interpreter finalizes, stop the native log thread (it must not take the GIL then).
atexit.register(_rtm2.stop_logging)
