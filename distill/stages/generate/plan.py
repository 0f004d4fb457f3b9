"""What a ``distill generate`` run will do, worked out before the engine starts: this shard's problems, the
folder checks, the (id, sample) pairs still missing, and one engine request per run of missing samples."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.data.jsonl import ShardWriter
from distill.data.problems import Problem, load_problems
from distill.data.prompts import chat_messages, prompt_opens_think, render_prompt
from distill.data.shards import prepare_folder, scan_done, shard_name
from distill.engines import Request, Sampling, derive_seed, resolve_engine_name
from distill.errors import ConfigError, DataError, DistillError
from distill.models import require_folder
from distill.stages.generate.config import GenerateConfig
from distill.verify.equivalence import check_gold

Prompt = str | list[dict[str, str]]


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
    prompt: Prompt
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
    without_answer: list[str] = field(default_factory=list)   # rows (file:line) with no gold: no verdicts
    jobs: list[Job] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    @property
    def pending_problems(self) -> int:
        return len({j.problem.id for j in self.jobs})


def problems_digest(problems: list[Problem]) -> str:
    """A fingerprint of what the traces depend on in the problems file: ids, problem texts, golds and code tests
    (these only where a problem has them, so the fingerprints of math sets stay as they were)."""
    h = hashlib.sha256()
    for p in problems:
        key = [p.id, p.problem, p.answer] + ([p.tests] if p.tests is not None else [])
        h.update(json.dumps(key, sort_keys=True, default=str).encode("utf-8"))
    return h.hexdigest()[:16]


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
                             trust_remote_code=cfg.trust_remote_code, tests_column=cfg.tests_column or None)
    check_golds(problems, cfg.verify_mode, cfg.dataset)
    mine = select_shard(problems, cfg.num_shards, cfg.shard_index)
    out = Path(cfg.out)
    shard_file = shard_name(cfg.shard_index, cfg.num_shards)
    shard_path = out / shard_file
    record_dir = out if cfg.num_shards == 1 else out / "runs" / Path(shard_file).stem
    settings = {**cfg.trace_settings(), "prompt_form": form,
                "teacher": canonical_path(cfg.teacher), "dataset": canonical_path(cfg.dataset),
                "problems_sha": f"{cfg.limit or 'all'}:{problems_digest(problems)}"}
    if any(p.tests is not None for p in problems):
        settings["tests_column"] = cfg.tests_column     # only for code sets: older folders' settings stay valid
    prepare_folder(out, shard_path, record_dir, settings, overwrite=cfg.overwrite, num_shards=cfg.num_shards)
    # Opening the writer cuts a partial last line, so the scan below sees only whole rows.
    ShardWriter(shard_path).close()
    done, first = scan_done(shard_path)
    check_first_row(first, cfg, shard_path)
    plan = Plan(cfg, engine_name, out, shard_path, record_dir, len(problems), len(mine),
                existing=sum(len(v) for v in done.values()),
                without_answer=list(getattr(problems, "missing_answers", [])) if answer_column else [])
    todo = [(p, runs) for p in mine if (runs := missing_runs(done.get(p.id, set()), cfg.num_samples))]
    if not todo:
        return plan
    render = prompt_renderer(cfg, form)
    for problem, runs in todo:
        prompt = render(problem)
        has_think = prompt_opens_think(prompt)
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

    for p in problems:
        if p.answer is None or not p.answer.strip():
            continue
        try:
            check_gold(p.answer, mode)
        except ValueError as exc:
            raise DataError(f"{source}: problem {p.id!r}: {exc} (--verify-mode {mode})") from None


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


# ---------------------------------------------------------------------------------------------- prompts
def prompt_renderer(cfg: GenerateConfig, form: str) -> Callable[[Problem], Prompt]:
    """A function ``problem -> prompt`` (text, or chat messages) for this run's template and engine.

    Whether the prompt opens ``<think>`` is read off the prompt itself (``prompt_opens_think``): with
    ``--force-think`` it always does (the prefilled assistant turn, or the ``<think>`` appended to the text).
    """

    if form == "messages":
        def render_messages(problem: Problem) -> Prompt:
            messages = chat_messages(problem.problem, system=cfg.system_prompt, code=problem.tests is not None)
            if cfg.force_think:
                messages.append({"role": "assistant", "content": "<think>\n"})
            return messages
        return render_messages

    tokenizer = None
    if cfg.template == "chat":
        tokenizer = load_tokenizer(cfg)

    def render_text(problem: Problem) -> Prompt:
        try:
            return render_prompt(tokenizer, problem.problem, template=cfg.template, system=cfg.system_prompt,
                                 force_think=cfg.force_think, code=problem.tests is not None)
        except ValueError as exc:
            raise DistillError(f"cannot render the prompt of problem {problem.id!r}: {exc}") from None
    return render_text


def load_tokenizer(cfg: GenerateConfig) -> Any:
    from transformers import AutoTokenizer

    name = cfg.tokenizer or cfg.teacher
    require_folder(name, "tokenizer" if cfg.tokenizer else "teacher")
    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as exc:
        hint = (" With --engine openai the teacher is a served model name: pass --tokenizer (a folder or hub id) "
                "or use --openai-api chat." if cfg.base_url else "")
        raise DistillError(f"cannot load a tokenizer from {name!r} to render prompts: {exc}.{hint}") from None
