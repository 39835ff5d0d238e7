"""The Python runner of the language-neutral conformance scenarios in tests/conformance/
(format: tests/conformance/README.md; reference runner: rtm2-core/tests/conformance.rs).

Every scenario runs against a fresh `rtm2 serve` on loopback (`test_scenario[NAME-serve]`),
through the public `rtm2` package API only, and, when a nats-server is there (RTM2_NATS_SERVER is
set or .venv-nats/bin/nats-server exists in the repository), also against a fresh 3-node cluster
(`test_scenario[NAME-cluster]`, started by tests/conformance/cluster.py): the i-th client of the
scenario connects to node i mod 3, a ghost to the next node of the same rotation, and
`server restart` restarts every node. Scenarios whose services do not cross nodes yet are in
CLUSTER_PENDING and skipped in cluster mode with their reason.
One test per scenario file and mode, so a failure names the scenario, the mode and the line.
RTM2_CONFORMANCE_DIR runs the scenarios of another directory (e.g. a modified copy).
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import queue
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
import rtm2
from conftest import APP_ID, CERT, REPO, WAIT, Ghost, Server, rtm2_bin

DEFAULT_DIR = REPO / "tests" / "conformance" / "scenarios"
SCENARIO_DIR = pathlib.Path(os.environ.get("RTM2_CONFORMANCE_DIR") or DEFAULT_DIR)
REBIND = 5.0
"""How long `server restart` keeps trying to listen on the old port again (seconds)."""
SCENARIO_TIMEOUT = 120
"""pytest-timeout for one scenario (every wait inside is bounded by WAIT as well)."""
CLUSTER_PY = REPO / "tests" / "conformance" / "cluster.py"
CLUSTER_NODES = 3
CLUSTER_WAIT = 60.0
"""How long the cluster launcher may take to start (or restart) NATS and the nodes (seconds)."""
CLUSTER_PENDING: Dict[str, str] = {}
"""The scenarios that cannot pass against a cluster yet, with the reason (skipped, never run as
passing)."""


def cluster_available() -> bool:
    """The rule of every runner: RTM2_NATS_SERVER is set or .venv-nats/bin/nats-server exists."""
    return bool(os.environ.get("RTM2_NATS_SERVER")) or (REPO / ".venv-nats" / "bin" / "nats-server").exists()


class ScenarioError(AssertionError):
    """A scenario step that did not give the expected result (or could not be run)."""


# ---------------------------------------------------------------------------------------------
# The line syntax


def words(line: str) -> List[str]:
    """Splits a line into words; double quotes group, with \\" \\\\ \\n escapes."""
    out: List[str] = []
    cur: List[str] = []
    in_word = False
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c in (" ", "\t"):
            if in_word:
                out.append("".join(cur))
                cur = []
                in_word = False
        elif c == '"':
            in_word = True
            while True:
                i += 1
                if i >= n:
                    raise ValueError("unterminated quote")
                ch = line[i]
                if ch == '"':
                    break
                if ch == "\\":
                    i += 1
                    e = line[i] if i < n else ""
                    if e == "n":
                        cur.append("\n")
                    elif e in ('"', "\\"):
                        cur.append(e)
                    else:
                        raise ValueError(f"bad escape {repr(e) if e else 'at end of line'}")
                else:
                    cur.append(ch)
        else:
            in_word = True
            cur.append(c)
        i += 1
    if in_word:
        out.append("".join(cur))
    return out


def expand(v: str) -> str:
    """`size:N` stands for N `x` characters."""
    m = re.fullmatch(r"size:(\d+)", v)
    return "x" * int(m.group(1)) if m else v


_KEY = re.compile(r"[A-Za-z0-9_]+")


@dataclass
class Step:
    """One step: positional words, `key=value` options and the expected outcome."""

    line: int
    actor: str
    op: str
    args: List[str] = field(default_factory=list)
    opts: Dict[str, str] = field(default_factory=dict)
    expect_error: Optional[int] = None


