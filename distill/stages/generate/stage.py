"""``distill generate``: long-CoT traces from a teacher, n samples per problem; sharded, resumable, lossless.

    problems -> this shard's share (a hash of each id) -> (id, sample) pairs not yet in the shard file
      -> prompts (chat template or R1-Zero) -> engine.stream (vllm | hf | openai)
      -> split at </think>, extract the answer, verdict against the gold (distill.verify)
      -> append rows to OUT/shard-IIIII-of-NNNNN.jsonl, ``chunk_size`` finished problems at a time (fsync'd)

Resume: a rerun reads the (id, sample) pairs already in its shard file and generates only the rest; a kill -9
loses only the requests in flight (``--inflight`` for vllm, ``--batch-size`` for hf, ``2 x --concurrency``
for openai) and the finished ones not yet written (fewer than ``--chunk-size`` problems); a half-written last
line is cut before appending (``distill.data.jsonl.ShardWriter``). SIGTERM and Ctrl-C first write every
finished completion.
``OUT/generate-settings.json`` holds the settings that define the traces (teacher, data, prompt, sampling,
seed, shard count): a rerun with other values is refused unless ``--overwrite``. Raising ``--num-samples``
later adds the missing samples. A request the engine refuses (a prompt longer than the context, a 400) is
logged and skipped, the run ends "partial", and a rerun retries it. One process writes a shard at a time
(an ``flock`` on ``OUT/.SHARD.lock``).

Seeds: every problem gets a base seed derived from ``--seed`` and its id; sample k is drawn with base + k
(vLLM's own rule for ``n > 1``), so with the vllm and openai engines a resumed or extended run draws the
same samples a single uninterrupted run would. The hf engine seeds per batch (see its module).

Departure from the paper: none in prompt or sampling. The number of samples per prompt is not given in the
paper ("multiple responses"); the default here is 4.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.data.jsonl import ShardWriter
from distill.data.problems import Problem, is_local, load_problems
from distill.data.traces import TRACE_FIELDS, shard_name
from distill.engines import BaseEngine, EngineError, Request, RequestError, Sampling, derive_seed, resolve_engine_name
from distill.errors import ConfigError, DataError, DistillError
from distill.runinfo import RUN_FILE, RunRecord, read_run
from distill.stages.generate.config import GenerateConfig

log = logging.getLogger(__name__)

SETTINGS_FILE = "generate-settings.json"
RUN_RECORD_EVERY_S = 30.0
# Requests an engine refuses (a prompt too long, a 400) are skipped and retried by a rerun; this many in a
# row without a success means something is wrong with every request: stop.
MAX_FAILURES_IN_A_ROW = 20
DEFAULT_VERIFY_WORKERS = 8


# ---------------------------------------------------------------------------------------------- sharding
def shard_of(problem_id: str, num_shards: int) -> int:
    """The shard a problem belongs to: a stable hash of its id, so every job agrees without talking.

    >>> shard_of("p1", 1), shard_of("p1", 4) == shard_of("p1", 4)
    (0, True)
    """
    digest = hashlib.sha256(problem_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def select_shard(problems: list[Problem], num_shards: int, shard_index: int) -> list[Problem]:
    return [p for p in problems if shard_of(p.id, num_shards) == shard_index]


# ---------------------------------------------------------------------------------------------- resume
_KEY_RE = re.compile(rb'^\{"id": ("(?:[^"\\]|\\.)*"), "sample": (\d+),')


def scan_done(path: Path) -> tuple[dict[str, set[int]], dict[str, Any] | None]:
    """The (id -> samples) already written in a shard file, and its first row (for the settings check).

    Streams the file line by line and reads only each row's leading ``id`` and ``sample`` (rows are written
    with those keys first), so resuming a multi-GB shard stays fast. Lines that do not parse are skipped
    with a warning; a last line without its newline (a write cut by a crash) does not count.
    """
    done: dict[str, set[int]] = {}
    first: dict[str, Any] | None = None
    if not path.exists():
        return done, first
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.endswith(b"\n"):
                log.warning("%s:%d: partial last line ignored (an interrupted write)", path, lineno)
                break
            if first is None:
                with contextlib.suppress(ValueError):
                    first = json.loads(line)
            m = _KEY_RE.match(line)
            if m and line.rstrip().endswith(b"}"):
                key, sample = json.loads(m.group(1)), int(m.group(2))
            else:
                try:
                    row = json.loads(line)
                    key, sample = str(row["id"]), int(row["sample"])
                except (ValueError, KeyError, TypeError):
                    if line.strip():
                        log.warning("%s:%d: not a trace row; skipped (it will be regenerated)", path, lineno)
                    continue
            done.setdefault(key, set()).add(sample)
    return done, first


def missing_runs(done: set[int], n: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, count)`` runs of the sample indices in ``range(n)`` not in ``done``.

    >>> missing_runs({0, 1}, 4), missing_runs({1}, 3), missing_runs(set(), 2)
    ([(2, 2)], [(0, 1), (2, 1)], [(0, 2)])
    """
    runs: list[tuple[int, int]] = []
    for s in range(n):
        if s in done:
            continue
        if runs and runs[-1][0] + runs[-1][1] == s:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((s, 1))
    return runs


