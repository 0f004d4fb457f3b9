"""The generation loop: stream a plan's requests through an engine, verify, and append rows to the shard file
``chunk_size`` finished requests at a time; SIGTERM and Ctrl-C first save every finished completion.

How a run ends (run.json ``status``, exit code):

- ``complete`` (exit 0): every request produced its completions, except prompts that can never fit the
  model's context with ``--max-tokens`` (an engine's ``RequestError(permanent=True)``): those are counted,
  listed in run.json (``counts.unfit_problems``) and in the summary, since no rerun with these settings can
  produce them. A rerun checks them again (cheaply: they are refused before any generation) and still ends
  ``complete``, so a resume loop does not spin on them.
- ``partial`` (exit 0): some requests failed for a reason a rerun may fix (a 400, an unusable answer) or were
  never answered by the engine; they are counted and listed, and a rerun retries them.
- ``failed`` (exit 2, one line): this run produced no completion while some request failed for a reason a
  rerun may fix or was never answered, or while the shard holds no completion at all: nothing usable came of
  it, and it must not pass for done.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.data.jsonl import ShardWriter
from distill.data.problems import is_local
from distill.data.traces import TraceRow
from distill.engines import BaseEngine, EngineError, RequestError
from distill.errors import DistillError
from distill.runinfo import RunRecord, scrub
from distill.stages.generate.plan import Plan, sampling_of
from distill.stages.generate.rows import Tally, build_rows, finalize, verify_rows

log = logging.getLogger(__name__)

RUN_RECORD_EVERY_S = 30.0
# Requests an engine refuses (a 400, an unusable answer) are skipped and retried by a rerun; this many in a
# row without a success means something is wrong with every request: stop. Prompts that can never fit the
# context are about the prompt, not the run: they neither count nor break a row.
MAX_FAILURES_IN_A_ROW = 20


def new_record(plan: Plan) -> RunRecord:
    cfg = plan.cfg
    inputs: dict[str, str | Path] = {}
    if is_local(cfg.dataset):
        inputs["dataset"] = cfg.dataset
    if Path(cfg.teacher).is_dir():
        inputs["teacher"] = cfg.teacher
    record = RunRecord("generate", cfg, inputs=inputs)
    record.extra.update(engine=plan.engine_name, shard=plan.shard_path.name)
    return record


def base_counts(plan: Plan) -> dict[str, Any]:
    return {"problems": plan.problems_total, "problems_in_shard": plan.shard_problems,
            "problems_pending": plan.pending_problems, "completions_existing": plan.existing,
            "problems_without_answer": len(plan.without_answer),
            "problems_without_answer_rows": plan.without_answer[:20]}


def execute(plan: Plan, engine: BaseEngine, *, progress: bool = True) -> Tally:
    """Stream the plan's requests through ``engine`` and append verified rows to the shard file."""
    cfg = plan.cfg
    record = new_record(plan)
    record.counts.update(base_counts(plan))
    record.write(plan.record_dir, status="partial")
    tally = Tally()
    left: Counter[str] = Counter(j.problem.id for j in plan.jobs)
    buffer: list[TraceRow] = []
    buffered_requests = 0
    failures_in_a_row = 0
    seen_rows = seen_tokens = 0   # for the progress bar: written or waiting in the buffer
    last_record = time.monotonic()
    bar = progress_bar(plan) if progress else None

    def flush() -> None:
        nonlocal buffer, buffered_requests, last_record
        if not buffer:
            return
        verify_rows(cfg, buffer)
        rows = finalize(buffer)
        with _interrupts_held():              # written, emptied and counted together, or not at all
            writer.write_rows(rows)
            buffer, buffered_requests = [], 0     # written: a later error must neither rewrite nor disown them
            for row in rows:
                tally.add(row)
        if time.monotonic() - last_record > RUN_RECORD_EVERY_S:
            record.counts.update(tally.counts())
            record.write(plan.record_dir, status="partial")
            last_record = time.monotonic()

    status = "partial"
    writer = ShardWriter(plan.shard_path)
    try:
        with _sigterm_as_interrupt():
            for index, completions in engine.stream(plan.requests, sampling_of(cfg)):
                job = plan.jobs[index]
                left[job.problem.id] -= 1
                if isinstance(completions, RequestError):
                    failures_in_a_row = _record_failure(job, completions, tally, failures_in_a_row)
                else:
                    failures_in_a_row = 0
                    tally.answered += 1
                    buffer.extend(build_rows(cfg, plan.engine_name, job, completions))
                    buffered_requests += 1
                    seen_rows += len(completions)
                    seen_tokens += sum(c.completion_tokens or 0 for c in completions)
                    if left[job.problem.id] == 0:
                        tally.problems += 1
                if bar is not None:
                    _show_progress(bar, tally, problem_done=left[job.problem.id] == 0, rows=seen_rows,
                                   tokens=seen_tokens)
                if buffered_requests >= cfg.chunk_size:
                    flush()
            flush()
            tally.lost = max(0, len(plan.requests) - tally.answered - tally.failed)
            if tally.lost:
                log.warning("the %s engine ended without answering %d request(s); a rerun retries them",
                            plan.engine_name, tally.lost)
            status = final_status(plan, tally)
    except EngineError as exc:
        raise EngineError(f"{exc}. The finished completions are saved in {plan.shard_path}; rerun the same "
                          "command to resume.") from None
    finally:
        if buffer:  # finished work survives an error or Ctrl-C
            try:
                flush()
            except BaseException:
                log.exception("could not save %d finished completions", len(buffer))
        writer.close()
        if bar is not None:
            bar.close()
        record.counts.update(tally.counts())
        record.write(plan.record_dir, status=status)
    print_summary(plan, tally)
    if status == "failed":
        raise DistillError(str(scrub(failure_message(plan, tally))))
    return tally


