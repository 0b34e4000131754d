#!/usr/bin/env python3
"""scripts/ktrace-summary.py on hand-made traces: the advances of a launch (each kernel's move of the finishing
front, kernels taken by their end) add up to its span; kernels outside graphs are left out; bad input gets one line
and exit status 1. Run by ctest (label cpu): python3 tests/scripts/test_ktrace_summary.py."""
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "ktrace-summary.py")
HEADER = "start_ns,end_ns,stream,correlation,graph,graph_node,grid,block,regs,smem,name\n"
NAMES = {"A": '"void ling::kernels::(anonymous namespace)::k_a<1>(int)"',
         "B": '"void ling::cuda::k_b(float const*, int)"',
         "C": '"ling::kernels::k_c<8, 4>(ling::kernels::P)"'}


def row(start, end, corr, graph, node, name):
    return f"{start},{end},7,{corr},{graph},{node},16x1x1,256x1x1,32,0,{NAMES[name]}\n"


def launch(t0, corr):
    # A [0, 10] µs, B [4, 12], C [5, 8] after t0: by their end C (8 µs from the start), A (+2), B (+2): span 12.
    return (row(t0, t0 + 10000, corr, 5, 1, "A") + row(t0 + 4000, t0 + 12000, corr, 5, 2, "B") +
            row(t0 + 5000, t0 + 8000, corr, 5, 3, "C"))


def run(text, *args):
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        return subprocess.run([sys.executable, SCRIPT, path, *args], capture_output=True, text=True)
    finally:
        os.unlink(path)


class Summary(unittest.TestCase):
    def test_advances_add_up_to_the_span(self):
        # two launches of graph 5, a launch of another graph (graph 9, less frequent) and a kernel outside graphs
        text = (HEADER + row(0, 500000, 1, 0, 0, "A") + launch(1000000, 10) + launch(2000000, 11) +
                row(3000000, 3900000, 12, 9, 1, "B"))
        p = run(text, "--nodes", "--width", "20")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].startswith("graph 5: 2 launches, span median 12.0 µs (min 12.0, max 12.0), 3 kernels"),
                        lines[0])
        # by name (demangled names shortened): calls per launch, advance per launch, share, mean duration
        per_name = {}
        for ln in lines[2:5]:
            f = ln[20:].split()
            per_name[ln[:20].strip()] = (int(f[0]), float(f[1]), float(f[3]))
        self.assertEqual(per_name, {"k_c<8, 4>": (1, 8.0, 3.0), "k_a<1>": (1, 2.0, 10.0), "k_b": (1, 2.0, 8.0)})
        self.assertAlmostEqual(sum(v[1] for v in per_name.values()), 12.0)
        # nodes in start order: advance and overlap with the node before (A ends 6 µs after B starts, B 7 after C)
        nodes = [ln[25:].split() for ln in lines if ln[:4].strip().isdigit()]
        self.assertEqual(len(nodes), 3, lines)
        self.assertEqual([float(n[-2]) for n in nodes], [2.0, 2.0, 8.0])
        self.assertEqual([float(n[-1]) for n in nodes], [0.0, 6.0, 7.0])
        self.assertEqual([float(n[-3]) for n in nodes], [10.0, 8.0, 3.0])  # durations
        self.assertEqual([float(n[-4]) for n in nodes], [0.0, 4.0, 5.0])   # starts from the launch's first

    def test_last_takes_the_latest_launches(self):
        longer = (row(5000000, 5020000, 20, 5, 1, "A") + row(5004000, 5012000, 20, 5, 2, "B") +
                  row(5005000, 5008000, 20, 5, 3, "C"))
        p = run(HEADER + launch(1000000, 10) + launch(2000000, 11) + longer, "--last", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("graph 5: 1 launches, span median 20.0 µs", p.stdout.splitlines()[0])

    def bad(self, text, needle):
        p = run(text)
        self.assertEqual(p.returncode, 1, p.stdout)
        err = p.stderr.strip().splitlines()
        self.assertEqual(len(err), 1, p.stderr)
        self.assertIn(needle, err[0])

    def test_bad_input_is_one_line(self):
        self.bad("a,b\n1,2\n", "not a ktrace CSV (no column")
        self.bad(HEADER + "x,10,7,1,5,1,1x1x1,32x1x1,8,0,k\n", "not an integer")
        self.bad(HEADER + row(0, 10, 1, 0, 0, "A"), "no kernels launched from a graph")
        p = subprocess.run([sys.executable, SCRIPT, "/nonexistent/trace.csv"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)


if __name__ == "__main__":
    unittest.main()
