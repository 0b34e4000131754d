#!/usr/bin/env python3
"""Per-kernel figures of the last graph launches of a ktrace CSV (tools/ktrace: CUDA_INJECTION64_PATH=
libling_ktrace.so LING_KTRACE_OUT=trace.csv PROGRAM ...).

A graph launch is the set of kernels that share one correlation id (one cudaGraphLaunch). For each launch the
kernels are taken in order of their end; a kernel's *advance* is how far it moved the launch's finishing front
(its end minus the latest end before it, 0 if it ends under an earlier kernel's shadow): the advances of a launch
add up to its span, so they say which kernels the step time goes to, programmatic overlap included.
Tables (medians over the last --last launches of the most frequent graph; µs):
  by kernel name: calls per launch, advance per launch, mean duration;
  with --nodes: every node of that graph in launch order: start offset, duration, advance, overlap with the one
  before (positive: it started before its predecessor ended).
Usage: scripts/ktrace-summary.py TRACE.csv [--last N] [--nodes] [--width W]
"""
import argparse
import collections
import csv
import re
import signal
import statistics
import subprocess
import sys


def short(name):
    """A demangled kernel name without its return type, parameter list and namespaces (template arguments kept);
    a mangled one (an older trace) through c++filt where it is installed."""
    if name.startswith("_Z"):
        try:
            name = subprocess.run(["c++filt", name], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return name
    n = name[5:] if name.startswith("void ") else name
    depth, cut = 0, len(n)
    for i, ch in enumerate(n):                      # the parameter list: the first '(' outside template brackets
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0 and not n.startswith("(anonymous namespace)", i):
            cut = i
            break
    n = n[:cut]
    for ns in ("(anonymous namespace)::", "ling::kernels::", "ling::cuda::", "ling::"):
        n = n.replace(ns, "")
    return n


def fit(n, width):
    return n if len(n) <= width else n[: width - 1] + "…"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--last", type=int, default=16, help="graph launches to take the medians over")
    ap.add_argument("--nodes", action="store_true", help="also list every node of one launch")
    ap.add_argument("--width", type=int, default=60, help="kernel name width")
    a = ap.parse_args()
    try:
        with open(a.trace, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        sys.exit(f"ktrace-summary: {a.trace}: {e.strerror}")
    need = {"start_ns", "end_ns", "correlation", "graph", "graph_node", "grid", "regs", "smem", "name"}
    missing = need - set(rows[0].keys() if rows else need)
    if missing:
        sys.exit(f"ktrace-summary: {a.trace}: not a ktrace CSV (no column {', '.join(sorted(missing))})")
    try:
        for r in rows:
            int(r["start_ns"]), int(r["end_ns"]), int(r["graph"])
    except (TypeError, ValueError):
        sys.exit(f"ktrace-summary: {a.trace}: a row with a start_ns, end_ns or graph that is not an integer")
    launches = collections.defaultdict(list)
    for r in rows:
        if int(r["graph"]) != 0:
            launches[(r["graph"], r["correlation"])].append(r)
    if not launches:
        sys.exit(f"ktrace-summary: {a.trace}: no kernels launched from a graph")
    graphs = collections.Counter(g for g, _ in launches)
    graph = graphs.most_common(1)[0][0]
    mine = sorted((k for k in launches if k[0] == graph), key=lambda k: min(int(r["start_ns"]) for r in launches[k]))
    mine = mine[-a.last:]
    spans, per_name, per_node = [], collections.defaultdict(lambda: [[], [], 0]), collections.defaultdict(list)
    order = None
    names_short = {}
    for key in mine:
        ks = launches[key]
        t0 = min(int(r["start_ns"]) for r in ks)
        t1 = max(int(r["end_ns"]) for r in ks)
        spans.append((t1 - t0) / 1e3)
        front = t0
        adv = {}
        for r in sorted(ks, key=lambda r: int(r["end_ns"])):
            e = int(r["end_ns"])
            adv[id(r)] = max(0, e - front) / 1e3
            front = max(front, e)
        by_start = sorted(ks, key=lambda r: (int(r["start_ns"]), int(r["graph_node"])))
        if order is None:
            order = [r["graph_node"] for r in by_start]
        names = collections.Counter()
        prev_end = None
        for r in by_start:
            s, e = int(r["start_ns"]), int(r["end_ns"])
            if r["name"] not in names_short:
                names_short[r["name"]] = short(r["name"])
            n = names_short[r["name"]]
            names[n] += 1
            d = per_name[n]
            d[0].append(adv[id(r)])
            d[1].append((e - s) / 1e3)
            per_node[r["graph_node"]].append(((s - t0) / 1e3, (e - s) / 1e3, adv[id(r)],
                                              (prev_end - s) / 1e3 if prev_end is not None else 0.0, n,
                                              r["grid"], r["regs"], r["smem"]))
            prev_end = e
        for n, c in names.items():
            per_name[n][2] = c
    L = len(mine)
    print(f"graph {graph}: {L} launches, span median {statistics.median(spans):.1f} µs "
          f"(min {min(spans):.1f}, max {max(spans):.1f}), {len(order)} kernels per launch")
    print(f"{'kernel':<{a.width}} {'calls':>5} {'advance µs':>10} {'share':>6} {'mean dur µs':>11}")
    total = statistics.median(spans)
    items = sorted(per_name.items(), key=lambda kv: -sum(kv[1][0]))
    for n, (adv, dur, calls) in items:
        per_launch = sum(adv) / L
        print(f"{fit(n, a.width):<{a.width}} {calls:>5} {per_launch:>10.1f} {100 * per_launch / total:>5.1f}% "
              f"{statistics.mean(dur):>11.2f}")
    if a.nodes:
        print(f"\n{'#':>4} {'kernel':<{a.width}} {'grid':>10} {'regs':>4} {'smem':>6} {'start':>8} {'dur':>7} "
              f"{'advance':>7} {'overlap':>7}")
        for i, node in enumerate(order):
            v = per_node[node]
            med = lambda j: statistics.median(x[j] for x in v)
            print(f"{i:>4} {fit(v[0][4], a.width):<{a.width}} {v[0][5]:>10} {v[0][6]:>4} {v[0][7]:>6} {med(0):>8.1f} {med(1):>7.2f} "
                  f"{med(2):>7.2f} {med(3):>7.2f}")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head
    main()
