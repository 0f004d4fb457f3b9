"""Score n completions per problem: verdicts from :mod:`distill.verify`, numbers from :mod:`distill.metrics`.

This is the only scoring code of ``distill eval``: the lm-eval hooks (per problem, inside the harness) and
the re-scoring of completion files and lm-eval samples (the authoritative ``results.json``) both call it.
lm-eval's own string matching is never used.

Sample counts are explicit: a problem with more than ``n`` completions is scored on its first ``n`` (the
surplus is counted as ``samples_dropped``); a problem with fewer is scored on what it has and listed under
``missing`` with ``complete: false`` -- never padded with wrong answers, never silently averaged in.

>>> problems = [ProblemCompletions("a", "25", [r"\\boxed{025}", r"\\boxed{7}"])]
>>> scored = score_problems(problems, verify_problems(problems, VerifySettings(mode="aime", workers=0)), n=2,
...                         mode="aime")
>>> scored.results["pass@1"], scored.results["cons@2"], scored.results["pass@2"]
(0.5, 1.0, 1.0)
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from distill.metrics import score_samples
from distill.verify import Verdict, VerifySettings, answers_equivalent, verify_batch
from distill.verify.judge import Judgement, apply_judgement, questions_for

if TYPE_CHECKING:
    from distill.verify.judge_client import Judge


@dataclass
class ProblemCompletions:
    """One problem's gold answer and its completions, in sample order."""

    id: str
    gold: str
    completions: list[str] = field(default_factory=list)


@dataclass
class Scored:
    results: dict[str, Any]           # results.json
    problems: list[dict[str, Any]]    # problems.jsonl: one row per problem
    samples: list[dict[str, Any]]     # samples.jsonl: one row per completion


def verify_problems(problems: Sequence[ProblemCompletions], settings: VerifySettings, *,
                    prompt_has_think: bool = False, progress: bool = False) -> list[list[Verdict]]:
    """One verdict per completion, grouped by problem (one process pool for the whole set).

    ``prompt_has_think``: the prompts ended with ``<think>`` (prefill or the model's template)."""
    completions: list[str] = []
    golds: list[str] = []
    for p in problems:
        completions.extend(p.completions)
        golds.extend([p.gold] * len(p.completions))
    flat = verify_batch(completions, golds, settings, prompt_has_think=prompt_has_think,
                        progress=progress) if completions else []
    out, start = [], 0
    for p in problems:
        out.append(flat[start:start + len(p.completions)])
        start += len(p.completions)
    return out


def judge_problems(problems: Sequence[ProblemCompletions], verdicts: Sequence[Sequence[Verdict]],
                   texts: Mapping[str, str], settings: VerifySettings, judge: Judge, *,
                   prompt_has_think: bool = False) -> tuple[list[list[Verdict]], list[list[Judgement | None]]]:
    """The verdicts after the generative judge, and its judgement of each completion (None where not asked).

    Asked are the verdicts the rules cannot settle (``judge.settings.when``); it sees the problem (``texts``, by
    id; empty when unknown), the gold and the final answer."""
    flat = [v for pv in verdicts for v in pv]
    completions = [c for p in problems for c in p.completions]
    problem_texts = [texts.get(p.id, "") for p in problems for _ in p.completions]
    if len(flat) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(flat)} verdicts")
    asked = questions_for(flat, completions, problem_texts, settings, judge.settings.when,
                          prompt_has_think=prompt_has_think)
    found: list[Judgement | None] = [None] * len(flat)
    for (i, _), j in zip(asked, judge.ask([q for _, q in asked]), strict=True):
        found[i] = j
        flat[i] = apply_judgement(flat[i], j)
    out_v, out_j, start = [], [], 0
    for p in problems:
        out_v.append(flat[start:start + len(p.completions)])
        out_j.append(found[start:start + len(p.completions)])
        start += len(p.completions)
    return out_v, out_j


