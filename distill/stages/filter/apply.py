"""The filter pipeline below the stage: verdicts, token counts, row filters (in parallel), dedup, selection.

Order: every row goes through every enabled row filter (:data:`~distill.stages.filter.rules.ROW_FILTERS`),
so each failing filter is recorded. Then, when the stage has a second opinion on verdicts (the generative
judge), the rows that nothing but correctness drops are handed to it and their correctness is checked again:
a row that is contaminated, incomplete, unreadable or too long is never sent out. Rows that fail no filter are
deduplicated within their problem, then at most k per problem are selected. The first recorded failure of a
row is its drop reason.

Row filters run in worker processes (``forkserver``: safe beside the threads of tqdm or tokenizers) on
chunks of rows; each worker times its filters and the times are summed (CPU seconds per filter).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from distill.errors import DataError, DistillError
from distill.models import require_folder
from distill.stages.filter.dedup import duplicates
from distill.stages.filter.rules import FilterContext, check_row, enabled_row_filters
from distill.stages.filter.selection import selected
from distill.stages.filter.trace import Trace
from distill.verify.language import detect_language

if TYPE_CHECKING:
    from distill.verify import VerifySettings


@dataclass
class Outcome:
    """What the filters decided: failures per dropped row (first = drop reason), the kept rows, timings."""

    failures: dict[int, list[str]]
    kept: list[Trace]
    seconds: dict[str, float] = field(default_factory=dict)   # per filter
    row_filters: list[str] = field(default_factory=list)       # the row filters that ran, in order
    workers: int = 1

    def drop_reason(self, index: int) -> str | None:
        failures = self.failures.get(index)
        return failures[0] if failures else None


# ---------------------------------------------------------------- verdicts and token counts


def fill_verdicts(traces: Sequence[Trace], settings: VerifySettings, *, reverify: bool = False,
                  progress: bool = True) -> dict[str, Any]:
    """Verify (with :func:`distill.verify.verify_batch`) each trace with a gold and no verdict, or all with
    ``reverify``; sets ``trace.verdict``. Traces with code tests (``trace.tests``) are judged by running the
    answer's program instead (:func:`fill_code_verdicts`). Returns counts and the time taken."""
    from distill.verify import verify_batch
    from distill.verify.equivalence import check_gold

    start = time.perf_counter()
    code = fill_code_verdicts(traces, settings, reverify=reverify, progress=progress)
    todo = [t for t in traces if t.tests is None and t.gold is not None and (reverify or t.verdict is None)]
    checked: set[str] = set()
    for t in todo:
        if t.gold in checked:
            continue
        try:
            check_gold(t.gold, settings.mode)
        except ValueError as exc:
            raise DataError(f"{t.folder}: trace {t.id!r} sample {t.sample}: {exc}") from None
        checked.add(t.gold)  # type: ignore[arg-type]
    # Each problem's language decides how its numbers read (a decimal comma in German, thousands dots ...).
    languages = [detect_language(t.problem) if t.problem else None for t in todo]
    verdicts = verify_batch([t.completion for t in todo], [t.gold or "" for t in todo], settings,
                            prompt_has_think=[t.prompt_has_think for t in todo], languages=languages,
                            progress=progress) if todo else []
    for t, v in zip(todo, verdicts):
        t.verdict = v.status
    verified = len(todo) + code
    out: dict[str, Any] = {"verified": verified,
                           "from_traces": sum(1 for t in traces if t.verdict is not None) - verified}
    if code:
        out["code_verified"] = code
    out["seconds"] = time.perf_counter() - start
    return out


# Verdicts that do not come from a check of the program (the stage marks rows without a gold "no_gold"):
# a code trace carrying one of them is run anyway.
_UNCHECKED = (None, "no_gold", "unverified")


def fill_code_verdicts(traces: Sequence[Trace], settings: VerifySettings, *, reverify: bool = False,
                       progress: bool = True) -> int:
    """Run the program of each trace with code tests (the last fenced block of its answer, after ``</think>``;
    an unclosed reasoning has none) against its tests in :mod:`distill.verify.sandbox`; the verdict is
    ``correct`` or the failure kind (wrong_answer, error, timeout, memory, no_code ...). Traces whose verdict
    came from a program check already are kept as they are unless ``reverify``. Returns how many ran."""
    todo = [t for t in traces if t.tests is not None and (reverify or t.verdict in _UNCHECKED)]
    if not todo:
        return 0
    from distill.verify import extract_program, verify_code_batch

    programs = [extract_program(t.answer) if t.answer else None for t in todo]
    try:
        verdicts = verify_code_batch(programs, [t.tests for t in todo], workers=settings.workers or None,
                                     progress=progress, fail_fast=True)
    except TypeError as exc:   # malformed tests
        raise DataError(f"{todo[0].folder}: a trace's 'tests' cannot be read: {exc}") from None
    for t, v in zip(todo, verdicts, strict=True):
        t.verdict = v.status
    return len(todo)