def parse_step(line: int, w: List[str]) -> Step:
    w = list(w)
    expect_error = None
    if "->" in w:
        pos = w.index("->")
        tail = w[pos:]
        del w[pos:]
        if tail == ["->", "ok"]:
            pass
        elif len(tail) == 3 and tail[1] == "error" and re.fullmatch(r"\d+", tail[2]):
            expect_error = int(tail[2])
        else:
            raise ValueError(f"bad outcome {tail!r}")
    if len(w) < 2:
        raise ValueError("a step needs an actor and an operation")
    actor, op, rest = w[0], w[1], w[2:]
    args: List[str] = []
    opts: Dict[str, str] = {}
    for x in rest:
        key, eq, value = x.partition("=")
        if eq and _KEY.fullmatch(key):
            opts[key] = expand(value)
        else:
            args.append(expand(x))
    return Step(line, actor, op, args, opts, expect_error)


# ---------------------------------------------------------------------------------------------
# Helpers


def unhex(s: str) -> bytes:
    if not re.fullmatch(r"(?:[0-9a-fA-F]{2})*", s):
        raise ScenarioError(f"bad hex {s!r}")
    return bytes.fromhex(s)


def flag(opts: Dict[str, str], k: str, default: bool) -> bool:
    return opts[k] == "true" if k in opts else default


def as_list(v: Optional[str]) -> List[str]:
    return [] if not v else v.split(",")


def pairs(v: Optional[str]) -> List[Tuple[str, str]]:
    """`k:v,k2:v2` as pairs, in order (repeated keys kept); `k` alone is `k:`."""
    out = []
    for x in as_list(v):
        k, _, val = x.partition(":")
        out.append((k, val))
    return out


def generated(o: Dict[str, str], key: str) -> List[Tuple[str, str]]:
    """The pairs of `key=` (states= / items=) or of a generator: count=, big_key=, big_value=."""
    if "count" in o:
        return [(f"k{i}", "v") for i in range(int(o["count"]))]
    if "big_key" in o:
        return [("x" * int(o["big_key"]), "v")]
    if "big_value" in o:
        n = int(o["big_value"])
        return [(f"big{n}", "x" * n)]
    if key not in o:
        raise ScenarioError(f"{key}= (or count=, big_key=, big_value=) is needed")
    return pairs(o[key])


def canon(xs: Any) -> str:
    """A list compared as a set."""
    return ",".join(sorted(set(xs)))


def canon_pairs(d: Dict[str, str]) -> str:
    return canon(f"{k}:{v}" for k, v in d.items())


def same_set(got: Any, want: Optional[str]) -> bool:
    return canon(got) == canon(as_list(want))


# Fields of `expect presence|storage|lock` that hold lists, compared as sets.
SET_FIELDS = {
    "presence": {"states", "snapshot", "joined", "left", "timed_out", "changed"},
    "storage": {"items"},
    "lock": {"snapshot"},
}


def fields(ev: Any, kind: str, line: int) -> Optional[Dict[str, str]]:
    """The comparable fields of an event if it is of `kind` (None for other kinds)."""
    if isinstance(ev, rtm2.OverflowEvent):
        raise ScenarioError(f"line {line}: event queue overflow: {ev!r}")
    if isinstance(ev, rtm2.MessageEvent) and kind == "message":
        msg = ev.message
        return {
            "channel_type": ev.channel_type,
            "channel": ev.channel,
            "topic": ev.topic,
            "publisher": ev.publisher,
            "text": msg if isinstance(msg, str) and ev.message_type == "STRING" else "",
            "hex": msg.encode("utf-8").hex() if isinstance(msg, str) else bytes(msg).hex(),
            "message_type": ev.message_type,
            "custom_type": ev.custom_type,
        }
    if isinstance(ev, rtm2.TopicEvent) and kind == "topic_event":
        first = ev.topics[0] if ev.topics else None
        pub = first.publishers[0] if first is not None and first.publishers else None
        return {
            "type": ev.event_type,
            "channel": ev.channel,
            "topic": first.topic if first is not None else "",
            "meta": pub.meta if pub is not None else "",
            # A snapshot has no publisher of its own: compare the first topic's first publisher.
            "publisher": (pub.user_id if pub is not None else "") if ev.event_type == "SNAPSHOT" else ev.publisher,
        }
    if isinstance(ev, rtm2.LinkStateEvent) and kind == "link_state":
        return {"service": ev.service_type, "state": ev.current, "reason": ev.reason, "channel": ev.channel}
    if isinstance(ev, rtm2.TokenPrivilegeWillExpireEvent) and kind == "token_will_expire":
        return {"channel": ev.channel or ""}
    if isinstance(ev, rtm2.PresenceEvent) and kind == "presence":
        iv = ev.interval
        return {
            "type": ev.event_type,
            "channel": ev.channel,
            "channel_type": ev.channel_type,
            "publisher": ev.publisher,
            "states": canon_pairs(ev.states),
            "snapshot": canon(u.user_id for u in ev.snapshot),
            "joined": canon(iv.joined) if iv else "",
            "left": canon(iv.left) if iv else "",
            "timed_out": canon(iv.timed_out) if iv else "",
            "changed": canon(u.user_id for u in iv.states) if iv else "",
            "total": str(iv.total_occupancy) if iv else "",
        }
    if isinstance(ev, rtm2.StorageEvent) and kind == "storage":
        return {
            "type": ev.event_type,
            "storage_type": ev.storage_type,
            "channel_type": ev.channel_type,
            "target": ev.target,
            "publisher": ev.publisher,
            "items": canon(f"{i.key}:{i.value}" for i in ev.data.items),
            "major": str(ev.data.major_revision),
        }
    if isinstance(ev, rtm2.LockEvent) and kind == "lock":
        return {
            "type": ev.event_type,
            "channel": ev.channel,
            "channel_type": ev.channel_type,
            "lock": ev.lock_name,
            "owner": ev.owner,
            "publisher": ev.publisher,
            "ttl": str(ev.ttl),
            "snapshot": canon(f"{d.name}:{d.owner}" for d in ev.snapshot),
        }
    return None


