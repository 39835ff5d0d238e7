#!/usr/bin/env python3
"""Plots of `rtm2-bench curves`: one PNG (and SVG) per curve from DIR/curves.jsonl.

    .venv-bench/bin/python bench/plot_curves.py [DIR]      # default docs/bench/curves

A line per system (rtm2 = `rtm2 serve`, NATS, Redis on the durable curve), the plain TCP relay
(the machine's limit) dashed; a point is the median of its runs without an error; a run that
lost messages is drawn hollow. The x axis is logarithmic where it spans decades. scripts/bench
--curves runs this after the measurements (it installs matplotlib into .venv-bench).
"""

import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402


def ptr(*paths, scale=1.0):
    """A getter: the first of the JSON paths ("a/b") present, times scale."""

    def get(v):
        for p in paths:
            x = v
            for k in p.split("/"):
                x = x.get(k) if isinstance(x, dict) else None
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                return x * scale
        return None

    return get


def mb_per_s(v):
    d, p = v.get("delivered_per_s"), v.get("payload")
    return d * p / 1e6 if isinstance(d, (int, float)) and isinstance(p, (int, float)) else None


DELIVERED = ("delivered msg/s", ptr("delivered_per_s"))
ACHIEVED = ptr("achieved_rate")
SERVER_CPU = ("server CPU µs per delivery", ptr("server_cpu_us_per_delivery"))

# curve -> title, x label, panels [(y label, getter)], group ("" = the curve's main points)
CURVES = {
    "channels": ("N message channels, one subscription each, 1 publisher round-robin", "channels (N)",
                 [DELIVERED, SERVER_CPU, ("time to subscribe to N channels (ms)", ptr("subscribe_s", scale=1e3))]),
    "subscribers": ("1 publisher → N subscribers of one channel", "subscribers per channel (each its own connection)",
                    [DELIVERED, SERVER_CPU]),
    "connections": ("idle connections, then active ones", "idle connections",
                    [("server RSS per connection (KB)", ptr("rss_per_conn_kb")),
                     ("connects (+ logins) per s", ptr("login_per_s", "connects_per_s"))]),
    "payload": ("1 publisher → 10 subscribers, payload size", "payload (bytes)",
                [DELIVERED, ("delivered MB/s", mb_per_s), SERVER_CPU]),
    "latency": ("one-way latency 1 → 1, open loop", "offered rate (msg/s)",
                [("one-way p50 (µs)", ptr("co_us/p50")), ("one-way p99 (µs)", ptr("co_us/p99")),
                 ("achieved rate (msg/s)", ACHIEVED)]),
    "tls": ("fan-out with and without TLS", "subscribers", [DELIVERED, SERVER_CPU]),
    "durable": ("durable writes, W concurrent writers", "writers (W)",
                [("acknowledged writes/s", ptr("writes_per_s")), ("write latency p99 (µs)", ptr("latency_us/p99"))]),
}
# The `active` point of the connections curve: bars beside the idle panels.
ACTIVE = [("delivered msg/s", ptr("delivered_per_s")), ("server CPU µs per delivery", ptr("server_cpu_us_per_delivery")),
          ("server RSS at the end (MB)", ptr("rss_end", scale=1 / 1048576)), ("latency p99 (µs)", ptr("latency_us/p99", "co_us/p99"))]

STYLE = {
    "rtm2-standalone": dict(label="rtm2 (rtm2 serve)", color="#1f77b4", marker="o"),
    "nats": dict(label="NATS", color="#ff7f0e", marker="s"),
    "redis": dict(label="Redis", color="#d62728", marker="^"),
    "relay": dict(label="TCP relay (the machine's limit)", color="#555555", marker="", linestyle="--"),
}
ORDER = ["rtm2-standalone", "nats", "redis", "relay"]


def short(x, _pos=None):
    if x <= 0:
        return "0"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            v = x / div
            return f"{v:.0f}{suf}" if abs(v - round(v)) < 1e-9 else f"{v:.3g}{suf}"
    return f"{x:.3g}"


def size(x, _pos=None):
    for div, suf in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if x >= div and x % div == 0:
            return f"{x // div:.0f} {suf}"
    return f"{x:.0f} B"


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return rows


def series(rows, get):
    """{(system, variant): [(x, median y, lost)]} over the runs without an error."""
    acc = defaultdict(lambda: defaultdict(list))
    lost = defaultdict(int)
    for v in rows:
        if "error" in v:
            continue
        y = get(v)
        if y is None or (isinstance(y, float) and math.isnan(y)):
            continue
        key = (v.get("system", "?"), v.get("variant", ""))
        acc[key][v["x"]].append(y)
        lost[(key, v["x"])] += v.get("lost", 0) or 0
    return {k: [(x, statistics.median(ys), lost[(k, x)] > 0) for x, ys in sorted(pts.items())]
            for k, pts in acc.items()}


