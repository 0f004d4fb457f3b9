"""How fast is `distill --help`? Heavy libraries must stay out of the CLI's import path.

    python scripts/bench/cli_startup.py --repeats 5

Prints the median and max wall time of `distill --help` and of bare `python -c pass` in one run, and which
heavy modules (if any) the parser pulled in.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    help_times = [timed([sys.executable, "-m", "distill", "--help"]) for _ in range(args.repeats)]
    sub_times = [timed([sys.executable, "-m", "distill", "tiny", "--help"]) for _ in range(args.repeats)]
    bare = [timed([sys.executable, "-c", "pass"]) for _ in range(args.repeats)]
    heavy = subprocess.run(
        [sys.executable, "-c", "import sys; from distill.cli import build_parser; build_parser(); "
         "print([m for m in ('torch','transformers','trl','vllm','lm_eval','datasets') if m in sys.modules])"],
        capture_output=True, text=True, check=True).stdout.strip()
    print(f"distill --help      median {statistics.median(help_times):.3f} s  max {max(help_times):.3f} s")
    print(f"distill tiny --help median {statistics.median(sub_times):.3f} s  max {max(sub_times):.3f} s")
    print(f"python -c pass      median {statistics.median(bare):.3f} s")
    print(f"heavy modules imported by the parser: {heavy}")


if __name__ == "__main__":
    main()
