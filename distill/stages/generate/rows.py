"""Completions into trace rows (``distill.data.traces.trace_row``): the split at ``</think>``, the extracted
answer, the verdict against the gold; and the tally of what a run wrote.

A code problem's rows carry its tests (``tests``); their verdict comes from running the program, the last
fenced code block of the answer after ``</think>`` (as the ``code`` reward and ``distill filter`` find it), in
:mod:`distill.verify.sandbox`, and ``final_answer`` holds that program."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from distill.data.traces import TraceRow, trace_row
from distill.stages.generate.config import GenerateConfig
from distill.stages.generate.plan import Job, sampling_of
from distill.verify import extract_answer, extract_program, split_think, verify_batch, verify_code_batch

# Failed requests listed by problem in run.json (all of them are counted).
FAILURES_LISTED = 20
# Problems whose prompt can never fit, listed by id in run.json.
UNFIT_LISTED = 1000


@dataclass
class Tally:
    """What this run wrote and what it could not: the closing summary and run.json counts.

    ``failed`` counts every request that produced nothing (``unfit`` of them can never fit the context under
    these settings); ``answered`` the requests that produced completions; ``lost`` the requests the engine
    never answered at all.
    """

    rows: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    problems: int = 0
    answered: int = 0
    failed: int = 0
    unfit: int = 0
    lost: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    unfit_problems: list[str] = field(default_factory=list)
    finish: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def add(self, row: Mapping[str, Any]) -> None:
        self.rows += 1
        self.prompt_tokens += _count(row.get("prompt_tokens"))
        self.completion_tokens += _count(row.get("completion_tokens"))
        self.finish[str(row.get("finish_reason"))] += 1
        if row.get("verdict") is not None:
            self.verdicts[row["verdict"]] += 1

    def fail(self, problem_id: str, sample: int, reason: str, *, permanent: bool = False) -> None:
        """Count a request that produced nothing (``permanent``: it can never fit under these settings)."""
        self.failed += 1
        if permanent:
            self.unfit += 1
            if len(self.unfit_problems) < UNFIT_LISTED and problem_id not in self.unfit_problems:
                self.unfit_problems.append(problem_id)
        if len(self.failures) < FAILURES_LISTED:
            self.failures.append({"id": problem_id, "sample": sample, "permanent": permanent,
                                  "reason": " ".join(reason.split())})

    @property
    def retryable(self) -> int:
        """Failed requests a rerun may fix (every failure but the prompts that can never fit)."""
        return self.failed - self.unfit

    def tokens_per_s(self) -> float:
        return self.completion_tokens / max(1e-9, time.monotonic() - self.started)

    def counts(self) -> dict[str, Any]:
        verified = sum(self.verdicts.values())
        return {
            "completions_written": self.rows,
            "problems_finished": self.problems,
            "requests_answered": self.answered,
            "failed_requests": self.failed,
            "unfit_requests": self.unfit,
            "lost_requests": self.lost,
            "failures": self.failures,
            "unfit_problems": self.unfit_problems,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "completion_tokens_per_s": round(self.tokens_per_s(), 1),
            "mean_completion_tokens": round(self.completion_tokens / self.rows, 1) if self.rows else None,
            "finish_reasons": dict(self.finish.most_common()),
            "verdicts": dict(self.verdicts.most_common()),
            "verified": verified,
            "pass_rate": round(self.verdicts["correct"] / verified, 4) if verified else None,
        }


def _count(value: Any) -> int:
    """A token count for the totals: ints only (a server's malformed usage is not added)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def build_rows(cfg: GenerateConfig, engine_name: str, job: Job, completions: list[Any]) -> list[TraceRow]:
    """One row per completion, every TRACE_FIELDS key present; verdicts are filled in by ``verify_rows``."""

    sampling = {**sampling_of(cfg).to_dict(), "num_samples": cfg.num_samples}
    gold = job.problem.answer if job.problem.answer and job.problem.answer.strip() else None
    tests = job.problem.tests
    rows = []
    for k, c in enumerate(completions):
        parts = split_think(c.text, prompt_has_think=job.prompt_has_think)
        reasoning = c.reasoning if c.reasoning is not None else parts.reasoning
        answer_text = parts.answer if parts.finished else None
        if tests is not None:
            final_answer = extract_program(answer_text) if answer_text else None
        else:
            final_answer = extract_answer(answer_text, mode=cfg.verify_mode) if answer_text else None
        rows.append(trace_row(
            id=job.problem.id,
            sample=job.start + k,
            problem=job.problem.problem,
            prompt=job.prompt,
            prompt_has_think=job.prompt_has_think,
            completion=c.text,
            reasoning=reasoning,
            answer_text=answer_text,
            final_answer=final_answer,
            verdict=None,
            gold=gold,
            tests=tests,
            prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens,
            finish_reason=c.finish_reason,
            teacher=cfg.teacher,
            engine=engine_name,
            sampling=sampling,
            seed=c.seed,
        ))
    return rows


def verify_rows(cfg: GenerateConfig, rows: list[TraceRow]) -> None:
    """Fill ``verdict`` (and ``final_answer`` from the verdict) for rows with a gold answer, in place; rows with
    code tests get the status of their program's sandboxed run instead."""

    code = [r for r in rows if r["tests"] is not None]
    if code:
        workers = cfg.verify_settings().workers or 1
        code_verdicts = verify_code_batch([r["final_answer"] for r in code], [r["tests"] for r in code],
                                          limits=cfg.code_limits(), workers=workers, fail_fast=True)
        for row, code_verdict in zip(code, code_verdicts, strict=True):
            row["verdict"] = code_verdict.status
    for has_think in (False, True):
        # (typed Any: the golds of this group are all str, which mypy cannot see through the filter)
        group: list[Any] = [r for r in rows if r["tests"] is None and r["gold"] is not None
                            and r["prompt_has_think"] is has_think]
        if not group:
            continue
        verdicts = verify_batch([r["completion"] for r in group], [r["gold"] for r in group],
                                cfg.verify_settings(), prompt_has_think=has_think)
        for row, verdict in zip(group, verdicts):
            row["verdict"] = verdict.status
            if verdict.extracted is not None:
                row["final_answer"] = verdict.extracted


def finalize(rows: list[TraceRow]) -> list[TraceRow]:
    """Rows as written: exactly TRACE_FIELDS, in order (id and sample first: the resume scan relies on it)."""
    return [trace_row(**r) for r in rows]
