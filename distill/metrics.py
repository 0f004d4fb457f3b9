"""Evaluation metrics over n samples per problem: pass@k, mean pass@1 with its error, cons@k (majority vote).

The DeepSeek-R1 protocol: sample n completions per problem (temperature 0.6, top-p 0.95); pass@1 is the
mean correctness over all n samples and problems; cons@n is the correctness of the majority answer.
pass@k uses the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)``.

All values are fractions in [0, 1], not percentages. Nothing here decides correctness: that is
:mod:`distill.verify`'s job; these functions only count, and refuse to count what is missing.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

Equivalent = Callable[[str, str], bool]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``c`` correct out of ``n`` samples.

    Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``, which equals ``1 - C(n-c,k)/C(n,k)`` without huge
    binomials.

    Example:
        >>> pass_at_k(10, 3, 1), pass_at_k(4, 0, 4), pass_at_k(4, 1, 4)
        (0.3, 0.0, 1.0)
    """
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c must be between 0 and n={n}, got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and n={n}, got {k} (pass@k needs at least k samples)")
    if n - c < k:
        return 1.0
    if k == 1:
        return c / n  # the product below telescopes to this; exact so that pass@1 == mean correctness
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def _as_bools(values: Sequence[Any], where: str) -> list[bool]:
    out = []
    for j, v in enumerate(values):
        if isinstance(v, bool):
            out.append(v)
        elif isinstance(v, int) and v in (0, 1):
            out.append(bool(v))
        elif hasattr(v, "correct") and isinstance(v.correct, bool):  # a distill.verify.Verdict
            out.append(v.correct)
        else:
            raise ValueError(f"{where}, sample {j}: correctness must be a bool, got {v!r}")
    return out


def pass1_mean_stderr(per_problem_correct: Sequence[Sequence[bool]]) -> tuple[float, float]:
    """Mean pass@1 and its standard error across problems.

    Each problem's pass@1 is the mean of its samples; the result is the mean over problems, and the
    standard error is ``stdev(per-problem means) / sqrt(#problems)`` (NaN for a single problem).

    Example:
        >>> pass1_mean_stderr([[True, False], [True, True], [False, False], [True, False]])
        (0.5, 0.2041241452319315)
    """
    if not per_problem_correct:
        raise ValueError("no problems to score")
    means = []
    for i, samples in enumerate(per_problem_correct):
        flags = _as_bools(samples, f"problem {i}")
        if not flags:
            raise ValueError(f"problem {i} has no samples")
        means.append(sum(flags) / len(flags))
    m = len(means)
    mean = sum(means) / m
    if m < 2:
        return mean, float("nan")
    var = sum((x - mean) ** 2 for x in means) / (m - 1)
    return mean, math.sqrt(var / m)


def _exact(a: str, b: str) -> bool:
    return a.strip() == b.strip()


def group_answers(answers: Sequence[str | None], *, equivalent: Equivalent | None = None) -> list[list[int]]:
    """Indices of ``answers`` grouped by equivalence, groups in order of first appearance; ``None`` skipped.

    An answer joins the first group whose first member it is equivalent to (``equivalent`` defaults to
    exact text equality after stripping whitespace).

    Example:
        >>> group_answers(["1", None, "2", "1"])
        [[0, 3], [2]]
    """
    eq = equivalent or _exact
    groups: list[list[int]] = []
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        for group in groups:
            rep = answers[group[0]]
            assert rep is not None
            if eq(rep, answer):
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


def majority_vote(
    answers: Sequence[str | None], *, equivalent: Equivalent | None = None
) -> tuple[str | None, int | None, list[int]]:
    """The most common answer: ``(winner, index of its representative, group sizes)``.

    Answers are grouped with :func:`group_answers`. Missing answers (``None``) never form a group, so
    they never win; if every answer is missing the result is ``(None, None, [])``. Tie rule: among the
    largest groups, the one whose first member appears EARLIEST wins; its first member is the
    representative. Group sizes are listed in order of first appearance.

    Example:
        >>> majority_vote(["3", "5", None, "5", "3"])
        ('3', 0, [2, 2])
        >>> majority_vote([None, "x = 2", "2", "7"], equivalent=lambda a, b: a[-1] == b[-1])
        ('x = 2', 1, [2, 1])
    """
    groups = group_answers(answers, equivalent=equivalent)
    if not groups:
        return None, None, []
    best = max(range(len(groups)), key=lambda g: (len(groups[g]), -g))
    rep = groups[best][0]
    return answers[rep], rep, [len(g) for g in groups]


