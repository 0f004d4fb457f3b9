"""Benchmark ``distill eval --completions``: how fast the truth layer re-scores a paper-sized eval.

Two synthetic sets of long completions (about 3,000 words of reasoning each, then ``</think>`` and a boxed
answer), scored through the stage's own code (:mod:`distill.stages.evaluate.scoring`):

- AIME-sized: 30 problems x 64 samples (the paper's table), answers compared as integers;
- MATH-500-sized: 100 problems x 16 samples, answers that need math-verify (``0.75`` vs ``\\frac{3}{4}``).

Prints completions per second for each, the split between verification and metrics (majority vote with
math equivalence), and the ratio math/aime measured in this run. Nothing is asserted or hard-coded.

    python scripts/bench/eval_rescore.py
    python scripts/bench/eval_rescore.py --workers 0      # verify in this process instead of a pool
"""

from __future__ import annotations

import argparse
import random
import time

from distill.stages.evaluate.scoring import ProblemCompletions, score_problems, verify_problems
from distill.verify import VerifySettings

WORDS = ("so the sum is", "we factor", "hence", "consider the residue", "by symmetry", "which gives", "checking",
         "the triangle", "modulo", "therefore", "substituting", "wait, let me recheck")


def reasoning(rng: random.Random, words: int) -> str:
    out, n = [], 0
    while n < words:
        phrase = rng.choice(WORDS)
        out.append(f"{phrase} {rng.randint(1, 999)}")
        n += len(phrase.split()) + 1
        if rng.random() < 0.05:
            out.append("\n\n")
    return " ".join(out)


def aime_set(rng: random.Random, problems: int, n: int, words: int) -> list[ProblemCompletions]:
    rows = []
    for i in range(problems):
        gold = rng.randint(0, 999)
        comps = []
        for _ in range(n):
            r = rng.random()
            answer = gold if r < 0.5 else rng.randint(0, 999)
            tail = f"\\boxed{{{answer:03d}}}" if rng.random() < 0.3 else f"\\boxed{{{answer}}}"
            comps.append(f"<think>{reasoning(rng, words)}</think>The answer is {tail}." if r < 0.95 else
                         f"<think>{reasoning(rng, words)}")
        rows.append(ProblemCompletions(f"aime-{i}", f"{gold:03d}" if gold < 100 else str(gold), comps))
    return rows


def math_set(rng: random.Random, problems: int, n: int, words: int) -> list[ProblemCompletions]:
    rows = []
    for i in range(problems):
        a, b = rng.randint(1, 9), rng.randint(10, 20)
        gold = f"\\frac{{{a}}}{{{b}}}"
        forms = [gold, f"{a}/{b}", f"\\dfrac{{{a}}}{{{b}}}", f"\\frac{{{a + 1}}}{{{b}}}", f"{round(a / b, 4)}",
                 f"\\sqrt{{{a}}}", f"x = \\frac{{{a}}}{{{b}}}"]
        comps = [f"<think>{reasoning(rng, words)}</think>So $\\boxed{{{rng.choice(forms)}}}$." for _ in range(n)]
        rows.append(ProblemCompletions(f"math-{i}", gold, comps))
    return rows


def bench(name: str, rows: list[ProblemCompletions], n: int, settings: VerifySettings) -> float:
    total = sum(len(r.completions) for r in rows)
    t0 = time.perf_counter()
    verdicts = verify_problems(rows, settings)
    t1 = time.perf_counter()
    scored = score_problems(rows, verdicts, n=n, mode=settings.mode)
    t2 = time.perf_counter()
    res = scored.results
    print(f"{name}: {len(rows)} problems x {n} = {total} completions in {t2 - t0:.2f} s "
          f"({total / (t2 - t0):,.0f} completions/s): verify {t1 - t0:.2f} s, metrics + majority vote "
          f"{t2 - t1:.2f} s; pass@1 {100 * res['pass@1']:.1f}%, cons@{n} {100 * res[f'cons@{n}']:.1f}%, "
          f"verdicts {res['status_counts']}")
    return (t2 - t0) / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, default=3000, help="reasoning words per completion")
    ap.add_argument("--workers", type=int, default=None, help="verification processes (default: one per CPU)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    t = time.perf_counter()
    aime = aime_set(rng, 30, 64, args.words)
    math = math_set(rng, 100, 16, args.words)
    chars = sum(len(c) for r in aime + math for c in r.completions)
    print(f"built {sum(len(r.completions) for r in aime + math)} completions ({chars / 1e6:.1f} M characters) "
          f"in {time.perf_counter() - t:.1f} s")
    per_aime = bench("AIME-sized, mode aime", aime, 64, VerifySettings(mode="aime", workers=args.workers))
    per_math = bench("MATH-500-sized, mode math", math, 16, VerifySettings(mode="math", workers=args.workers))
    print(f"math-verify costs {per_math / per_aime:.1f}x the integer comparison per completion (this run)")


if __name__ == "__main__":
    main()
