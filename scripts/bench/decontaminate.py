"""Decontamination precision on real competition problems: false and true positives, before vs after.

Eval index: AIME 2024, AIME 2025 and MATH-500 from ``/work/shared/data`` (``--data`` to point elsewhere).
Queries (each row of the table):

- should NOT be flagged: every eval set against an index of the other two; each MATH-500 problem against
  the other 499; the 40 AMC 2023 problems and the 153 MATH (train) problems of ``real-traces/`` against
  the whole index (but two of the MATH problems are real near-duplicates of MATH-500 problems, below);
- SHOULD be flagged: the 2 MATH near-duplicates, the 30 AIME 2024 problems as Sky-T1's prompts wrote
  them, and 30 reworded copies made here from eval problems (names and every other number changed, some
  words replaced by synonyms, the first two sentences swapped; seeded).

"before" is the old rule (any one shared 8-gram, Asymptote and digit runs included); "after" is
:class:`distill.stages.filter.decontaminate.NgramIndex` with its defaults; the two middle columns switch
on one part each (boilerplate filter only / minimum overlap only). Nothing is asserted.

    python scripts/bench/decontaminate.py
    python scripts/bench/decontaminate.py --verbose     # also list what "after" flags where it should not
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
NEAR_DUPLICATES = ("Daniel works at an electronics store", "can be written as $(Ay-14)(By-3)")
NAMES = {"Aya": "Maya", "Jen": "Ben", "Alice": "Carol", "Bob": "Dave", "Jim": "Tom", "Martha": "Linda",
         "Rectangles": "Boxes", "Bill": "Will", "Alicia": "Anna", "Beth": "Emma", "Carlos": "Pedro"}
SYNONYMS = (("Find ", "Determine "), ("What is ", "Compute "), ("How many ", "Determine how many "),
            ("Suppose ", "Assume "), ("positive integer", "positive whole number"), ("Let ", "Take "))
_NUMBER_RE = re.compile(r"(?<![\w.])\d+(?![\w.])")
_SENTENCE_RE = re.compile(r"(?<=[.?!])\s+(?=[A-Z$])")


def load(path: Path) -> list[str]:
    return [json.loads(line)["problem"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def reword(problem: str, rng: random.Random) -> str:
    """A near-duplicate: names swapped, every other number changed, two synonyms, first two sentences swapped."""
    for old, new in NAMES.items():
        problem = re.sub(rf"\b{old}\b", new, problem)
    count = iter(range(10**6))
    problem = _NUMBER_RE.sub(lambda m: str(int(m.group()) + rng.randint(1, 3)) if next(count) % 2 else m.group(),
                             problem)
    for old, new in rng.sample(SYNONYMS, 2):
        problem = problem.replace(old, new, 1)
    sentences = _SENTENCE_RE.split(problem)
    if len(sentences) >= 3:
        sentences[0], sentences[1] = sentences[1], sentences[0]
    return " ".join(sentences)


# ---------------------------------------------------------------- the old rule (distill before this change)

def legacy(n: int = 8) -> tuple[Callable[[str, str], None], Callable[..., str | None]]:
    word_re = re.compile(r"\w+")
    grams: dict[tuple[str, ...], set[str]] = {}
    short: dict[tuple[str, ...], str] = {}

    def add(text: str, label: str) -> None:
        tokens = word_re.findall(text.lower())
        if len(tokens) < n:
            short.setdefault(tuple(tokens), label)
        for i in range(len(tokens) - n + 1):
            grams.setdefault(tuple(tokens[i : i + n]), set()).add(label)

    def find(text: str, exclude: str | None = None) -> str | None:
        tokens = word_re.findall(text.lower())
        for i in range(len(tokens) - n + 1):
            if any(label != exclude for label in grams.get(tuple(tokens[i : i + n]), ())):
                return "hit"
        lengths = {len(k) for k in short}
        return next((short[tuple(tokens[i : i + m])] for m in lengths for i in range(len(tokens) - m + 1)
                     if short.get(tuple(tokens[i : i + m]), exclude) != exclude), None)

    return add, find


def method(name: str) -> tuple[Callable[[str, str], None], Callable[..., str | None]]:
    from distill.stages.filter.decontaminate import NgramIndex

    if name == "before":
        return legacy()
    options = {"after": {}, "boilerplate only": {"min_overlap": 0.0}, "overlap only": {"max_df": None}}[name]
    index = NgramIndex(**options)
    return index.add, index.find


METHODS = ("before", "boilerplate only", "overlap only", "after")


def queries(data: Path) -> tuple[dict[str, list[str]], list[tuple[str, list[tuple[str, str]], list[str], bool]]]:
    """The eval sets, and the query rows: (name, eval problems indexed (set, text), queries, should flag)."""
    sets = {"AIME 2024": load(data / "aime24" / "test.jsonl"), "AIME 2025": load(data / "aime25" / "test.jsonl"),
            "MATH-500": load(data / "math500" / "test.jsonl")}
    every = [(name, text) for name, texts in sets.items() for text in texts]
    rows = [(f"{name} vs the other two", [(s, t) for s, t in every if s != name], texts, False)
            for name, texts in sets.items()]
    rows.append(("MATH-500, each vs the other 499", [], sets["MATH-500"], False))
    traces = data / "real-traces"
    sky = [json.loads(x) for x in (traces / "sky-t1-aime24.jsonl").read_text(encoding="utf-8").splitlines()]
    amc = sorted({r["problem"] for r in sky if "/amc23/" in r["path"]})
    aime = sorted({r["problem"] for r in sky if "/aime24/" in r["path"]})
    math = sorted({json.loads(x)["problem"] for x in (traces / "r1-distill-math.jsonl").read_text().splitlines()})
    near = [p for p in math if any(k in p for k in NEAR_DUPLICATES)]
    rows.append(("AMC 2023 (Sky-T1 prompts)", every, amc, False))
    rows.append(("MATH train (R1-distill traces), not dups", every, [p for p in math if p not in near], False))
    rows.append(("MATH train: the 2 real near-duplicates", every, near, True))
    rows.append(("AIME 2024 as Sky-T1 wrote them", every, aime, True))
    rng = random.Random(0)
    picked = [t for name in sets for t in rng.sample([p for p in sets[name] if len(p.split()) >= 30], 10)]
    rows.append(("reworded copies of eval problems", every, [reword(p, rng) for p in picked], True))
    return sets, rows


def flagged(name: str, indexed: list[tuple[str, str]], texts: list[str]) -> list[str]:
    """The texts ``name``'s index flags; with nothing indexed: each text against all the others of ``texts``
    (one index of them all, the text's own label excluded; its n-grams still count for the boilerplate filter)."""
    add, find = method(name)
    pairs = indexed or [("self", t) for t in texts]
    for i, (_, text) in enumerate(pairs):
        add(text, f"e{i}")
    if indexed:
        return [t for t in texts if find(t) is not None]
    return [t for i, t in enumerate(texts) if find(t, exclude=f"e{i}") is not None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder with aime24/ aime25/ math500/ real-traces/")
    parser.add_argument("--verbose", action="store_true", help="list the after-method's false positives")
    args = parser.parse_args()
    if not (args.data / "math500" / "test.jsonl").is_file():
        print(f"no data at {args.data}: pass --data")
        return 1
    from distill.stages.filter.decontaminate import MAX_DF, MIN_OVERLAP

    start = time.perf_counter()
    _, rows = queries(args.data)
    print(f"n = 8; after: boilerplate = n-gram in > {MAX_DF} eval problems, min overlap {MIN_OVERLAP:.0%} of the "
          "eval problem's informative n-grams, digit runs and [asy] left out\n")
    print(f"{'query set':<44}{'should':>7}{'n':>5}" + "".join(f"{m:>18}" for m in METHODS))
    totals = {m: [0, 0] for m in METHODS}   # false positives, true positives
    wrong: list[tuple[str, str]] = []
    for label, indexed, texts, should in rows:
        counts = []
        for m in METHODS:
            hits = flagged(m, indexed, texts)
            counts.append(len(hits))
            totals[m][1 if should else 0] += len(hits)
            if m == "after" and not should:
                wrong += [(label, t) for t in hits]
        print(f"{label:<44}{'flag' if should else 'not':>7}{len(texts):>5}" + "".join(f"{c:>18}" for c in counts))
    n_neg = sum(len(r[2]) for r in rows if not r[3])
    n_pos = sum(len(r[2]) for r in rows if r[3])
    print(f"\n{'false positives (of ' + str(n_neg) + ')':<56}" + "".join(f"{totals[m][0]:>18}" for m in METHODS))
    print(f"{'true positives (of ' + str(n_pos) + ')':<56}" + "".join(f"{totals[m][1]:>18}" for m in METHODS))
    print(f"\n({time.perf_counter() - start:.1f} s)")
    if args.verbose:
        for label, text in wrong:
            print(f"\n[{label}] {text[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