def cons_at_k(
    answers: Sequence[str | None], correct: Sequence[bool], *, equivalent: Equivalent | None = None
) -> bool:
    """Whether the majority-vote answer is correct (the correctness of its representative sample).

    ``False`` when no sample has an answer.

    Example:
        >>> cons_at_k(["3", "5", "5"], [False, True, True])
        True
    """
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers but {len(correct)} correctness flags")
    flags = _as_bools(correct, "cons_at_k")
    _, rep, _ = majority_vote(answers, equivalent=equivalent)
    return False if rep is None else flags[rep]


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_ci(
    values: Sequence[float], *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval for the mean of ``values`` (resampled with replacement).

    Deterministic for a given ``seed``. For pass@1, pass the per-problem means (problems are the unit).

    Example:
        >>> bootstrap_ci([1.0, 1.0, 1.0])
        (1.0, 1.0)
        >>> lo, hi = bootstrap_ci([0.0, 1.0] * 20); lo < 0.5 < hi
        True
    """
    if not values:
        raise ValueError("bootstrap_ci needs at least one value")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    data = [float(v) for v in values]
    m = len(data)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(data, k=m)) / m for _ in range(n_boot))
    return _quantile(means, alpha / 2), _quantile(means, 1 - alpha / 2)


def _default_ks(n: int) -> list[int]:
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    if ks[-1] != n:
        ks.append(n)
    return ks


def score_samples(
    per_problem: Sequence[dict[str, Any]],
    *,
    ks: Sequence[int] | None = None,
    n_expected: int | None = None,
    equivalent: Equivalent | None = None,
    allow_missing: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Score n samples per problem: pass@1 (+ stderr and bootstrap 95% CI), pass@k, cons@n.

    ``per_problem``: one dict per problem with ``id``, ``correct`` (list of bool, one per sample) and
    optionally ``answers`` (the extracted answers, ``None`` for none; needed for cons@n).

    Every problem must have exactly ``n_expected`` samples (default: the count of the first problem). A
    problem with a different count is a ValueError naming it: missing samples are never scored as wrong.
    With ``allow_missing=True`` each problem is scored over the samples it has (problems with none are
    left out), pass@k is reported only for k up to the smallest count, and the shortfalls are listed
    under ``"missing"``.

    Returns keys ``"pass@1"``, ``"pass@1_stderr"``, ``"pass@1_ci95"``, ``"pass@k"`` for each k in ``ks``
    (default 1, 2, 4, ... up to n, and n), ``"cons@{n}"`` (when answers are given), ``"n"``,
    ``"num_problems"``, ``"per_problem"`` and, with ``allow_missing``, ``"missing"``.

    Example:
        >>> r = score_samples([{"id": "a", "correct": [True, False], "answers": ["1", "2"]},
        ...                    {"id": "b", "correct": [True, True], "answers": ["7", "7"]}])
        >>> r["pass@1"], r["pass@2"], r["cons@2"], r["n"]
        (0.75, 1.0, 1.0, 2)
    """
    rows = _problem_rows(per_problem)
    n = n_expected if n_expected is not None else len(rows[0][1])
    if n < 1:
        raise ValueError(f"n_expected must be >= 1, got {n}")
    missing = [{"id": pid, "have": len(flags), "expected": n} for pid, flags, _ in rows if len(flags) != n]
    if missing and not allow_missing:
        shown = ", ".join(f"{m['id']!r} has {m['have']}" for m in missing[:10])
        more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
        raise ValueError(
            f"expected {n} samples per problem, but {shown}{more}. Finish generating them, or pass "
            "allow_missing=True to score over the samples that exist."
        )
    scored = [row for row in rows if row[1]]
    if not scored:
        raise ValueError("no problem has any samples")
    n_min = min(len(flags) for _, flags, _ in scored)
    if ks is None:
        ks = _default_ks(n_min if allow_missing else n)
    for k in ks:
        if not 1 <= k <= n_min:
            raise ValueError(f"cannot report pass@{k}: it needs k between 1 and the sample count {n_min}")

    with_answers = all(answers is not None for _, _, answers in scored)
    per_rows = [_per_problem_row(pid, flags, answers if with_answers else None, equivalent)
                for pid, flags, answers in scored]
    mean, stderr = pass1_mean_stderr([flags for _, flags, _ in scored])
    lo, hi = bootstrap_ci([r["pass@1"] for r in per_rows], n_boot=n_boot, seed=seed)
    result: dict[str, Any] = {"pass@1": mean, "pass@1_stderr": stderr, "pass@1_ci95": [lo, hi]}
    for k in ks:
        values = [pass_at_k(len(flags), sum(flags), k) for _, flags, _ in scored]
        result[f"pass@{k}"] = sum(values) / len(values)
    if with_answers:
        result[f"cons@{n}"] = sum(r["cons"] for r in per_rows) / len(per_rows)
    result["n"] = n
    result["num_problems"] = len(per_rows)
    result["per_problem"] = per_rows
    if allow_missing:
        result["missing"] = missing
    return result


_Row = tuple[Any, list[bool], Sequence[str | None] | None]  # (id, correctness flags, answers)


def _problem_rows(per_problem: Sequence[dict[str, Any]]) -> list[_Row]:
    """Check ``score_samples``' input: unique ids, bool flags, as many answers as flags."""
    if not per_problem:
        raise ValueError("no problems to score")
    seen: set[Any] = set()
    rows: list[_Row] = []
    for i, problem in enumerate(per_problem):
        if "correct" not in problem:
            raise ValueError(f"problem #{i} has no 'correct' list (keys: {sorted(problem)})")
        pid = problem.get("id", i)
        if pid in seen:
            raise ValueError(f"problem id {pid!r} appears twice")
        seen.add(pid)
        flags = _as_bools(problem["correct"], f"problem {pid!r}")
        answers = problem.get("answers")
        if answers is not None and len(answers) != len(flags):
            raise ValueError(f"problem {pid!r}: {len(answers)} answers but {len(flags)} correctness flags")
        rows.append((pid, flags, answers))
    return rows


def _per_problem_row(pid: Any, flags: list[bool], answers: Sequence[str | None] | None,
                     equivalent: Equivalent | None) -> dict[str, Any]:
    """One problem's row of ``per_problem``: its counts, and its majority vote when answers are given."""
    c = sum(flags)
    row: dict[str, Any] = {"id": pid, "n": len(flags), "num_correct": c, "pass@1": c / len(flags)}
    if answers is not None:
        winner, rep, sizes = majority_vote(answers, equivalent=equivalent)
        row["majority_answer"] = winner
        row["majority_count"] = max(sizes) if sizes else 0
        row["cons"] = False if rep is None else flags[rep]
    return row