# ---------------------------------------------------------------------------------------------- the plan
@dataclass
class Job:
    """One engine request: samples ``start .. start+count-1`` of one problem."""

    problem: Problem
    start: int
    prompt: str | list[dict[str, str]]
    prompt_has_think: bool


@dataclass
class Plan:
    cfg: GenerateConfig
    engine_name: str
    out: Path
    shard_path: Path
    record_dir: Path
    problems_total: int
    shard_problems: int
    existing: int
    jobs: list[Job] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    @property
    def pending_problems(self) -> int:
        return len({j.problem.id for j in self.jobs})


def sampling_of(cfg: GenerateConfig) -> Sampling:
    return Sampling(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens)


def prompt_form(cfg: GenerateConfig, engine_name: str) -> str:
    """'messages' when the server applies the chat template (openai chat API), else 'text'."""
    return "messages" if engine_name == "openai" and cfg.openai_api == "chat" else "text"


def prepare(cfg: GenerateConfig) -> Plan:
    """Everything before the engine starts: problems, this shard, folder checks, what is left to do, prompts."""
    try:
        cfg.require_inputs()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    engine_name = resolve_engine_name(cfg.engine, base_url=cfg.base_url)
    form = prompt_form(cfg, engine_name)
    if form == "messages" and cfg.template == "r1-zero":
        raise DistillError("the R1-Zero template is plain text: with --engine openai use --openai-api completions")
    answer_column = cfg.answer_column or None
    problems = load_problems(cfg.dataset, split=cfg.split, subset=cfg.subset, problem_column=cfg.problem_column,
                             answer_column=answer_column, id_column=cfg.id_column, limit=cfg.limit,
                             trust_remote_code=cfg.trust_remote_code)
    check_golds(problems, cfg.verify_mode, cfg.dataset)
    mine = select_shard(problems, cfg.num_shards, cfg.shard_index)
    out = Path(cfg.out)
    shard_file = shard_name(cfg.shard_index, cfg.num_shards)
    shard_path = out / shard_file
    record_dir = out if cfg.num_shards == 1 else out / "runs" / Path(shard_file).stem
    settings = {**cfg.trace_settings(), "prompt_form": form,
                "teacher": canonical_path(cfg.teacher), "dataset": canonical_path(cfg.dataset)}
    prepare_folder(cfg, out, shard_path, record_dir, settings)
    # Opening the writer cuts a partial last line, so the scan below sees only whole rows.
    ShardWriter(shard_path).close()
    done, first = scan_done(shard_path)
    check_first_row(first, cfg, shard_path)
    plan = Plan(cfg, engine_name, out, shard_path, record_dir, len(problems), len(mine),
                existing=sum(len(v) for v in done.values()))
    todo = [(p, runs) for p in mine if (runs := missing_runs(done.get(p.id, set()), cfg.num_samples))]
    if not todo:
        return plan
    render = prompt_renderer(cfg, form)
    for problem, runs in todo:
        prompt, has_think = render(problem)
        base = None if cfg.seed is None else derive_seed(cfg.seed, problem.id)
        for start, count in runs:
            plan.jobs.append(Job(problem, start, prompt, has_think))
            plan.requests.append(Request(prompt, count, None if base is None else base + start,
                                         add_special_tokens=cfg.template == "r1-zero"))
    return plan