def answer_equivalence(mode: str, timeout: float = 5.0) -> Callable[[str, str], bool]:
    """Majority-vote grouping: same text is the same answer; otherwise the truth layer decides (memoised)."""
    cache: dict[tuple[str, str], bool] = {}

    def equivalent(a: str, b: str) -> bool:
        if a.strip() == b.strip():
            return True
        key = (a, b) if a <= b else (b, a)
        if key not in cache:
            cache[key] = answers_equivalent(a, b, mode=mode, timeout=timeout)
        return cache[key]

    return equivalent


def score_problems(problems: Sequence[ProblemCompletions], verdicts: Sequence[Sequence[Verdict]], *, n: int,
                   mode: str, timeout: float = 5.0,
                   judgements: Sequence[Sequence[Judgement | None]] | None = None) -> Scored:
    """pass@1 (mean over n, with stderr and a bootstrap CI), cons@n, pass@k and per-problem rows.

    With ``judgements`` (from :func:`judge_problems`) each sample row says where its verdict came from
    (``verdict_source``: rules or judge) and, where the judge was asked, what it replied (``judge``)."""
    scored = _score(problems, verdicts, n=n, verify_mode=mode, gold_of=lambda p: p.gold, answers=True,
                    equivalent=answer_equivalence(mode, timeout),
                    sample_row=lambda v: {"extracted": v.extracted, "correct": v.correct, "status": v.status})
    if judgements is not None:
        by_sample = {(p.id, k): j for p, pj in zip(problems, judgements, strict=True) for k, j in enumerate(pj)
                     if j is not None}
        sources: Counter[str] = Counter()
        for row in scored.samples:
            j = by_sample.get((row["id"], row["sample"]))
            row["verdict_source"] = "judge" if j is not None and j.decided else "rules"
            sources[row["verdict_source"]] += 1
            if j is not None:
                row["judge"] = j.to_dict()
        scored.results["verdict_sources"] = dict(sorted(sources.items()))
    return scored


def _score(problems: Sequence[Any], verdicts: Sequence[Sequence[Any]], *, n: int, verify_mode: str,
           gold_of: Any, sample_row: Any, answers: bool, equivalent: Any = None) -> Scored:
    """The scoring both kinds of problem share: the first n verdicts of each problem -> metrics and rows."""
    if len(problems) != len(verdicts):
        raise ValueError(f"{len(problems)} problems but {len(verdicts)} verdict lists")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    per_problem, sample_rows, dropped = [], [], 0
    statuses: Counter[str] = Counter()
    by_id: dict[str, dict[str, Any]] = {}
    for problem, pv in zip(problems, verdicts, strict=True):
        if len(pv) != len(problem.completions):
            raise ValueError(f"problem {problem.id!r}: {len(problem.completions)} completions but {len(pv)} verdicts")
        dropped += max(0, len(pv) - n)
        kept = list(pv[:n])
        per_problem.append({"id": problem.id, "correct": [v.correct for v in kept],
                            **({"answers": [v.extracted for v in kept]} if answers else {})})
        counts = Counter(v.status for v in kept)
        statuses.update(counts)
        by_id[problem.id] = {"gold": gold_of(problem), "statuses": dict(sorted(counts.items()))}
        sample_rows += [{"id": problem.id, "sample": j, **sample_row(v)} for j, v in enumerate(kept)]
    if not any(len(row["correct"]) for row in per_problem):
        raise ValueError(f"no completions to score ({len(problems)} problems, all without completions)")
    scored = score_samples(per_problem, n_expected=n, allow_missing=True,
                           **({"equivalent": equivalent} if equivalent is not None else {}))
    missing = scored.pop("missing", [])
    rows = [{"id": row["id"], "gold": by_id[row["id"]]["gold"], **{k: v for k, v in row.items() if k != "id"},
             "statuses": by_id[row["id"]]["statuses"]} for row in scored.pop("per_problem")]
    have = [len(p["correct"]) for p in per_problem]
    results = {**scored, "complete": not missing, "missing": missing, "samples_scored": len(sample_rows),
               "samples_dropped": dropped, "samples_per_problem": {"min": min(have), "max": max(have)},
               "status_counts": dict(sorted(statuses.items()))}
    if not answers:
        results["failure_kinds"] = dict(sorted((k, v) for k, v in statuses.items() if k != "correct"))
    results["verify_mode"] = verify_mode
    return Scored(results=results, problems=rows, samples=sample_rows)