async def bounded(awaitable: Any, what: str, timeout: float = WAIT) -> Any:
    """Awaits within `timeout` seconds (cancelling the operation after that)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise ScenarioError(f"{what}: timed out after {timeout} s")
    return task.result()


class Cluster:
    """NATS and CLUSTER_NODES `rtm2 serve --cluster` nodes, started by tests/conformance/cluster.py
    with the scenario's `rtm2 serve` flags; the launcher stops them by pid when its stdin ends."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, RTM2_BIN=str(rtm2_bin()))
        self.proc = subprocess.Popen(
            [sys.executable, str(CLUSTER_PY), "--nodes", str(CLUSTER_NODES), "--", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.put(line.strip())
            self.lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self.endpoints: List[str] = []
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        """Reads `node ADDR` lines up to `ready` (bounded by CLUSTER_WAIT)."""
        nodes: List[str] = []
        deadline = time.monotonic() + CLUSTER_WAIT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise ScenarioError(f"the cluster was not ready within {CLUSTER_WAIT} s") from None
            if line is None:
                raise ScenarioError(f"the cluster launcher exited ({self.proc.wait(WAIT)}) before it was ready")
            if line.startswith("node "):
                nodes.append(line[len("node ") :])
            elif line == "ready":
                if len(nodes) != CLUSTER_NODES:
                    raise ScenarioError(f"the cluster launcher named {len(nodes)} nodes: {nodes}")
                self.endpoints = nodes
                return

    def restart(self) -> None:
        """Restarts every node on its port (same NATS); blocks until they serve logins again."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("restart\n")
        self.proc.stdin.flush()
        self._wait_ready()

    def stop(self) -> None:
        """Ends the launcher's input (it stops the nodes and NATS by pid); SIGTERM if it hangs."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(WAIT)


# ---------------------------------------------------------------------------------------------
# The runner


@dataclass
class Actor:
    client: rtm2.Client
    events: rtm2.EventStream
    user: str
    started: Optional["asyncio.Task[None]"] = None
    """The operation of `start`, awaited by `finish`."""
    started_line: int = 0


class Runner:
    def __init__(self, cluster: bool = False) -> None:
        self.cluster_mode = cluster
        self.server: Optional[Server] = None
        self.cluster: Optional[Cluster] = None
        self.placed = 0
        """How many clients and ghosts were placed on a node (cluster mode: the rotation)."""
        self.args: List[str] = []
        """The flags of `rtm2 serve` besides --listen."""
        self.cert = False
        self.clients: Dict[str, Actor] = {}
        self.ghosts: Dict[str, Ghost] = {}

    def start(self, w: List[str]) -> None:
        mode = w[1] if len(w) > 1 else "dev"
        if mode not in ("dev", "cert"):
            raise ScenarioError(f"unknown server mode {mode}")
        self.cert = mode == "cert"
        notice = "30"
        rate_limits = False
        flags = {
            "ttl_unit_ms": "--ttl-unit-ms",
            "presence_announce_max": "--presence-announce-max",
            "presence_interval_ms": "--presence-interval-ms",
        }
        args = []
        for x in w[2:]:
            key, _, value = x.partition("=")
            if key == "notice":
                notice = value
            elif x == "rate_limits=reference":
                rate_limits = True
            elif x == "rate_limits=off":
                rate_limits = False
            elif key in flags and re.fullmatch(r"\d+", value):
                args += [flags[key], value]
            else:
                raise ScenarioError(f"unknown server option {x}")
        if self.cert:
            args += ["--app-id", APP_ID, "--app-certificate", CERT, "--token-notice-secs", notice]
        if not rate_limits:
            args.append("--no-rate-limits")
        self.args = args
        if self.cluster_mode:
            self.cluster = Cluster(*args)
        else:
            self.server = Server(*args)

    def next_endpoint(self) -> str:
        """The endpoint of the next client or ghost: the server, or in a cluster node i mod 3
        for the i-th client or ghost (in the order of their steps)."""
        if self.cluster is not None:
            endpoint = self.cluster.endpoints[self.placed % len(self.cluster.endpoints)]
            self.placed += 1
            return endpoint
        assert self.server is not None
        return str(self.server.address)

    async def restart(self) -> None:
        """Kills the server and starts a new one with the same flags on the same port (in a
        cluster: every node, same NATS)."""
        if self.cluster is not None:
            await asyncio.to_thread(self.cluster.restart)
            return
        assert self.server is not None
        listen = str(self.server.address)
        proc = self.server.proc
        proc.kill()
        await asyncio.to_thread(proc.wait, WAIT)
        until = time.monotonic() + REBIND
        while True:
            try:
                # Server() blocks until the address line (bounded by WAIT): run it off the loop
                # so that the clients' events keep flowing.
                self.server = await asyncio.to_thread(Server, *self.args, listen=listen)
                return
            except RuntimeError as e:
                if time.monotonic() >= until:
                    raise ScenarioError(f"could not listen on {listen} again: {e}") from None
                await asyncio.sleep(0.025)

    def add_client(self, w: List[str]) -> None:
        if len(w) < 2:
            raise ScenarioError("client needs a name")
        name = w[1]
        user = next((x[len("user=") :] for x in w[2:] if x.startswith("user=")), name)
        client = rtm2.Client(APP_ID, user, self.next_endpoint(), reconnect_initial_backoff_ms=20)
        # One ordered queue of all of this client's events, from its creation on.
        self.clients[name] = Actor(client, client.events(), user)

    async def ghost(self, w: List[str]) -> None:
        """`ghost NAME CHANNEL [lock=LOCK]`: a user of this app in another process, present in
        CHANNEL (presence timeout 5 s), optionally holding LOCK of that message channel."""
        if len(w) < 3:
            raise ScenarioError("ghost needs a name and a channel")
        name, channel = w[1], w[2]
        lock = next((x[len("lock=") :] for x in w[3:] if x.startswith("lock=")), None)
        if name in self.ghosts:
            raise ScenarioError(f"ghost {name} exists")
        args = ["--endpoint", self.next_endpoint(), "--app-id", APP_ID, "--user-id", name, "--presence-timeout", "5"]
        if self.cert:
            args += ["--token", self.token("auto", name)]
        if lock is not None:
            args += ["--acquire-lock", f"{channel}:{lock}"]
        ghost = Ghost([*args, channel])
        self.ghosts[name] = ghost
        try:
            await ghost.wait_for(f"subscribed to {channel}")
            if lock is not None:
                await ghost.wait_for(f"acquired lock {lock}")
        except RuntimeError as e:
            raise ScenarioError(f"ghost {name}: {e}") from None

    async def kill(self, w: List[str]) -> None:
        if len(w) < 2 or w[1] not in self.ghosts:
            raise ScenarioError(f"no ghost {w[1:]}")
        await asyncio.to_thread(self.ghosts.pop(w[1]).kill)

    def token(self, kind: Optional[str], user: str, channel: Optional[str] = None) -> str:
        kind = kind if kind is not None else "auto"

        def build(u: str, secs: int) -> str:
            if channel is not None:
                return rtm2.build_stream_token(APP_ID, CERT, channel, u, secs)
            return rtm2.build_token(APP_ID, CERT, u, secs)

        if kind == "auto" and self.cert:
            return build(user, 3600)
        if kind in ("auto", "none"):
            return ""
        if kind == "bad":
            return "007garbage"
        if kind == "expired":
            return build(user, 0)
        if kind == "other":
            return build("someone-else", 3600)
        m = re.fullmatch(r"short:(\d+)", kind)
        if m:
            return build(user, int(m.group(1)))
        raise ScenarioError(f"unknown token kind {kind}")

    def actor(self, s: Step) -> Actor:
        if s.actor not in self.clients:
            raise ScenarioError(f"line {s.line}: unknown client {s.actor}")
        return self.clients[s.actor]

    async def op(self, s: Step) -> None:
        actor = self.actor(s)
        client, user = actor.client, actor.user
        o = s.opts

        def a(i: int) -> str:
            if i >= len(s.args):
                raise ScenarioError(f"line {s.line}: missing argument {i}")
            return s.args[i]

        if s.op == "login":
            await client.login(self.token(o.get("token"), user))
        elif s.op == "logout":
            await client.logout()
        elif s.op == "renew_token":
            ch = o.get("channel")
            if ch is not None:
                await client.stream_channel(ch).renew_token(self.token(o.get("token"), user, ch))
            else:
                await client.renew_token(self.token(o.get("token"), user))
        elif s.op == "set_parameters":
            client.set_parameters(a(0))
        elif s.op == "subscribe":
            sub = await client.subscribe(
                a(0),
                with_message=flag(o, "with_message", True),
                with_presence=flag(o, "with_presence", True),
                with_metadata=flag(o, "with_metadata", False),
                with_lock=flag(o, "with_lock", False),
                be_quiet=flag(o, "be_quiet", False),
            )
            # The runner reads the client's events; this handle's own queue is not needed.
            sub.close()
        elif s.op == "unsubscribe":
            await client.unsubscribe(a(0))
        elif s.op in ("publish", "publish_binary", "publish_size"):
            payload: Any
            if s.op == "publish":
                payload = a(1)
            elif s.op == "publish_binary":
                payload = unhex(a(1))
            else:
                payload = "x" * int(a(1))
            await client.publish(
                a(0),
                payload,
                channel_type="USER" if o.get("channel_type") == "USER" else "MESSAGE",
                custom_type=o.get("custom_type", ""),
            )
        elif s.op == "join":
            await client.stream_channel(a(0)).join(
                self.token(o.get("token"), user, a(0)),
                with_presence=flag(o, "with_presence", True),
                with_metadata=flag(o, "with_metadata", False),
                with_lock=flag(o, "with_lock", False),
                be_quiet=flag(o, "be_quiet", False),
            )
        elif s.op == "leave":
            await client.stream_channel(a(0)).leave()
        elif s.op == "join_topic":
            await client.stream_channel(a(0)).join_topic(a(1), meta=o.get("meta", ""))
        elif s.op == "leave_topic":
            await client.stream_channel(a(0)).leave_topic(a(1))
        elif s.op == "publish_topic":
            await client.stream_channel(a(0)).publish_topic(a(1), a(2), custom_type=o.get("custom_type", ""))
        elif s.op == "subscribe_topic":
            r = await client.stream_channel(a(0)).subscribe_topic(a(1), as_list(o.get("users")))
            if "succeeded" in o:
                got = list(r.succeeded)
                want = as_list(o["succeeded"])
                if got != want:
                    raise ScenarioError(f"line {s.line}: succeeded users are {got}, expected {want}")
            if "failed" in o:
                got = [f"{f.user_id}:{f.code}" for f in r.failed]
                want = as_list(o["failed"])
                if got != want:
                    raise ScenarioError(f"line {s.line}: failed users are {got}, expected {want}")
        elif s.op == "unsubscribe_topic":
            await client.stream_channel(a(0)).unsubscribe_topic(a(1), as_list(o.get("users")))
        elif s.op == "subscribed_users":
            got = client.stream_channel(a(0)).subscribed_users(a(1))
            if "users" in o and got != as_list(o["users"]):
                raise ScenarioError(f"line {s.line}: subscribed users are {got}, expected {as_list(o['users'])}")
        elif not await self.service_op(s, client, a):
            raise ScenarioError(f"line {s.line}: unknown operation {s.op}")

    async def service_op(self, s: Step, client: rtm2.Client, a: Callable[[int], str]) -> bool:
        """The presence, storage and lock operations; False for an unknown operation."""
        o = s.opts
        ct: Any = o.get("channel_type", "MESSAGE")

        def check(what: str, got: Any, want: Any) -> None:
            if got != want:
                raise ScenarioError(f"line {s.line}: {what} is {got!r}, expected {want!r}")

        # -- presence
        if s.op == "set_state":
            await client.presence.set_state(a(0), generated(o, "states"), channel_type=ct)
        elif s.op == "get_state":
            st = await client.presence.get_state(a(0), a(1), channel_type=ct)
            if "states" in o:
                check("the state", st.states, dict(pairs(o["states"])))
        elif s.op == "remove_state":
            await client.presence.remove_state(a(0), as_list(o.get("keys")), channel_type=ct)
        elif s.op == "who_now":
            r = await client.presence.who_now(
                a(0),
                channel_type=ct,
                include_user_id=flag(o, "include_user_id", True),
                include_state=flag(o, "include_state", False),
            )
            if "users" in o and not same_set([u.user_id for u in r.occupants], o["users"]):
                raise ScenarioError(
                    f"line {s.line}: users are {[u.user_id for u in r.occupants]}, expected {o['users']}"
                )
            if "total" in o:
                check("the total occupancy", r.total_occupancy, int(o["total"]))
        elif s.op == "where_now":
            chs = await client.presence.where_now(a(0))
            got = [f"{c.channel_type}:{c.channel}" for c in chs]
            if "channels" in o and not same_set(got, o["channels"]):
                raise ScenarioError(f"line {s.line}: channels are {got}, expected {o['channels']}")
        # -- storage
        elif s.op in ("set_channel_metadata", "update_channel_metadata", "remove_channel_metadata") or s.op in (
            "set_user_metadata",
            "update_user_metadata",
            "remove_user_metadata",
        ):
            revision = int(o.get("revision", "-1"))
            if s.op.startswith("remove_"):
                items = [rtm2.MetadataItem(k, "", revision) for k in as_list(o.get("keys"))]
            else:
                items = [rtm2.MetadataItem(k, v, revision) for k, v in generated(o, "items")]
            options: Dict[str, Any] = dict(
                major_revision=int(o.get("major", "-1")),
                lock_name=o.get("lock", ""),
                record_ts=flag(o, "record_ts", False),
                record_author=flag(o, "record_author", False),
            )
            write = getattr(client.storage, s.op)
            if s.op.endswith("_channel_metadata"):
                w = await write(a(0), items, channel_type=ct, **options)
            else:
                w = await write(a(0), items, **options)
            if "result_major" in o:
                check("the major revision", w.major_revision, int(o["result_major"]))
            if "total" in o:
                check("the item count", w.total_count, int(o["total"]))
        elif s.op in ("get_channel_metadata", "get_user_metadata"):
            if s.op == "get_channel_metadata":
                md = await client.storage.get_channel_metadata(a(0), channel_type=ct)
            else:
                md = await client.storage.get_user_metadata(a(0))
            if "items" in o and not same_set([f"{i.key}:{i.value}" for i in md.items], o["items"]):
                raise ScenarioError(f"line {s.line}: items are {md.items}, expected {o['items']}")
            if "major" in o:
                check("the major revision", md.major_revision, int(o["major"]))
            for key, author in pairs(o.get("authors")):
                item = md.get(key)
                check(f"the author of {key}", item.author if item else None, author)
            for key in as_list(o.get("stamped")):
                item = md.get(key)
                if item is None or item.updated == 0:
                    raise ScenarioError(f"line {s.line}: item {key} has no update time: {item!r}")
        elif s.op == "subscribe_user_metadata":
            await client.storage.subscribe_user_metadata(a(0))
        elif s.op == "unsubscribe_user_metadata":
            await client.storage.unsubscribe_user_metadata(a(0))
        # -- locks
        elif s.op == "set_lock":
            if "ttl" in o:
                await client.lock.set_lock(a(0), a(1), channel_type=ct, ttl=int(o["ttl"]))
            else:
                await client.lock.set_lock(a(0), a(1), channel_type=ct)
        elif s.op == "remove_lock":
            await client.lock.remove_lock(a(0), a(1), channel_type=ct)
        elif s.op == "acquire_lock":
            await client.lock.acquire_lock(a(0), a(1), channel_type=ct, retry=flag(o, "retry", False))
        elif s.op == "release_lock":
            await client.lock.release_lock(a(0), a(1), channel_type=ct)
        elif s.op == "revoke_lock":
            await client.lock.revoke_lock(a(0), a(1), a(2), channel_type=ct)
        elif s.op == "get_locks":
            locks = await client.lock.get_locks(a(0), channel_type=ct)
            got = [f"{d.name}:{d.owner}" for d in locks]
            if "locks" in o and not same_set(got, o["locks"]):
                raise ScenarioError(f"line {s.line}: locks are {got}, expected {o['locks']}")
        else:
            return False
        return True

    async def expect(self, s: Step) -> None:
        kind = s.args[0] if s.args else ""
        events = self.actor(s).events
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError
                ev = await events.recv(timeout=left)
            except asyncio.TimeoutError:
                raise ScenarioError(f"line {s.line}: {s.actor}: no matching {kind} event within {WAIT} s") from None
            if ev is None:
                raise ScenarioError(f"line {s.line}: {s.actor}: the event stream ended")
            got = fields(ev, kind, s.line)
            if got is None:
                continue
            mismatch: Optional[Tuple[str, str]] = None
            for k, want in sorted(s.opts.items()):
                if k not in got:
                    raise ScenarioError(f"line {s.line}: unknown field {k}")
                if k in SET_FIELDS.get(kind, ()):
                    want = canon(as_list(want))
                if got[k] != want:
                    mismatch = (k, want)
                    break
            login_notice = kind == "token_will_expire" and "channel" not in s.opts and got["channel"] != ""
            if mismatch is None and not login_notice:
                return
            # The next message must be the expected one: no extra, missing or reordered messages.
            if mismatch is not None and kind == "message":
                k, want = mismatch
                raise ScenarioError(f"line {s.line}: {s.actor}: field {k} is {got[k]!r}, expected {want!r} in {ev!r}")

    async def run_step(self, s: Step) -> None:
        if s.op == "expect":
            await self.expect(s)
            return
        if s.op == "start":
            await self.start_op(s)
            return
        if s.op == "finish":
            await self.finish_op(s)
            return
        what = f"line {s.line}: {s.actor} {s.op}"
        error: Optional[rtm2.RtmError] = None
        try:
            await bounded(self.op(s), what)
        except rtm2.RtmError as e:
            error = e
        self.outcome(s, what, error)

    async def start_op(self, s: Step) -> None:
        """`NAME start <operation> ...`: starts it without waiting (one per client)."""
        actor = self.actor(s)
        if actor.started is not None:
            raise ScenarioError(f"line {s.line}: {s.actor} already started an operation (line {actor.started_line})")
        if not s.args or s.expect_error is not None:
            raise ScenarioError(f"line {s.line}: start takes an operation and no outcome")
        inner = Step(s.line, s.actor, s.args[0], s.args[1:], s.opts)
        actor.started = asyncio.ensure_future(self.op(inner))
        actor.started_line = s.line
        # Let the task run up to the native call, which sends the request.
        await asyncio.sleep(0)

    async def finish_op(self, s: Step) -> None:
        """`NAME finish [-> ...]`: waits (at most WAIT s) for the started operation."""
        actor = self.actor(s)
        task, actor.started = actor.started, None
        if task is None:
            raise ScenarioError(f"line {s.line}: {s.actor} started no operation")
        what = f"line {s.line}: {s.actor} finish (of line {actor.started_line})"
        error: Optional[rtm2.RtmError] = None
        try:
            await bounded(task, what)
        except rtm2.RtmError as e:
            error = e
        self.outcome(s, what, error)

    @staticmethod
    def outcome(s: Step, what: str, error: Optional[rtm2.RtmError]) -> None:
        if s.expect_error is None:
            if error is not None:
                raise ScenarioError(f"{what}: unexpected error {error!r}")
        elif error is None:
            raise ScenarioError(f"{what}: succeeded, expected error {s.expect_error}")
        elif int(error.code) != s.expect_error:
            raise ScenarioError(f"{what}: wrong code {int(error.code)}, expected {s.expect_error} ({error!r})")

    async def close(self) -> None:
        """Kills the ghosts, closes every client (bounded), then stops the server."""
        try:
            for ghost in self.ghosts.values():
                ghost.kill()
            self.ghosts.clear()
            for actor in self.clients.values():
                if actor.started is not None:
                    actor.started.cancel()
                    await asyncio.gather(actor.started, return_exceptions=True)
            clients = [a.client for a in self.clients.values()]
            self.clients.clear()
            if clients:
                await bounded(asyncio.gather(*(c.close() for c in clients), return_exceptions=True), "closing")
        finally:
            if self.server is not None:
                self.server.stop()
            if self.cluster is not None:
                await asyncio.to_thread(self.cluster.stop)


async def run_scenario(path: pathlib.Path, cluster: bool = False) -> None:
    text = path.read_text(encoding="utf-8")
    runner: Optional[Runner] = None

    def need() -> Runner:
        if runner is None:
            raise ScenarioError("server must be the first step")
        return runner

    try:
        for i, raw in enumerate(text.split("\n")):
            line_no = i + 1
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                w = words(line)
                if w[0] == "server" and len(w) > 1 and w[1] == "restart":
                    await need().restart()
                elif w[0] == "server":
                    if runner is not None:
                        raise ScenarioError("a second server step")
                    runner = Runner(cluster)
                    # Starting a cluster takes seconds: off the loop.
                    await asyncio.to_thread(runner.start, w)
                elif w[0] == "client":
                    need().add_client(w)
                elif w[0] == "ghost":
                    await need().ghost(w)
                elif w[0] == "kill":
                    await need().kill(w)
                elif w[0] == "repeat":
                    if len(w) < 3 or not re.fullmatch(r"\d+", w[1]):
                        raise ScenarioError(f"bad repeat {w[1:]}")
                    for k in range(int(w[1])):
                        await need().run_step(parse_step(line_no, [x.replace("{i}", str(k)) for x in w[2:]]))
                else:
                    await need().run_step(parse_step(line_no, w))
            except ValueError as e:
                raise ScenarioError(f"{path.name}:{line_no}: {e}") from None
    finally:
        if runner is not None:
            await runner.close()


# ---------------------------------------------------------------------------------------------
# Tests

SCENARIOS = sorted(p.name for p in SCENARIO_DIR.glob("*.scn")) if SCENARIO_DIR.is_dir() else []


def test_the_scenario_files_are_there() -> None:
    want = 11 if SCENARIO_DIR == DEFAULT_DIR else 1
    assert len(SCENARIOS) >= want, f"scenarios missing in {SCENARIO_DIR}"


def test_the_line_syntax() -> None:
    assert words('a "b c" d="e \\"f\\"" \\n') == ["a", "b c", 'd=e "f"', "\\n"]
    assert words('x ""') == ["x", ""]
    s = parse_step(1, words('alice publish room "hi there" custom_type=size:3 -> error 11010'))
    assert (s.actor, s.op) == ("alice", "publish")
    assert s.args == ["room", "hi there"]
    assert s.opts["custom_type"] == "xxx"
    assert s.expect_error == 11010
    assert parse_step(1, words("a subscribe_topic s t failed=")).opts["failed"] == ""
    assert parse_step(1, words('a set_parameters "{\\"k\\": 1}"')).args == ['{"k": 1}']
    assert parse_step(1, words("a login -> ok")).expect_error is None
    with pytest.raises(ValueError, match="unterminated quote"):
        words('"open')
    with pytest.raises(ValueError, match="bad escape"):
        words('"a\\t"')
    with pytest.raises(ValueError, match="bad outcome"):
        parse_step(1, words("a login -> fine"))


@pytest.mark.timeout(SCENARIO_TIMEOUT)
@pytest.mark.parametrize("mode", ["serve", "cluster"])
@pytest.mark.parametrize("name", SCENARIOS)
async def test_scenario(name: str, mode: str) -> None:
    if mode == "cluster":
        if not cluster_available():
            pytest.skip("no nats-server: set RTM2_NATS_SERVER or install it (scripts/test-cluster)")
        if name in CLUSTER_PENDING:
            pytest.skip(f"{name} [cluster] is pending: {CLUSTER_PENDING[name]}")
    await run_scenario(SCENARIO_DIR / name, cluster=mode == "cluster")
