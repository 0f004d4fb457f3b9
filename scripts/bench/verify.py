"""Throughput of distill.verify.verify_batch: in-process serial vs the worker pool, in one run.

    python scripts/bench/verify.py                       # 10,000 pairs, 2 workers, 3 s timeout
    python scripts/bench/verify.py --n 2000 --workers 4 --timeout 5

Builds (completion, gold) pairs from the real answer files in ../shared/data (AIME 2024 with zero-padded
golds, AIME 2025, MATH-500): correct answers, equivalent reformattings (``5.0``, ``a/b``, ``0.25``,
``1 \\cdot x``), wrong answers (another problem's gold, off-by-one integers), no answer (the box only inside
``<think>``), long completions (20k-80k characters, some cut off before ``</think>``) and two pathological
power towers that must time out. MATH pairs are checked in "math" mode, AIME pairs in "aime" mode.

Both settings run warm (math-verify imported, workers started; start-up is printed separately) on the same
pairs, taking turns slice by slice so that load from other processes hits both alike. Prints verifications/s for both, the speed-up, the worst
overrun of a timed-out item past its timeout, whether both settings gave the same verdicts, and how many
verdicts differ from what each pair was built to be.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

try:
    import distill  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
PATHOLOGICAL = [r"9^{9^{9^{9}}}", r"10^{10^{10}}"]


@dataclass(frozen=True)
class Pair:
    kind: str  # correct | reformatted | wrong | no_answer | long | unfinished | pathological
    mode: str  # math | aime
    completion: str
    gold: str
    expected: str  # the status the pair was built to get


def load(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


_FRAC_RE = re.compile(r"^\\frac\{(\d+)\}\{(\d+)\}$")


def reformat_math(gold: str, rng: random.Random) -> str:
    """An equivalent spelling of a MATH-500 answer, of the kinds models produce."""
    if re.fullmatch(r"-?\d+", gold):
        return rng.choice([gold + ".0", f"{gold}.00", f"x = {gold}"])
    m = _FRAC_RE.match(gold)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        options = [f"{a}/{b}", rf"\dfrac{{{a}}}{{{b}}}", rf"\frac{{{2 * a}}}{{{2 * b}}}"]
        decimal = a / b
        if len(repr(decimal)) < 9:
            options.append(repr(decimal))
        return rng.choice(options)
    if gold.startswith((r"\frac", r"\sqrt", r"\pi")):
        return r"1 \cdot " + gold
    return gold.replace(r"\frac", r"\dfrac") + r"\,"


def wrap(reasoning: str, answer: str | None, rng: random.Random) -> str:
    tail = rng.choice(
        ["The answer is $\\boxed{%s}$.", "Therefore, the final answer is $\\boxed{%s}$.", "\\[\\boxed{%s}\\]"]
    )
    body = "<think>\n" + reasoning + "\n</think>\n\n"
    return body + (tail % answer if answer is not None else "I am not sure.")


def build_pairs(n: int, seed: int) -> list[Pair]:
    rng = random.Random(seed)
    aime = [(r, "aime") for r in load(DATA / "aime24" / "test.jsonl") + load(DATA / "aime25" / "test.jsonl")]
    math = [(r, "math") for r in load(DATA / "math500" / "test.jsonl")]
    problems = aime + math
    math_golds = [r["answer"] for r, _ in math]
    pairs = [
        Pair("pathological", "math", wrap("...", p, rng), math_golds[i], "timeout")
        for i, p in enumerate(PATHOLOGICAL)
    ]
    kinds = ["correct", "reformatted", "wrong", "no_answer", "long", "unfinished"]
    weights = [0.2, 0.25, 0.3, 0.1, 0.1, 0.05]
    while len(pairs) < n:
        row, mode = rng.choice(problems)
        gold = str(row["answer"])
        reasoning = row.get("solution") or row["problem"]
        kind = rng.choices(kinds, weights)[0]
        if kind == "long" or kind == "unfinished":
            reasoning = (reasoning + "\n\nWait, let me double-check that.\n\n") * (
                rng.randint(20_000, 80_000) // (len(reasoning) + 40) + 1
            )
        if mode == "aime":
            value = int(gold)
            answer = {
                "correct": str(value),
                "reformatted": rng.choice(
                    [gold.zfill(3), f"{value}.0", f"n = {value}", rf"\text{{{value}}}"]
                ),
                "wrong": str((value + rng.choice([1, -1, 10, 100])) % 1000),
                "long": str(value),
                "unfinished": str(value),
            }.get(kind)
        else:
            if kind == "wrong":
                answer = rng.choice([g for g in math_golds if g.replace(" ", "") != gold.replace(" ", "")])
            elif kind == "reformatted":
                answer = reformat_math(gold, rng)
            else:
                answer = gold if kind != "no_answer" else None
        completion = wrap(reasoning, answer, rng)
        if kind == "no_answer":
            completion = "<think>\n" + reasoning + "\n</think>\n\nI am not sure."
        if kind == "unfinished":
            completion = completion.split("</think>")[0]
        expected = {"wrong": "incorrect", "no_answer": "no_answer", "unfinished": "unfinished"}.get(
            kind, "correct"
        )
        pairs.append(Pair(kind, mode, completion, gold, expected))
    return pairs[:n]


def run(pairs: list[Pair], workers: int, timeout: float, pool: object) -> tuple[float, float, list]:
    """Verify ``pairs`` (math and aime batches); return (wall seconds, this process's CPU seconds, verdicts)."""
    from distill.verify import VerifySettings, verify_batch

    verdicts: list = [None] * len(pairs)
    start, cpu = time.perf_counter(), time.process_time()
    for mode in ("math", "aime"):
        idx = [i for i, p in enumerate(pairs) if p.mode == mode]
        out = verify_batch(
            [pairs[i].completion for i in idx],
            [pairs[i].gold for i in idx],
            VerifySettings(mode=mode, timeout=timeout, workers=workers),
            pool=pool,  # type: ignore[arg-type]
        )
        for i, v in zip(idx, out, strict=True):
            verdicts[i] = v
    return time.perf_counter() - start, time.process_time() - cpu, verdicts


def _ceiling_child(part: list[Pair], timeout: float, ready: object, go: object, out: object) -> None:
    from distill.verify.equivalence import warm_up

    warm_up()
    ready.set()  # type: ignore[attr-defined]
    go.wait()  # type: ignore[attr-defined]
    wall, _, _ = run(part, 0, timeout, None)
    out.put(wall)  # type: ignore[attr-defined]


def ceiling(pairs: list[Pair], workers: int, timeout: float) -> float:
    """Wall seconds for ``workers`` independent serial processes, each on its share of the golds, at once.

    No pool, no timeouts enforced from outside, no messages: what this machine gives for running this
    work on ``workers`` cores at the same time, the most any pool could reach here.
    """
    import multiprocessing as mp

    from distill.verify.dispatch import queues_by_gold

    ctx = mp.get_context("spawn")
    # The same split by gold as the pool's queues, so both measure the same division of the work.
    queues = queues_by_gold([(p.completion, p.gold) for p in pairs], workers)
    shares = [[pairs[i] for i in queue] for queue in queues]
    go, out = ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(workers)]
    procs = [ctx.Process(target=_ceiling_child, args=(s, timeout, r, go, out)) for s, r in zip(shares, readies)]
    for proc in procs:
        proc.start()
    for r in readies:
        r.wait()
    start = time.perf_counter()
    go.set()
    walls = [out.get() for _ in procs]
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join()
    return max(max(walls), elapsed)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def max_overrun(verdicts: list, timeout: float) -> str:
    overruns = [v.seconds - timeout for v in verdicts if v.status == "timeout" and v.seconds is not None]
    if not overruns:
        return "no item timed out"
    return f"{max(overruns):+.3f} s past the {timeout:g} s timeout ({len(overruns)} timed out)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="number of (completion, gold) pairs")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for the pooled run")
    ap.add_argument("--timeout", type=float, default=3.0, help="per-item timeout in seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--slices",
        type=int,
        default=4,
        help="run serial and pool alternately on this many slices, so drifting machine load hits both alike",
    )
    ap.add_argument(
        "--no-ceiling",
        dest="ceiling",
        action="store_false",
        help="skip the reference run of independent serial processes (what this machine allows in parallel)",
    )
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs the real eval data at {DATA} (the shared/ folder beside the checkout)")
    if args.workers < 2:
        sys.exit("--workers must be >= 2 (0 and 1 mean in-process serial, which is always measured)")

    from distill.verify import VerifyPool, verify_batch
    from distill.verify.equivalence import warm_up
    from distill.verify.extract import extract_answer
    from distill.verify.normalize import canonical_text

    pairs = build_pairs(args.n, args.seed)
    by_kind = Counter(p.kind for p in pairs)
    jobs = set()
    for p in pairs:
        pred = extract_answer(p.completion.split("</think>")[-1]) if "</think>" in p.completion else None
        if p.mode == "math" and pred and canonical_text(pred) != canonical_text(p.gold):
            jobs.add((pred, p.gold))
    mean_len = sum(len(p.completion) for p in pairs) / len(pairs)
    print(
        f"pairs: {len(pairs)} ({sum(p.mode == 'aime' for p in pairs)} aime, "
        f"{sum(p.mode == 'math' for p in pairs)} math); kinds: {dict(sorted(by_kind.items()))}"
    )
    print(
        f"mean completion length: {mean_len:,.0f} chars; longest: {max(len(p.completion) for p in pairs):,}"
    )
    print(f"distinct (prediction, gold) pairs that need math-verify: ~{len(jobs)}")
    print(f"cpus: {os.cpu_count()}; load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

    # Warm both alike: here, the same warm-up each worker runs at start-up (it ends with an empty parse
    # cache); then start the workers. Then the slices, serial and pool taking turns to go first.
    warm_up()
    serial_s = pool_s = serial_cpu = pool_cpu = 0.0
    serial: list = []
    pooled: list = []
    cpu_before = children_cpu()
    with VerifyPool(args.workers) as pool:
        start = time.perf_counter()
        verify_batch([r"\boxed{1}"] * args.workers, [r"\frac22"] * args.workers, pool=pool)
        startup_s = time.perf_counter() - start
        size = -(-len(pairs) // args.slices)
        for k in range(args.slices):
            part = pairs[k * size : (k + 1) * size]
            order = [(0, None), (args.workers, pool)]
            for workers, maybe_pool in order if k % 2 == 0 else order[::-1]:
                wall, cpu, verdicts = run(part, workers, args.timeout, maybe_pool)
                if workers == 0:
                    serial_s, serial_cpu, serial = serial_s + wall, serial_cpu + cpu, serial + verdicts
                else:
                    pool_s, pool_cpu, pooled = pool_s + wall, pool_cpu + cpu, pooled + verdicts
    pool_cpu += children_cpu() - cpu_before
    ceiling_s = ceiling(pairs, args.workers, args.timeout) if args.ceiling else 0.0

    n = len(pairs)
    print()
    print(f"serial (workers=0): {serial_s:7.2f} s  {n / serial_s:8.1f} verifications/s")
    print(
        f"pool (workers={args.workers}): {pool_s:8.2f} s  {n / pool_s:8.1f} verifications/s"
        f"   (+{startup_s:.2f} s one-off worker start-up, not counted)"
    )
    print(f"speed-up pool/serial: {serial_s / pool_s:.2f}x")
    if args.ceiling:
        print(
            f"{args.workers} independent serial processes at once, each on its share of the golds (no pool): "
            f"{ceiling_s:.2f} s  {n / ceiling_s:.1f}/s = {serial_s / ceiling_s:.2f}x serial; "
            f"the pool reaches {ceiling_s / pool_s:.0%} of that"
        )
    print(
        f"CPU seconds: serial {serial_cpu:.1f}, pool {pool_cpu:.1f} (parent + workers, start-up included); "
        f"on an otherwise idle machine the speed-up could reach about {args.workers * serial_cpu / pool_cpu:.2f}x"
    )
    print(f"max overrun, serial: {max_overrun(serial, args.timeout)}")
    print(f"max overrun, pool:   {max_overrun(pooled, args.timeout)}")
    slowest = max((v.seconds or 0.0) for v in pooled if v.status != "timeout")
    print(f"slowest item that finished in the pool: {slowest:.3f} s")
    same = sum(
        (a.status, a.extracted) == (b.status, b.extracted) for a, b in zip(serial, pooled, strict=True)
    )
    print(f"serial and pool verdicts identical (status and extracted answer): {same}/{n}")
    statuses = Counter(v.status for v in pooled)
    print(f"statuses: {dict(sorted(statuses.items()))}")
    off = Counter((p.kind, v.status) for p, v in zip(pairs, pooled, strict=True) if v.status != p.expected)
    print(f"verdicts that differ from what the pair was built to be: {sum(off.values())} {dict(off)}")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