def problem_metrics(completions: Sequence[str], gold: str, settings: VerifySettings, *,
                    prompt_has_think: bool = False) -> dict[str, float]:
    """lm-eval's per-document metrics for one problem: pass@1, cons@n and pass@k (k = 1, 2, 4, ..., n).

    The harness averages them over problems, which gives the same pass@1 / cons@n / pass@k as
    :func:`score_problems` on the whole set.
    """
    problem = ProblemCompletions("doc", gold, [c if isinstance(c, str) else "" for c in completions])
    verdicts = verify_problems([problem], settings, prompt_has_think=prompt_has_think)
    scored = score_problems([problem], verdicts, n=len(problem.completions), mode=settings.mode,
                            timeout=settings.timeout)
    return {k: float(v) for k, v in scored.results.items()
            if (k.startswith("pass@") or k.startswith("cons@")) and not isinstance(v, list) and "_" not in k}


# Each program a model wrote runs once per process: under ``--model`` the lm-eval hook scores every problem as
# it is sampled, then the stage scores all samples again for results.json, and that second pass (like a repeated
# identical program) reads the verdict already found. Keyed by program, tests and limits; a sandbox that failed
# to start is not remembered.
_CODE_VERDICTS: dict[str, Any] = {}
_CODE_VERDICTS_MAX = 200_000


def _code_key(program: str | None, tests: Any, limits: Any) -> str:
    blob = json.dumps([program, tests, repr(limits)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def verify_code_problems(problems: Sequence[Any], *, limits: Any = None, workers: int | None = None,
                         prompt_has_think: bool = False, progress: bool = False) -> list[list[Any]]:
    """One :class:`~distill.verify.CodeVerdict` per completion of each
    :class:`~distill.stages.evaluate.completions.CodeProblem`, every distinct program run in the sandbox once
    per process (see ``_CODE_VERDICTS``)."""
    from distill.verify import Limits, program_of, verify_code_batch

    limits = limits or Limits()
    programs, tests = [], []
    for p in problems:
        for c in p.completions:
            programs.append(program_of(c, p.prompt, prompt_has_think=prompt_has_think))
            tests.append(p.tests)
    keys = [_code_key(program, t, limits) for program, t in zip(programs, tests)]
    todo: dict[str, int] = {}                          # each program not seen yet, at its first place
    for i, key in enumerate(keys):
        if key not in _CODE_VERDICTS:
            todo.setdefault(key, i)
    found: dict[str, Any] = {}
    if todo:
        ran = verify_code_batch([programs[i] for i in todo.values()], [tests[i] for i in todo.values()],
                                limits=limits, workers=workers, progress=progress)
        found = dict(zip(todo, ran, strict=True))
        if len(_CODE_VERDICTS) + len(found) > _CODE_VERDICTS_MAX:
            _CODE_VERDICTS.clear()
        _CODE_VERDICTS.update({k: v for k, v in found.items() if v.status != "sandbox_error"})
    flat = [found[k] if k in found else _CODE_VERDICTS[k] for k in keys]
    out, start = [], 0
    for p in problems:
        out.append(flat[start:start + len(p.completions)])
        start += len(p.completions)
    return out


def _tests_label(tests: dict[str, Any]) -> str:
    if "entry_point" in tests:
        return f"check({tests['entry_point']})"
    return "stdin/stdout tests"


def score_code_problems(problems: Sequence[Any], verdicts: Sequence[Sequence[Any]], *, n: int) -> Scored:
    """pass@1 (mean over n, stderr, bootstrap CI) and pass@k for code; no cons@n (programs have no answer to
    vote on). ``failure_kinds`` counts the verdicts that were not correct by kind (wrong_answer, error,
    timeout, memory, no_code ...)."""
    return _score(problems, verdicts, n=n, verify_mode="code", gold_of=lambda p: _tests_label(p.tests),
                  answers=False,
                  sample_row=lambda v: {"correct": v.correct, "status": v.status, "tests_passed": v.passed,
                                        "tests_total": v.total, "detail": v.detail})
