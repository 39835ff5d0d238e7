"""One completion queue per asyncio event loop (see bindings/python/src/bridge.rs).

SDK operations complete on the SDK's threads; they queue their outcome for the loop that
awaits them and wake it through a socket it watches. The loop thread resolves the futures, so
no SDK thread ever takes the GIL.
"""

from __future__ import annotations

import asyncio
import weakref

from . import _rtm2

_bridges: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _rtm2.LoopBridge]" = weakref.WeakKeyDictionary()


def _bridge() -> _rtm2.LoopBridge:
    loop = asyncio.get_running_loop()
    bridge = _bridges.get(loop)
    if bridge is None:
        bridge = _rtm2.LoopBridge(loop)
        loop.add_reader(bridge.fileno(), bridge.drain)
        _bridges[loop] = bridge
    return bridge