def _show_progress(bar: Any, tally: Tally, *, problem_done: bool, rows: int, tokens: int) -> None:
    if problem_done:
        bar.update(1)
    rate = tokens / max(1e-9, time.monotonic() - tally.started)
    bar.set_postfix_str(f"{rows} completions, {rate:,.0f} tok/s"
                        + (f", {tally.failed} failed" if tally.failed else ""), refresh=False)


def _record_failure(job: Any, error: RequestError, tally: Tally, in_a_row: int) -> int:
    """Count a failed request (a permanent one is listed, not retried); returns the failures in a row so far."""
    permanent = bool(getattr(error, "permanent", False))
    tally.fail(job.problem.id, job.start, str(error), permanent=permanent)
    if permanent:
        log.warning("problem %s: skipped for good (listed in run.json; a rerun will not help): %s",
                    job.problem.id, error)
        return in_a_row
    in_a_row += 1
    log.warning("problem %s: request failed, skipped (a rerun retries it): %s", job.problem.id, error)
    if in_a_row >= MAX_FAILURES_IN_A_ROW:
        raise EngineError(f"{in_a_row} requests in a row failed; the last: {error}")
    return in_a_row


def final_status(plan: Plan, tally: Tally) -> str:
    """``complete``, ``partial`` or ``failed`` for a run that went to its end (see the module docstring)."""
    if not plan.requests:
        return "complete"
    if tally.answered == 0 and (tally.retryable or tally.lost or plan.existing == 0):
        return "failed"
    if tally.retryable or tally.lost:
        return "partial"
    return "complete"


def failure_message(plan: Plan, tally: Tally) -> str:
    """One line for a run that produced nothing."""
    parts = []
    if tally.retryable:
        parts.append(f"{tally.retryable} failed")
    if tally.unfit:
        parts.append(f"{tally.unfit} can never fit the context with --max-tokens {plan.cfg.max_tokens}")
    if tally.lost:
        parts.append(f"{tally.lost} never answered by the engine")
    first = tally.failures[0] if tally.failures else None
    example = f"; the first (problem {first['id']}): {first['reason']}" if first else ""
    return (f"no completion was produced: of {len(plan.requests)} request(s), {', '.join(parts)}{example}. "
            f"Nothing was written; {plan.record_dir / 'run.json'} says status 'failed'")


def progress_bar(plan: Plan) -> Any:
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=plan.pending_problems, unit="problem", desc=f"generate [{plan.engine_name}]",
                mininterval=0.5 if tty else 30.0, dynamic_ncols=True)


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C or SIGTERM arriving while a chunk is written and counted waits until that is done, then interrupts.
    Between the write and the bookkeeping, an interrupt left the rows in the buffer, and the cleanup's flush wrote
    them a second time (a CI run saw the shard hold 24 rows where run.json counted 12)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (slurm preemption, docker stop) ends the run like Ctrl-C: finished rows are saved first."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def print_summary(plan: Plan, tally: Tally) -> None:
    c = tally.counts()
    cfg = plan.cfg
    elapsed = time.monotonic() - tally.started
    lines = [
        f"generate: {tally.problems} problems, {tally.rows} completions written ({plan.existing} were already there) "
        f"by {plan.engine_name} in {elapsed:.1f} s -> {plan.shard_path}",
        f"  tokens: {tally.prompt_tokens:,} prompt, {tally.completion_tokens:,} completion "
        f"({c['completion_tokens_per_s']:,.0f} tok/s); mean completion {c['mean_completion_tokens']} tokens",
        "  finish reasons: " + (", ".join(f"{k} {v}" for k, v in tally.finish.most_common()) or "-"),
    ]
    if tally.retryable:
        lines.append(f"  refused requests: {tally.retryable} (see the warnings above and run.json counts.failures); "
                     "nothing was written for them: rerun the same command to retry them")
    if tally.unfit:
        shown = ", ".join(tally.unfit_problems[:5]) + (" ..." if len(tally.unfit_problems) > 5 else "")
        lines.append(f"  prompts that can never fit the context with --max-tokens {cfg.max_tokens}: {tally.unfit} "
                     f"(problems {shown}; all in run.json counts.unfit_problems): skipped, a rerun will not help; "
                     "drop them, or use a new --out with a lower --max-tokens")
    if tally.lost:
        lines.append(f"  requests the engine never answered: {tally.lost}: rerun the same command to retry them")
    if c["verified"]:
        lines.append("  verdicts: " + ", ".join(f"{k} {v}" for k, v in tally.verdicts.most_common())
                     + f"; pass rate {c['pass_rate']:.1%} ({tally.verdicts['correct']}/{c['verified']})")
    else:
        lines.append("  verdicts: none (no gold answers" + (")" if cfg.answer_column else ": --answer-column is empty)"))
    print("\n".join(lines))
