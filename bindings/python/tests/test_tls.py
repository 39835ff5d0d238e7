"""TLS: a `tls://` endpoint is verified against the CA file given with set_parameters."""

from __future__ import annotations

import asyncio
import pathlib
import queue
import re
import subprocess
import threading
from typing import Any, Iterator

import pytest
import rtm2

from conftest import WAIT, raises, rtm2_bin, uid

E = rtm2.ErrorCode


@pytest.fixture
def tls_server(tmp_path: pathlib.Path) -> Iterator[Any]:
    """`rtm2 serve` with a TLS listener and a fresh self-signed certificate (openssl)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"],
        check=True, capture_output=True, timeout=30,
    )
    proc = subprocess.Popen(
        [str(rtm2_bin()), "serve", "--listen", "127.0.0.1:0", "--no-rate-limits",
         "--tls-listen", "127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr or []], daemon=True).start()
    try:
        while True:
            m = re.search(r"listening on (\S+) \(tls\)", lines.get(timeout=WAIT))
            if m:
                yield {"endpoint": f"tls://{m.group(1)}", "ca": str(cert)}
                break
    finally:
        proc.kill()
        proc.wait(WAIT)


async def test_tls_with_a_verified_certificate(tls_server: Any) -> None:
    alice = rtm2.Client("0123456789abcdef0123456789abcdef", uid("alice"), tls_server["endpoint"])
    bob = rtm2.Client("0123456789abcdef0123456789abcdef", uid("bob"), tls_server["endpoint"])
    try:
        for c in (alice, bob):
            c.set_parameters({"tls_ca_file": tls_server["ca"]})
            await asyncio.wait_for(c.login(), WAIT)
        room = uid("room")
        sub = await bob.subscribe(room)
        await alice.publish(room, "over tls")
        m = await sub.recv(timeout=WAIT)
        assert m is not None and m.message == "over tls"
    finally:
        await asyncio.wait_for(alice.close(), WAIT)
        await asyncio.wait_for(bob.close(), WAIT)


async def test_an_unverifiable_server_is_refused(tls_server: Any) -> None:
    # Without the CA file the system roots do not know the self-signed certificate.
    c = rtm2.Client("0123456789abcdef0123456789abcdef", uid("eve"), tls_server["endpoint"])
    try:
        err = await raises(E.INIT_SERVICE_FAILED, c.login())
        assert "certificate" in err.reason.lower()
    finally:
        await asyncio.wait_for(c.close(), WAIT)
