"""Benchmark ``distill filter``: traces filtered per second, and where the time goes.

Writes N synthetic traces of realistic length (default 20,000 traces, 16 per problem, 2,000-6,000 tokens
each, built deterministically from a seeded pool of sentences) into a traces folder, runs the real stage on
them with ``--reverify`` (every trace verified again by the truth layer), and prints the stage's own timings
from ``filter_stats.json``: reading, verification, each row filter (CPU seconds, summed over workers),
dedup, selection and writing. Nothing is asserted and no figure is hard-coded.

The traces carry the faults the filters look for, in fixed shares: wrong answers, answers that need
math-verify (``0.75`` vs ``\\frac{3}{4}``), unfinished traces, code blocks, a Chinese paragraph, loops and
exact duplicates.

    python scripts/bench/filter.py                # the default: 20,000 traces (about 2 minutes on 2 cores)
    python scripts/bench/filter.py --n 2000       # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

SUBJECTS = ("the sum", "the product", "the remainder", "the area", "the radius", "the discriminant", "the slope",
            "the number of pairs", "the expected value", "the perimeter", "the common ratio", "the last digit")
VERBS = ("equals", "is at most", "must be", "cannot exceed", "is congruent to", "divides", "is the same as")
OPENERS = ("So", "Then", "Now", "Wait,", "Hmm,", "Therefore", "Next,", "Let me check:", "Alternatively,",
           "Recall that", "Note that", "In that case")
TOKENS_PER_CHAR = 0.25   # about 4 characters per token for English math prose


def sentence_pool(rng: random.Random, size: int = 4000) -> list[str]:
    pool = []
    for _ in range(size):
        a, b, c = rng.randint(2, 999), rng.randint(2, 99), rng.randint(1, 9)
        kind = rng.randrange(4)
        if kind == 0:
            s = f"{rng.choice(OPENERS)} {rng.choice(SUBJECTS)} {rng.choice(VERBS)} ${a} \\cdot {b} + {c}$."
        elif kind == 1:
            s = (f"{rng.choice(OPENERS)} if $x = {a}$ then $x^2 - {b}x + {c} = {a * a - b * a + c}$, "
                 f"which gives {rng.choice(SUBJECTS)} directly.")
        elif kind == 2:
            s = (f"{rng.choice(OPENERS)} we compute $\\frac{{{a}}}{{{b}}} = {a / b:.4f}$ and compare it with "
                 f"{rng.choice(SUBJECTS)} from step {c}.")
        else:
            s = (f"{rng.choice(OPENERS)} substituting back, {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {a} "
                 f"modulo {b}, so the case with {c} works.")
        pool.append(s)
    return pool


def make_reasoning(rng: random.Random, pool: list[str], tokens: int) -> str:
    chars = int(tokens / TOKENS_PER_CHAR)
    paragraphs, size = [], 0
    while size < chars:
        para = " ".join(rng.choices(pool, k=rng.randint(3, 8)))
        paragraphs.append(para)
        size += len(para) + 2
    return "\n\n".join(paragraphs)


def make_traces(n: int, per_problem: int, seed: int) -> tuple[list[dict], int]:
    """Deterministic trace rows (TRACE_FIELDS) and the number of problems."""
    rng = random.Random(seed)
    pool = sentence_pool(rng)
    problems = max(1, n // per_problem)
    rows: list[dict] = []
    for i in range(n):
        p, sample = i % problems, i // problems
        kind = p % 4
        gold = {0: str(p % 1000), 1: "\\frac{3}{4}", 2: f"{p % 97}\\sqrt{{2}}", 3: f"x^2 + {p % 9 + 1}"}[kind]
        roll = rng.random()
        if roll < 0.55:
            answer = gold
        elif roll < 0.70:   # equivalent but written differently: math-verify decides
            answer = {0: f"{p % 1000}.0", 1: "0.75", 2: f"\\sqrt{{2}} \\cdot {p % 97}", 3: f"{p % 9 + 1} + x^2"}[kind]
        else:               # wrong (a few distinct wrong answers per problem)
            answer = f"{p % 1000 + 1 + rng.randrange(3)}"
        tokens = rng.randint(2000, 6000)
        reasoning = make_reasoning(rng, pool, tokens)
        fault = rng.random()
        finish = "stop"
        if fault < 0.02:
            reasoning += "\n\n```python\nprint(sum(range(10)))\n```"
        elif fault < 0.04:
            reasoning += "\n\n我们再检查一下这个结果是否正确。"
        elif fault < 0.06:
            reasoning += "\n\n" + "wait let me check that again " * 400
        text = f"<think>\n{reasoning}\n</think>\n\nThe final answer is $\\boxed{{{answer}}}$."
        if fault > 0.97:    # cut off by the token limit
            text, finish = text[: len(text) // 2], "length"
        elif 0.95 < fault <= 0.97 and i >= problems:   # an exact repeat of this problem's previous sample
            text = rows[i - problems]["completion"]
        rows.append({"id": f"b{p}", "sample": sample, "problem": f"Benchmark problem {p}: find the value {p}.",
                     "prompt": f"<|user|>Benchmark problem {p}\n<|assistant|>", "completion": text,
                     "reasoning": reasoning, "answer_text": None, "final_answer": None, "verdict": None,
                     "gold": gold, "prompt_tokens": 40, "completion_tokens": tokens, "finish_reason": finish,
                     "teacher": "bench-teacher", "engine": "synthetic", "sampling": {"temperature": 0.6},
                     "seed": seed})
    return rows, problems


def write_traces(rows: list[dict], folder: Path, shards: int = 4) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    size = 0
    for s in range(shards):
        path = folder / f"shard-{s:05d}-of-{shards:05d}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for r in rows[s::shards]:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        size += path.stat().st_size
    return size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="traces (default 20000)")
    parser.add_argument("--per-problem", type=int, default=16, help="samples per problem")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="row-filter and verify processes (default: all CPUs)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from distill.stages.filter.config import FilterConfig
    from distill.stages.filter.stage import run

    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench-filter-"))
    try:
        t0 = time.perf_counter()
        rows, problems = make_traces(args.n, args.per_problem, args.seed)
        mean_tokens = sum(r["completion_tokens"] for r in rows) / len(rows)
        mean_chars = sum(len(r["completion"]) for r in rows) / len(rows)
        made = time.perf_counter() - t0
        size = write_traces(rows, tmp / "traces")
        del rows
        eval_file = tmp / "eval.jsonl"
        eval_file.write_text(json.dumps({"id": "e0", "problem": "Benchmark problem 7: find the value 7."}) + "\n")
        print(f"made {args.n:,} traces of {problems:,} problems in {made:.1f} s: mean {mean_tokens:,.0f} tokens "
              f"({mean_chars:,.0f} characters), {size / 1e6:,.0f} MB of JSONL", flush=True)

        cfg = FilterConfig(traces=[str(tmp / "traces")], out=str(tmp / "out"), reverify=True,
                           decontaminate_files=[str(eval_file)], workers=args.workers, verify_workers=args.workers,
                           max_tokens=8192)
        start = time.perf_counter()
        run(cfg)
        wall = time.perf_counter() - start
        stats = json.loads((tmp / "out" / "filter_stats.json").read_text())
    finally:
        if args.keep:
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    t = stats["timing_s"]
    n_in = stats["rows_in"]
    row_filter_cpu = {k[len("filter."):]: v for k, v in t.items() if k.startswith("filter.")}
    print("\n=== distill filter benchmark ===")
    print(f"cpus: {os.cpu_count()}, row-filter workers: {stats['row_filter_workers']}, python {sys.version.split()[0]}, "
          f"load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f} (other work on the machine "
          "inflates wall times; the per-filter CPU seconds are not affected)")
    print(f"traces: {n_in:,} in, {stats['rows_kept']:,} kept; verified again: {stats['verification']['verified']:,}")
    print(f"wall time {wall:.1f} s -> {n_in / wall:,.0f} traces/s end to end")
    other = t["total"] - t.get("verify", 0.0)
    print(f"without verification: {n_in / other:,.0f} traces/s")
    print("\nwhere the wall time went (stage timings):")
    for key in ("read", "decontamination_index", "verify", "filters_wall", "write"):
        if key in t:
            print(f"  {key:<24}{t[key]:>8.2f} s  {100 * t[key] / t['total']:>5.1f}%")
    print(f"  {'total':<24}{t['total']:>8.2f} s")
    print(f"\nverification vs other filters: verify {t.get('verify', 0.0):.2f} s wall, row filters "
          f"{t['filters_wall']:.2f} s wall (dedup and selection included)"
          f" -> ratio {t.get('verify', 0.0) / max(t['filters_wall'], 1e-9):.2f}")
    total_cpu = sum(row_filter_cpu.values())
    print("per filter (CPU seconds, summed over workers):")
    for name, secs in sorted(row_filter_cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<24}{secs:>8.2f} s  {100 * secs / max(total_cpu, 1e-9):>5.1f}%  "
              f"{1e3 * secs / n_in:>7.3f} ms/trace")
    print("\ndrops (first failing filter):", json.dumps(stats["drops_first_by_filter"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
