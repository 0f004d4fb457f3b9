"""The generative judge in ``distill filter``: rows whose verdict the rules cannot settle are asked about.

Opt-in (``--judge-base-url URL --judge-model NAME``, key from ``--judge-api-key-env VAR``). After the
row filters (:func:`distill.stages.filter.apply.filter_traces`), every math row with a gold that nothing but
correctness drops and whose rule verdict falls in ``--judge-when`` (:func:`distill.verify.judge.judge_reason`;
by default uncomparable and different-looking incorrect answers, since a row without a boxed answer is dropped
by completeness anyway) is sent to the judge with its problem, gold and final answer; a row that is
contaminated, incomplete, unreadable or too long is never sent, since no verdict would keep it. Yes makes the
row ``correct``, No ``incorrect``; the row then records ``verdict_source: judge`` and the judge's reply. Unclear replies and failed calls leave the rule verdict.
Every judged row is listed in ``judged.jsonl`` (kept or not, with its drop reason), dropped ones also in
``dropped.jsonl``; the SFT rows themselves keep their contract (:mod:`distill.data.sft_rows`).

The answers are cached in ``judge_cache.jsonl`` inside ``--out`` (or ``--judge-cache``): it is kept when the
folder is replaced at the end, and an interrupted run leaves ``--out`` holding only it, so a rerun (with or
without ``--overwrite``) asks nothing twice.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill import outdir
from distill.stages.filter.config import FilterConfig
from distill.stages.filter.trace import Trace
from distill.verify.judge import Question, judge_reason

if TYPE_CHECKING:
    from distill.stages.filter.apply import Outcome
    from distill.verify.judge_client import Judge

JUDGE_CACHE_FILE = "judge_cache.jsonl"
JUDGED_FILE = "judged.jsonl"


def leftovers_only(out: Path) -> bool:
    """Whether ``out`` holds nothing but a judge cache an interrupted run left (and the folder's marker)."""
    return out.is_dir() and all(p.name in (outdir.MARKER, JUDGE_CACHE_FILE) for p in out.iterdir())


def open_judge(cfg: FilterConfig, out: Path) -> Judge | None:
    """The judge ``cfg`` asks for (None when off); its key is checked now, before any work."""
    try:
        settings = cfg.judge_settings(str(out / JUDGE_CACHE_FILE))
    except ValueError as exc:
        from distill.errors import ConfigError

        raise ConfigError(str(exc)) from None
    if settings is None:
        return None
    from distill.verify.judge_client import Judge

    judge = Judge(settings)
    if judge.cache_path is not None and judge.cache_path.parent == out and not out.exists():
        out.mkdir(parents=True)
        outdir.mark(out, "filter")       # an interrupted run's cache stays deletable by --overwrite
    return judge


def _question(t: Trace, when: Sequence[str], mode: str) -> Question | None:
    """What the judge is asked about row ``t``, or None when the rules settled it (or it has no answer text)."""
    from distill.verify import extract_answer

    if t.tests is not None or t.gold is None or t.verdict is None or t.reasoning is None:
        return None
    extracted = extract_answer(t.answer, mode=mode)
    reason = judge_reason(t.verdict, extracted, t.gold, when)
    if reason is None:
        return None
    shown = extracted if extracted is not None else t.answer
    if not shown.strip():
        return None
    return Question(t.problem or t.user or "", t.gold, shown, reason, t.verdict)


def judge_traces(traces: Sequence[Trace], cfg: FilterConfig, judge: Judge) -> dict[str, Any]:
    """Ask the judge about every row the rules cannot settle; set their verdicts. Returns the stats block."""
    asked = [(t, q) for t in traces if (q := _question(t, judge.settings.when, cfg.verify_mode)) is not None]
    judgements = judge.ask([q for _, q in asked])
    for (t, _), j in zip(asked, judgements, strict=True):
        t.judge = j.to_dict()
        if j.decided:
            t.verdict = "correct" if j.decision == "yes" else "incorrect"
            t.verdict_source = "judge"
    return judge.describe()


def judge_columns(t: Trace) -> dict[str, Any]:
    """The judge's part of a row of ``dropped.jsonl`` (nothing for rows it was not asked about)."""
    if t.judge is None:
        return {}
    return {"verdict": t.verdict, "verdict_source": t.verdict_source, "judge": t.judge}


def write_judged(folder: Path, traces: Sequence[Trace], outcome: Outcome) -> int:
    """``judged.jsonl``: every row the judge was asked about, kept or not; returns how many."""
    rows = [{"id": t.id, "sample": t.sample, "teacher": t.teacher, "folder": t.folder,
             "kept": outcome.drop_reason(t.index) is None, "reason": outcome.drop_reason(t.index),
             **judge_columns(t)} for t in traces if t.judge is not None]
    with (folder / JUDGED_FILE).open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return len(rows)


def keep_cache(judge: Judge | None, out: Path, tmp: Path) -> None:
    """Copy a cache that lives in ``out`` into the folder that replaces it."""
    if judge is None or judge.cache_path is None or judge.cache_path.parent != out:
        return
    judge.close()
    if judge.cache_path.is_file():
        shutil.copy2(judge.cache_path, tmp / JUDGE_CACHE_FILE)