def spans_decades(xs):
    xs = [x for x in xs if x > 0]
    return len(xs) > 1 and max(xs) / min(xs) >= 30


def line_panel(ax, rows, ylabel, get, xlabel, xfmt):
    s = series(rows, get)
    keys = sorted(s, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, k[1].lower() != "plain", k[1]))
    xs = sorted({x for pts in s.values() for x, _, _ in pts})
    ys = [y for pts in s.values() for _, y, _ in pts if y > 0]
    logy = bool(ys) and max(ys) / min(ys) >= 50
    for key in keys:
        system, variant = key
        st = dict(STYLE.get(system, dict(label=system, marker="o")))
        if variant:
            st["label"] = f"{st['label']}, {variant}"
            if variant.lower() != "plain":
                st["linestyle"] = ":"
                st["marker"] = "D"
        # A zero (say the relay's CPU, below the clock's resolution) has no place on a log axis.
        pts = [p for p in s[key] if p[1] > 0 or not logy]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], linewidth=1.8, markersize=5, **st)
        bad = [(x, y) for x, y, lost in pts if lost]
        if bad:
            ax.plot([b[0] for b in bad], [b[1] for b in bad], linestyle="none", marker="o", markersize=10,
                    markerfacecolor="none", markeredgecolor="red")
    if spans_decades(xs):
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    elif ys:
        ax.set_ylim(bottom=0)
    if get is ACHIEVED and xs:
        ax.plot(xs, xs, linestyle=":", color="gray", linewidth=1, label="offered rate")
    if xs:
        ax.set_xticks(xs)
        ax.xaxis.set_major_formatter(FuncFormatter(xfmt))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
    ax.yaxis.set_major_formatter(FuncFormatter(short))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    if not s:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
    return any(lost for pts in s.values() for _, _, lost in pts)


def bar_panel(ax, rows, ylabel, get, title):
    s = series(rows, get)
    keys = [k for k in sorted(s, key=lambda k: ORDER.index(k[0]) if k[0] in ORDER else 99)]
    for i, key in enumerate(keys):
        st = STYLE.get(key[0], dict(label=key[0], color="gray"))
        y = s[key][0][1]
        ax.bar(i, y, color=st["color"], label=st["label"])
        ax.text(i, y, short(y), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(keys)), [STYLE.get(k[0], {}).get("label", k[0]).split(" (")[0] for k in keys])
    ax.yaxis.set_major_formatter(FuncFormatter(short))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    if not s:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")


def plot(name, rows, out_dir):
    title, xlabel, panels = CURVES[name]
    main = [v for v in rows if v.get("group", "") in ("", "idle")]
    active = [v for v in rows if v.get("group") == "active"]
    n = len(panels) + (len(ACTIVE) if name == "connections" else 0)
    cols = min(n, 3)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.0 * nrows), squeeze=False)
    axes = [a for row in axes for a in row]
    any_lost = False
    for ax, (ylabel, get) in zip(axes, panels):
        any_lost |= line_panel(ax, main, ylabel, get, xlabel, size if name == "payload" else short)
    if name == "connections":
        conns = sorted({v["x"] for v in active})
        what = f"{short(conns[0])} active connections, 10 msg/s each" if conns else "active connections"
        for ax, (ylabel, get) in zip(axes[len(panels):], ACTIVE):
            bar_panel(ax, active, ylabel, get, what)
    for ax in axes[n:]:
        ax.set_visible(False)
    handles, labels = {}, []
    for ax in axes[: len(panels)]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if labels:
        fig.legend([handles[lab] for lab in labels], labels, loc="lower center", ncol=min(len(labels), 4),
                   frameon=False)
    note = "  (red circle: a run that lost messages)" if any_lost else ""
    fig.suptitle(f"{name}: {title}{note}", fontsize=12)
    fig.tight_layout(rect=(0, 0.08 if nrows == 1 else 0.05, 1, 0.95))
    written = []
    for ext in ("png", "svg"):
        p = Path(out_dir) / f"{name}.{ext}"
        fig.savefig(p, dpi=110 if ext == "png" else None)
        written.append(str(p))
    plt.close(fig)
    return written


def main():
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/bench/curves")
    path = out_dir / "curves.jsonl"
    if not path.exists():
        sys.exit(f"plot_curves: no {path}")
    rows = load(path)
    by_curve = defaultdict(list)
    for v in rows:
        if v.get("curve") in CURVES and isinstance(v.get("x"), (int, float)):
            by_curve[v["curve"]].append(v)
    for name in CURVES:
        if name in by_curve:
            for p in plot(name, by_curve[name], out_dir):
                print(f"plot_curves: {p}", file=sys.stderr)


if __name__ == "__main__":
    main()
