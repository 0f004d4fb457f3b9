"""Verify many completions at once: :func:`verify_batch`, the entry point of every stage that verifies.

Answers are extracted here; what needs no math-verify (no answer, unfinished, AIME integers, identical
text) is decided here too. The rest is deduplicated on ``(pred, gold)`` and judged by the worker processes
of :mod:`distill.verify.pool` (or in this process, serially, with ``workers`` 0 or 1).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from distill.verify.equivalence import (
    Verdict,
    answer_from_completion,
    check_gold,
    decide_without_sympy,
    judge_inprocess,
    judging_forms,
)
from distill.verify.pool import VerifyPool, shared_pool
from distill.verify.settings import VerifySettings
from distill.verify.worker_handle import JobResult

Jobs = dict[tuple[str, str], list[int]]  # (pred, gold) in judging form -> the items that need that check


def verify_batch(
    completions: Sequence[str],
    golds: Sequence[str],
    settings: VerifySettings = VerifySettings(),
    *,
    prompt_has_think: bool | Sequence[bool] = False,
    languages: str | Sequence[str | None] | None = None,
    progress: bool = False,
    pool: VerifyPool | None = None,
) -> list[Verdict]:
    """Verify ``completions[i]`` against ``golds[i]`` for every i; one :class:`Verdict` each, in order.

    ``settings`` say how (mode, think, fallback, timeout, workers: see :class:`VerifySettings`).
    ``prompt_has_think``: whether the prompt ended with ``<think>`` (prefill or the model's template), one
    bool for all completions or one per completion. ``languages``: each problem's language (``"de"``,
    ``"en"``, ``None`` when unknown), one for all or one per completion: it decides how numbers such as
    ``8.000`` or ``16,00`` read (:func:`~distill.verify.normalize.localize_number`); without it only
    unambiguous forms are normalised. The checks that need math-verify are judged by worker
    processes (``settings.workers=None``: one per CPU; ``0`` or ``1``: in this process, serially -- then
    the timeout holds only on the main thread). In a pool, an item that takes longer than
    ``settings.timeout`` seconds becomes status "timeout" (its worker stops it; one stuck past a short
    grace is killed and replaced), and the batch goes on. Pass ``pool`` to use your own
    :class:`~distill.verify.pool.VerifyPool` instead of the shared one.

    Example:
        >>> verdicts = verify_batch(["\\\\boxed{025}", "no box"], ["25", "3"], VerifySettings(mode="aime", workers=0))
        >>> [v.status for v in verdicts]
        ['correct', 'no_answer']
        >>> verify_batch(["done</think> \\\\boxed{1}", "\\\\boxed{1}"], ["1", "1"], prompt_has_think=[True, True])[1].status
        'unfinished'
        >>> [v.status for v in verify_batch(["\\\\boxed{8.000}"] * 2, ["8000"] * 2, languages=["de", "en"])]
        ['correct', 'incorrect']
    """
    if len(completions) != len(golds):
        raise ValueError(f"got {len(completions)} completions but {len(golds)} gold answers")
    think_flags = _per_item(prompt_has_think, len(completions))
    langs = _languages(languages, len(completions))
    gold_keys = []
    for i, gold in enumerate(golds):
        try:
            gold_keys.append(check_gold(gold, settings.mode))
        except ValueError as exc:
            raise ValueError(f"item {i}: {exc}") from None

    verdicts: list[Verdict | None] = [None] * len(completions)
    answers: list[str | None] = [None] * len(completions)
    todo: Jobs = {}
    for i, (completion, gold) in enumerate(zip(completions, golds, strict=True)):
        extracted, early, detail = answer_from_completion(
            completion, mode=settings.mode, think=settings.think, prompt_has_think=think_flags[i],
            fallback=settings.fallback, reasoning_format=settings.reasoning_format,
            reasoning_delimiters=settings.reasoning_delimiters,
        )
        if early is not None:
            verdicts[i] = Verdict(early, None, gold, detail)
            continue
        decided = decide_without_sympy(extracted, gold, gold_keys[i], settings.mode, language=langs[i])
        if decided is not None:
            verdicts[i] = decided
            continue
        assert extracted is not None
        answers[i] = extracted
        todo.setdefault(judging_forms(extracted, gold, langs[i]), []).append(i)

    _judge(todo, verdicts, answers, golds, settings, progress=progress, pool=pool)
    assert all(v is not None for v in verdicts)
    return [v for v in verdicts if v is not None]


def _per_item(prompt_has_think: bool | Sequence[bool], n: int) -> list[bool]:
    """``prompt_has_think`` as one flag per completion."""
    if isinstance(prompt_has_think, str) or not isinstance(prompt_has_think, Sequence):
        return [bool(prompt_has_think)] * n
    if len(prompt_has_think) != n:
        raise ValueError(f"got {n} completions but {len(prompt_has_think)} prompt_has_think flags")
    return [bool(flag) for flag in prompt_has_think]


def _languages(languages: str | Sequence[str | None] | None, n: int) -> list[str | None]:
    """``languages`` as one language (or ``None``) per completion."""
    if languages is None or isinstance(languages, str):
        return [languages] * n
    if len(languages) != n:
        raise ValueError(f"got {n} completions but {len(languages)} languages")
    return list(languages)


def _judge(todo: Jobs, verdicts: list[Verdict | None], answers: Sequence[str | None], golds: Sequence[str],
           settings: VerifySettings, *, progress: bool, pool: VerifyPool | None) -> None:
    """Fill ``verdicts`` for every item in ``todo`` with math-verify's judgement (each check once); the
    verdicts keep each item's answer and gold as written."""
    jobs = list(todo)
    n_workers = (os.cpu_count() or 1) if settings.workers is None else settings.workers
    bar = _progress_bar(len(jobs)) if progress and jobs else None

    def record(j: int, result: JobResult) -> None:
        for i in todo[jobs[j]]:
            verdicts[i] = Verdict(result.status, answers[i], golds[i], result.detail, result.seconds)
        if bar is not None:
            bar.update(1)

    try:
        if pool is None and n_workers <= 1:
            for j, (pred, gold) in enumerate(jobs):
                status, detail, seconds = judge_inprocess(pred, gold, settings.timeout)
                record(j, JobResult(status, detail, seconds))
        elif jobs:
            runner = pool if pool is not None else shared_pool(n_workers)
            runner.run(jobs, timeout=settings.timeout, on_result=record)
    finally:
        if bar is not None:
            bar.close()


class _StderrBar:
    def __init__(self, total: int) -> None:
        self.total, self.n, self.last = total, 0, 0.0

    def update(self, k: int) -> None:
        self.n += k
        now = time.monotonic()
        if now - self.last > 1.0 or self.n == self.total:
            self.last = now
            print(f"\rverify: {self.n}/{self.total}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr)


def _progress_bar(total: int) -> Any:
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc="verify", unit="answer")
    except ImportError:
        return _StderrBar(total)
