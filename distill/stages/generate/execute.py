"""The generation loop: stream a plan's requests through an engine, verify, and append rows to the shard file
``chunk_size`` finished requests at a time; SIGTERM and Ctrl-C first save every finished completion."""

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
from distill.runinfo import RunRecord
from distill.stages.generate.plan import Plan, sampling_of
from distill.stages.generate.rows import Tally, build_rows, finalize, verify_rows

log = logging.getLogger(__name__)

RUN_RECORD_EVERY_S = 30.0
# Requests an engine refuses (a prompt too long, a 400) are skipped and retried by a rerun; this many in a
# row without a success means something is wrong with every request: stop.
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
        writer.write_rows(finalize(buffer))
        for row in buffer:
            tally.add(row)
        buffer, buffered_requests = [], 0
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
                    tally.failed += 1
                    failures_in_a_row += 1
                    log.warning("problem %s: request refused, skipped (a rerun retries it): %s", job.problem.id,
                                completions)
                    if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                        raise EngineError(f"{failures_in_a_row} requests in a row were refused; the last: {completions}")
                else:
                    failures_in_a_row = 0
                    buffer.extend(build_rows(cfg, plan.engine_name, job, completions))
                    buffered_requests += 1
                    seen_rows += len(completions)
                    seen_tokens += sum(c.completion_tokens or 0 for c in completions)
                    if left[job.problem.id] == 0:
                        tally.problems += 1
                if bar is not None:
                    if left[job.problem.id] == 0:
                        bar.update(1)
                    rate = seen_tokens / max(1e-9, time.monotonic() - tally.started)
                    bar.set_postfix_str(f"{seen_rows} completions, {rate:,.0f} tok/s"
                                        + (f", {tally.failed} refused" if tally.failed else ""), refresh=False)
                if buffered_requests >= cfg.chunk_size:
                    flush()
            flush()
            status = "complete" if tally.failed == 0 else "partial"
    except EngineError as exc:
        raise EngineError(f"{exc}\nThe finished completions are saved in {plan.shard_path}; rerun the same "
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
    return tally


def progress_bar(plan: Plan) -> Any:
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=plan.pending_problems, unit="problem", desc=f"generate [{plan.engine_name}]",
                mininterval=0.5 if tty else 30.0, dynamic_ncols=True)


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
    if tally.failed:
        lines.append(f"  refused requests: {tally.failed} (see the warnings above); nothing was written for them: "
                     "rerun the same command to retry them")
    if c["verified"]:
        lines.append("  verdicts: " + ", ".join(f"{k} {v}" for k, v in tally.verdicts.most_common())
                     + f"; pass rate {c['pass_rate']:.1%} ({tally.verdicts['correct']}/{c['verified']})")
    else:
        lines.append("  verdicts: none (no gold answers" + (")" if cfg.answer_column else ": --answer-column is empty)"))
    print("\n".join(lines))