def count_tokens(traces: Sequence[Trace], tokenizer: str, *, trust_remote_code: bool = False,
                 progress: bool = True, batch_size: int = 128) -> float:
    """Set ``num_tokens`` to the length of each assistant turn under ``tokenizer``; returns the seconds taken."""
    from transformers import AutoTokenizer

    require_folder(tokenizer, "tokenizer")
    try:
        tok = AutoTokenizer.from_pretrained(tokenizer, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DistillError(f"could not load the tokenizer {tokenizer!r}: {exc}. Pass a local model folder (or a "
                           "hub id reachable from here) to --tokenizer, or leave it out to use completion_tokens") \
            from None
    start = time.perf_counter()
    bar = _bar(len(traces), "tokens", progress)
    for i in range(0, len(traces), batch_size):
        batch = traces[i : i + batch_size]
        ids = tok([t.assistant_text for t in batch], add_special_tokens=False)["input_ids"]
        for t, seq in zip(batch, ids):
            t.num_tokens = len(seq)
        bar.update(len(batch))
    bar.close()
    return time.perf_counter() - start


# ---------------------------------------------------------------- row filters, in parallel

_WORKER: tuple[FilterContext, list[str]] | None = None


def _init_worker(ctx: FilterContext, names: list[str]) -> None:
    global _WORKER
    _WORKER = (ctx, names)


def _check_chunk(chunk: list[Trace]) -> tuple[list[list[str]], dict[str, float]]:
    assert _WORKER is not None, "worker not initialised"
    ctx, names = _WORKER
    seconds: dict[str, float] = {}
    return [check_row(t, ctx, names, seconds) for t in chunk], seconds


def run_row_filters(traces: Sequence[Trace], ctx: FilterContext, names: list[str], *, workers: int | None = None,
                    progress: bool = True) -> tuple[list[list[str]], dict[str, float], int]:
    """Every failing row filter of each trace (same order as ``traces``), CPU seconds per filter, workers used."""
    n_workers = (os.cpu_count() or 1) if workers is None else max(1, workers)
    chunk = max(16, min(256, len(traces) // (n_workers * 8) or 1))
    seconds: dict[str, float] = {name: 0.0 for name in names}
    bar = _bar(len(traces), "filter", progress)
    results: list[list[str]] = []
    if n_workers <= 1 or len(traces) < 4 * chunk:
        n_workers = 1
        for t in traces:
            results.append(check_row(t, ctx, names, seconds))
            bar.update(1)
    else:
        chunks = [list(traces[i : i + chunk]) for i in range(0, len(traces), chunk)]
        with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("forkserver"),
                                 initializer=_init_worker, initargs=(ctx, names)) as pool:
            for part, (failures, secs) in zip(chunks, pool.map(_check_chunk, chunks)):
                results.extend(failures)
                for name, s in secs.items():
                    seconds[name] = seconds.get(name, 0.0) + s
                bar.update(len(part))
    bar.close()
    return results, seconds, n_workers


def only_correctness_fails(failures: Sequence[str]) -> bool:
    """Whether a row's failures (``"filter:reason"``) are all the correctness filter's (or there are none), so a
    new verdict decides the row.

    >>> only_correctness_fails(["correctness:incorrect"]), only_correctness_fails([])
    (True, True)
    >>> only_correctness_fails(["correctness:incorrect", "readability:code_block"])
    False
    """
    return all(f.startswith("correctness:") for f in failures)


def filter_traces(traces: Sequence[Trace], ctx: FilterContext, *, workers: int | None = None,
                  progress: bool = True, settle: Callable[[list[Trace]], None] | None = None) -> Outcome:
    """Run the enabled row filters, then dedup and selection; see the module docstring for the order.

    ``settle`` (the generative judge) gets the rows whose fate only their verdict decides and may change their
    ``verdict``; their correctness is then checked again. Its time is not counted among the filters'."""
    cfg = ctx.cfg
    names = enabled_row_filters(cfg)
    per_row, seconds, used = run_row_filters(traces, ctx, names, workers=workers, progress=progress)
    if settle is not None:
        open_rows = [i for i, failures in enumerate(per_row) if only_correctness_fails(failures)]
        settle([traces[i] for i in open_rows])
        recheck = ["correctness"] if "correctness" in names else []
        for i in open_rows:
            per_row[i] = check_row(traces[i], ctx, recheck, seconds)
    failures = {t.index: f for t, f in zip(traces, per_row) if f}
    survivors = [t for t in traces if t.index not in failures]
    if cfg.dedup:
        start = time.perf_counter()
        for index, kind in duplicates(survivors).items():
            failures[index] = [f"dedup:{kind}"]
        seconds["dedup"] = time.perf_counter() - start
        survivors = [t for t in survivors if t.index not in failures]
    start = time.perf_counter()
    keep = selected(survivors, cfg.select, cfg.max_per_problem, seed=cfg.seed)
    for t in survivors:
        if t.index not in keep:
            failures[t.index] = [f"selection:over_{cfg.max_per_problem}_per_problem"]
    seconds["selection"] = time.perf_counter() - start
    kept = [t for t in survivors if t.index in keep]
    return Outcome(failures=failures, kept=kept, seconds=seconds, row_filters=names, workers=used)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="trace", mininterval=1.0)
