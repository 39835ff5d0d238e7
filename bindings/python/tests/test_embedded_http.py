"""The embedded server serves its HTTP side where RTM2_EMBEDDED_HTTP says, with the Basic
credentials of RTM2_EMBEDDED_HTTP_AUTH.

The embedded server is one per process and reads the environment when it starts (the first
time a client uses it), so the check runs in a fresh interpreter with the environment set: it
logs "alice" in on the embedded default, makes the HTTP requests (urllib) while she is logged
in, and prints what it got as JSON; this test asserts on that."""

from __future__ import annotations

import json
import socket

from conftest import APP_ID, WAIT, run_script

CHILD = f"""
import asyncio, base64, json, os, urllib.error, urllib.request
import rtm2

APP = {APP_ID!r}
PORT = int(os.environ["RTM2_TEST_HTTP_PORT"])
# Straight to the loopback port: no proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))


def get(path, auth=None):
    req = urllib.request.Request(f"http://127.0.0.1:{{PORT}}{{path}}")
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with OPENER.open(req, timeout={WAIT!r}) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def requests():
    return {{
        "users": get(f"/v1/apps/{{APP}}/users", "ops:secret"),
        "users_no_auth": get(f"/v1/apps/{{APP}}/users"),
        "metrics": get("/metrics"),
    }}


async def main():
    async with rtm2.Client(APP, "alice") as c:
        await c.login()
        got = await asyncio.to_thread(requests)
    print("RESULT " + json.dumps(got))

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_embedded_server_serves_http_when_asked() -> None:
    port = free_port()
    result = run_script(
        CHILD,
        env={
            "RTM2_ENDPOINT": "",  # the embedded default
            "RTM2_EMBEDDED_HTTP": f"127.0.0.1:{port}",
            "RTM2_EMBEDDED_HTTP_AUTH": "ops:secret",
            "RTM2_TEST_HTTP_PORT": str(port),
        },
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, out
    got = json.loads(lines[0][len("RESULT ") :])

    status, body = got["users"]
    assert status == 200, body
    assert json.loads(body) == {"count": 1, "users": [{"user_id": "alice", "node_id": ""}]}, body

    status, body = got["users_no_auth"]
    assert status == 401, body

    status, metrics = got["metrics"]
    assert status == 200, metrics
    assert 'rtm2_logins_total{result="ok"} 1' in metrics.splitlines(), metrics
