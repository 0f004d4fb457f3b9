"""Throughput of the code sandbox: sandboxed executions per second, serial vs pooled, in one run.

    python scripts/bench/sandbox.py                 # 200 programs, pool of all usable CPUs
    python scripts/bench/sandbox.py --n 500 --workers 4

Builds ``--n`` small HumanEval-like problems (a function plus a ``check`` with a few asserts; a fifth of the
programs are wrong, so failing runs are timed too), checks them once with ``workers=1`` and once with the pool
(:func:`distill.verify.code_tests.verify_code_batch`), and prints both rates, their ratio, whether both gave
the same verdicts, and what the sandbox isolates on this machine. Each check is one fresh sandboxed process
tree (boot process + interpreter). Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

try:
    import distill  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from distill.verify.code_tests import FunctionTests, verify_code_batch
from distill.verify.sandbox import Limits, sandbox_info

KINDS = [
    ("def f(n):\n    return sum(range(n + 1))\n", "def f(n):\n    return sum(range(n))\n",
     "def check(candidate):\n    assert candidate({k}) == {k} * ({k} + 1) // 2\n    assert candidate(0) == 0\n"),
    ("def f(xs):\n    return sorted(xs)[::-1]\n", "def f(xs):\n    return sorted(xs)\n",
     "def check(candidate):\n    assert candidate([{k}, 1, 2]) == sorted([{k}, 1, 2], reverse=True)\n"),
    ("def f(s):\n    return s == s[::-1]\n", "def f(s):\n    return True\n",
     "def check(candidate):\n    assert candidate('ab' * {k}) is False\n    assert candidate('aba') is True\n"),
    ("import math\ndef f(n):\n    return math.factorial(n) % 1000007\n", "def f(n):\n    return n\n",
     "import math\ndef check(candidate):\n    assert candidate({k} % 50 + 3) == math.factorial({k} % 50 + 3) % 1000007\n"),
]


def problems(n: int) -> tuple[list[str], list[FunctionTests]]:
    """``n`` programs and their tests; every fifth program is wrong."""
    programs, tests = [], []
    for i in range(n):
        good, bad, test = KINDS[i % len(KINDS)]
        programs.append(bad if i % 5 == 4 else good)
        tests.append(FunctionTests(test.format(k=i + 2), "f"))
    return programs, tests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None, help="pool size (default: usable CPUs)")
    args = ap.parse_args()
    workers = args.workers or len(os.sched_getaffinity(0))
    programs, tests = problems(args.n)
    limits = Limits()
    print(f"sandbox on this machine: {sandbox_info()}  (running as uid {os.geteuid()})")
    verify_code_batch(programs[:4], tests[:4], limits, workers=1)  # warm the page cache

    start = time.perf_counter()
    serial = verify_code_batch(programs, tests, limits, workers=1)
    serial_s = time.perf_counter() - start
    start = time.perf_counter()
    pooled = verify_code_batch(programs, tests, limits, workers=workers)
    pooled_s = time.perf_counter() - start

    serial_rate, pooled_rate = args.n / serial_s, args.n / pooled_s
    print(f"programs: {args.n}  verdicts: {dict(Counter(v.status for v in serial))}")
    print(f"serial (1 worker):    {serial_rate:7.1f} executions/s  ({serial_s:.2f} s, "
          f"{1000 * serial_s / args.n:.1f} ms each)")
    print(f"pooled ({workers} workers):   {pooled_rate:7.1f} executions/s  ({pooled_s:.2f} s)")
    print(f"speed-up: {pooled_rate / serial_rate:.2f}x on {len(os.sched_getaffinity(0))} usable CPUs")
    print(f"same verdicts: {serial == pooled}")


if __name__ == "__main__":
    main()