def canonical_path(value: str) -> str:
    """A local file or folder as an absolute path (so ``./x`` and ``x`` agree); hub ids and names unchanged."""
    path = Path(value).expanduser()
    return str(path.resolve()) if value and path.exists() else value


def check_golds(problems: list[Problem], mode: str, source: str) -> None:
    """Fail before any generation when a gold answer cannot be scored in this verify mode."""
    from distill.verify.equivalence import check_gold

    for p in problems:
        if p.answer is None or not p.answer.strip():
            continue
        try:
            check_gold(p.answer, mode)
        except ValueError as exc:
            raise DataError(f"{source}: problem {p.id!r}: {exc} (--verify-mode {mode})") from None


def prepare_folder(cfg: GenerateConfig, out: Path, shard_path: Path, record_dir: Path,
                   settings: dict[str, Any]) -> None:
    """Refuse to mix settings in one folder; with ``--overwrite`` clear this run's files first."""
    other = read_run(out)
    if other and other.get("stage") not in (None, "generate"):
        raise DistillError(f"{out} holds the output of 'distill {other.get('stage')}', not traces; pick another --out")
    settings_path = out / SETTINGS_FILE
    if cfg.overwrite:
        if cfg.num_shards == 1:
            victims = [*out.glob("shard-*.jsonl"), out / RUN_FILE, settings_path]
        else:
            victims = [shard_path, record_dir / RUN_FILE]
        for path in victims:
            if path.is_file():
                log.info("--overwrite: removing %s", path)
                path.unlink()
    elif settings_path.is_file():
        try:
            stored = json.loads(settings_path.read_text())
        except (OSError, ValueError) as exc:
            raise DistillError(f"{settings_path}: unreadable ({exc}); delete it or pass --overwrite") from None
        diff = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
        if diff:
            lines = "; ".join(f"{k}: {old!r} in the folder, {new!r} now" for k, (old, new) in diff.items())
            raise DistillError(f"{out} holds traces made with other settings ({lines}). Rerun with the folder's "
                               "settings to resume, pick another --out, or pass --overwrite to discard them.")
        return
    elif any(out.glob("shard-*.jsonl")):
        raise DistillError(f"{out} holds trace shards but no {SETTINGS_FILE}, so they cannot be checked against "
                           "this run's settings; pick another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{SETTINGS_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, settings_path)


def check_first_row(first: dict[str, Any] | None, cfg: GenerateConfig, path: Path) -> None:
    """A shard written under other sampling settings (e.g. left over from before an --overwrite of other
    shards) is refused even when the folder's settings file agrees."""
    if first is None:
        return
    sampling = first.get("sampling") or {}
    now = sampling_of(cfg).to_dict()
    diff = {k: (sampling.get(k), v) for k, v in now.items() if k in sampling and sampling.get(k) != v}
    if first.get("teacher") is not None and canonical_path(str(first["teacher"])) != canonical_path(cfg.teacher):
        diff["teacher"] = (first.get("teacher"), cfg.teacher)
    if diff:
        lines = "; ".join(f"{k}: {old!r} in the file, {new!r} now" for k, (old, new) in diff.items())
        raise DistillError(f"{path} was written with other settings ({lines}); rerun it with --overwrite "
                           "(this shard only) or with its own settings")


def prompt_renderer(cfg: GenerateConfig, form: str) -> Any:
    """A function ``problem -> (prompt, prompt_has_think)`` for this run's template and engine."""
    from distill.data.prompts import chat_messages, render_prompt

    if form == "messages":
        def render_messages(problem: Problem) -> tuple[list[dict[str, str]], bool]:
            messages = chat_messages(problem.problem, system=cfg.system_prompt)
            if cfg.force_think:
                messages.append({"role": "assistant", "content": "<think>\n"})
            return messages, cfg.force_think
        return render_messages

    tokenizer = None
    if cfg.template == "chat":
        tokenizer = load_tokenizer(cfg)

    def render_text(problem: Problem) -> tuple[str, bool]:
        try:
            text = render_prompt(tokenizer, problem.problem, template=cfg.template, system=cfg.system_prompt,
                                 force_think=cfg.force_think)
        except ValueError as exc:
            raise DistillError(f"cannot render the prompt of problem {problem.id!r}: {exc}") from None
        return text, cfg.force_think or text.rstrip().endswith("<think>")
    return render_text


def load_tokenizer(cfg: GenerateConfig) -> Any:
    from transformers import AutoTokenizer

    name = cfg.tokenizer or cfg.teacher
    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as exc:
        hint = (" With --engine openai the teacher is a served model name: pass --tokenizer (a folder or hub id) "
                "or use --openai-api chat." if cfg.base_url else "")
        raise DistillError(f"cannot load a tokenizer from {name!r} to render prompts: {exc}.{hint}") from None


# ---------------------------------------------------------------------------------------------- engines
def build_engine(cfg: GenerateConfig, name: str) -> BaseEngine:
    from distill.engines import get_engine

    if name == "vllm":
        options: dict[str, Any] = dict(
            tensor_parallel_size=cfg.tensor_parallel_size, data_parallel_size=cfg.data_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization, max_model_len=cfg.max_model_len, dtype=cfg.dtype,
            enable_prefix_caching=cfg.enable_prefix_caching, seed=cfg.seed or 0,
            trust_remote_code=cfg.trust_remote_code, enforce_eager=cfg.enforce_eager, tokenizer=cfg.tokenizer,
            window=cfg.vllm_window(), llm_kwargs=dict(cfg.vllm_kwargs))
    elif name == "hf":
        options = dict(dtype=cfg.dtype, batch_size=cfg.batch_size, trust_remote_code=cfg.trust_remote_code,
                       tokenizer=cfg.tokenizer)
    else:
        options = dict(base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
                       request_timeout=cfg.request_timeout, max_retries=cfg.max_retries)
    return get_engine(name, cfg.teacher, **options)


# ---------------------------------------------------------------------------------------------- rows
@dataclass
class Tally:
    """What this run wrote: the closing summary and run.json counts."""

    rows: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    problems: int = 0
    failed: int = 0
    finish: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def add(self, row: dict[str, Any]) -> None:
        self.rows += 1
        self.prompt_tokens += row.get("prompt_tokens") or 0
        self.completion_tokens += row.get("completion_tokens") or 0
        self.finish[str(row.get("finish_reason"))] += 1
        if row.get("verdict") is not None:
            self.verdicts[row["verdict"]] += 1

    def tokens_per_s(self) -> float:
        return self.completion_tokens / max(1e-9, time.monotonic() - self.started)

    def counts(self) -> dict[str, Any]:
        verified = sum(self.verdicts.values())
        return {
            "completions_written": self.rows,
            "problems_finished": self.problems,
            "failed_requests": self.failed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "completion_tokens_per_s": round(self.tokens_per_s(), 1),
            "mean_completion_tokens": round(self.completion_tokens / self.rows, 1) if self.rows else None,
            "finish_reasons": dict(self.finish.most_common()),
            "verdicts": dict(self.verdicts.most_common()),
            "verified": verified,
            "pass_rate": round(self.verdicts["correct"] / verified, 4) if verified else None,
        }


def build_rows(cfg: GenerateConfig, engine_name: str, job: Job, completions: list[Any]) -> list[dict[str, Any]]:
    """One row per completion, every TRACE_FIELDS key present; verdicts are filled in by ``verify_rows``."""
    from distill.verify import extract_answer, split_think

    sampling = {**sampling_of(cfg).to_dict(), "num_samples": cfg.num_samples}
    gold = job.problem.answer if job.problem.answer and job.problem.answer.strip() else None
    rows = []
    for k, c in enumerate(completions):
        parts = split_think(c.text, prompt_has_think=job.prompt_has_think)
        reasoning = c.reasoning if c.reasoning is not None else parts.reasoning
        answer_text = parts.answer if parts.finished else None
        rows.append({
            "id": job.problem.id,
            "sample": job.start + k,
            "problem": job.problem.problem,
            "prompt": job.prompt,
            "completion": c.text,
            "reasoning": reasoning,
            "answer_text": answer_text,
            "final_answer": extract_answer(answer_text, mode=cfg.verify_mode) if answer_text else None,
            "verdict": None,
            "gold": gold,
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "finish_reason": c.finish_reason,
            "teacher": cfg.teacher,
            "engine": engine_name,
            "sampling": sampling,
            "seed": c.seed,
            "_prompt_has_think": job.prompt_has_think,
        })
    return rows


def verify_rows(cfg: GenerateConfig, rows: list[dict[str, Any]]) -> None:
    """Fill ``verdict`` (and ``final_answer`` from the verdict) for rows with a gold answer, in place."""
    from distill.verify import verify_batch

    for has_think in (False, True):
        group = [r for r in rows if r["gold"] is not None and r["_prompt_has_think"] is has_think]
        if not group:
            continue
        verdicts = verify_batch([r["completion"] for r in group], [r["gold"] for r in group],
                                mode=cfg.verify_mode, think="auto", prompt_has_think=has_think,
                                timeout=cfg.verify_timeout, workers=verify_workers(cfg))
        for row, verdict in zip(group, verdicts):
            row["verdict"] = verdict.status
            if verdict.extracted is not None:
                row["final_answer"] = verdict.extracted


def verify_workers(cfg: GenerateConfig) -> int:
    if cfg.verify_workers is not None:
        return cfg.verify_workers
    return min(DEFAULT_VERIFY_WORKERS, os.cpu_count() or 1)


def finalize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as written: TRACE_FIELDS in order (id and sample first: the resume scan relies on it)."""
    return [{k: r[k] for k in TRACE_FIELDS} for r in rows]


# ---------------------------------------------------------------------------------------------- running
def run(cfg: GenerateConfig) -> Path:
    with shard_lock(Path(cfg.out), shard_name(cfg.shard_index, cfg.num_shards)):
        plan = prepare(cfg)
        if not plan.jobs:
            record = new_record(plan)
            record.counts.update(base_counts(plan), **Tally().counts())
            record.write(plan.record_dir, status="complete")
            print(f"generate: nothing to do: all {plan.shard_problems} problems of shard {cfg.shard_index}/"
                  f"{cfg.num_shards} already have {cfg.num_samples} samples in {plan.shard_path}")
            return plan.out
        log.info("starting the %s engine for %s", plan.engine_name, cfg.teacher)
        engine = build_engine(cfg, plan.engine_name)
        try:
            execute(plan, engine)
        finally:
            engine.close()
    return plan.out


@contextlib.contextmanager
def shard_lock(out: Path, shard_file: str) -> Iterator[None]:
    """One writer per shard: a second job on the same shard (a requeue racing a manual rerun) is refused.

    The lock (``flock`` on ``OUT/.SHARD.lock``) dies with its process, so a killed run never leaves it held.
    """
    import fcntl
    import platform

    out.mkdir(parents=True, exist_ok=True)
    path = out / f".{shard_file}.lock"
    fh = path.open("a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise DistillError(f"{out / shard_file} is being written by {holder}; wait for it to finish or stop "
                               "it (two writers would duplicate work)") from None
        except OSError as exc:  # a file system without flock: go on unguarded
            log.warning("cannot lock %s (%s): make sure no other job writes this shard", path, exc)
        else:
            fh.seek(0)
            fh.truncate()
            fh.write(f"distill generate pid {os.getpid()} on {platform.node()}\n")
            fh.flush()
        yield
    finally:
        fh.close()


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
            "problems_pending": plan.pending_problems, "completions_existing": plan.existing}


def execute(plan: Plan, engine: BaseEngine, *, progress: bool = True) -> Tally:
    """Stream the plan's requests through ``engine`` and append verified rows to the shard file."""
    cfg = plan.cfg
    record = new_record(plan)
    record.counts.update(base_counts(plan))
    record.write(plan.record_dir, status="partial")
    tally = Tally()
    left: Counter[str] = Counter(j.problem.id for j in plan.jobs)
    buffer: list[dict[str, Any]] = []
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
