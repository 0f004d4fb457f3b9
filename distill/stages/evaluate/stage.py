"""``distill eval``: pass@1 over n samples, cons@n and pass@k, the DeepSeek-R1 way, through lm-eval.

Two ways in, one way of scoring:

- ``--model DIR_OR_HUB_ID``: lm-eval samples n completions per problem (vllm or hf backend) from our tasks in
  ``eval/`` (:mod:`distill.stages.evaluate.harness`), in chunks that a rerun resumes;
- ``--completions FILE``: completions that already exist are re-scored, no model needed.

Either way every completion is checked by :mod:`distill.verify` (and, opt-in, the answers its rules cannot
settle by the generative judge, :mod:`distill.verify.judge`) and the numbers come from
:mod:`distill.metrics` (:mod:`distill.stages.evaluate.scoring`); the outputs are ``results.json``,
``samples.jsonl`` (one row per completion), ``problems.jsonl``, ``summary.md`` and ``run.json``, plus
lm-eval's own results and samples under ``lm_eval/`` when a model ran.

Departures from the paper's protocol: none by default (temperature 0.6, top-p 0.95, 32,768 new tokens, the
chat prompt, no system turn). n defaults to 16 rather than 64 to keep a first look cheap; cons@n is reported
for the n used, so cons@64 needs ``--samples 64``. An answer counts only when it is the last ``\\boxed{}``
after ``</think>`` (``--fallback`` to also accept "the answer is X").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.data.prompts import CHAT_SUFFIX
from distill.errors import ConfigError, DataError
from distill.outdir import check_ours, prepare_out
from distill.runinfo import RunRecord
from distill.stages.evaluate.completions import read_completions
from distill.stages.evaluate.config import DEFAULT_SAMPLES, EvalConfig
from distill.stages.evaluate.hooks import load_docs
from distill.stages.evaluate.outputs import RESULTS_FILE, metric_names, pct, write_outputs
from distill.stages.evaluate.scoring import ProblemCompletions, score_problems, verify_problems
from distill.stages.evaluate.tasks import EvalTask, get_task
from distill.verify.judge import summary_line

if TYPE_CHECKING:
    from distill.verify.judge import JudgeSettings

log = logging.getLogger(__name__)
JUDGE_CACHE_FILE = "judge_cache.jsonl"


def model_label(model: str) -> str:
    """A folder name for a model: a local folder's name, or the hub id with '/' -> '__'."""
    p = Path(model)
    return p.resolve().name if p.exists() else model.strip("/").replace("/", "__")


def default_out(cfg: EvalConfig) -> Path:
    if cfg.model is not None:
        return Path("out") / "eval" / model_label(cfg.model) / cfg.task
    return Path("out") / "eval" / "rescore" / cfg.task


def _protocol(cfg: EvalConfig, task: EvalTask, n: int, mode: str, prompt_has_think: bool) -> dict[str, Any]:
    how = "integers 0-999, '025' == '25'" if mode == "aime" else "math-verify"
    scoring = f"distill.verify, mode '{mode}' ({how}); the answer is the last \\boxed{{}}"
    scoring += {"auto": " after </think> when the reasoning is tagged", "required": " after a closing </think>",
                "optional": ""}[cfg.think]
    scoring += "; 'the answer is X' accepted when there is no box" if cfg.fallback else ""
    if cfg.completions is not None:
        return {"completions": cfg.completions, "samples per problem": n, "scoring": scoring,
                "prompt had <think> prefill": prompt_has_think}
    return {
        "samples per problem": n,
        "sampling": f"temperature {cfg.temperature}, top-p {cfg.top_p}, up to {cfg.max_tokens} new tokens, "
                    f"seed {cfg.seed}",
        "prompt": f"chat template, one user turn: problem + \"{CHAT_SUFFIX}\"; no system prompt"
                  + ("; assistant turn prefilled with <think>\\n" if cfg.force_think else "")
                  + ("; the template itself opens <think>" if prompt_has_think and not cfg.force_think else ""),
        "engine": f"lm-eval, {cfg.backend} backend, dtype {cfg.dtype}",
        "scoring": scoring,
        "data": cfg.data_file or f"{task.hub_id} ({task.hub_split} split)",
    }


def run(cfg: EvalConfig) -> Path:
    task = get_task(cfg.task)
    try:
        cfg.check_ready()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    mode = cfg.verify_mode or task.mode
    out = Path(cfg.out) if cfg.out else default_out(cfg)
    judging = _judge_settings(cfg, task, out)     # its key is read now, before anything is touched
    if not cfg.overwrite:
        check_ours(out, "eval")             # a rerun resumes its own chunks; it never replaces others' files
    with _cache_kept(judging, out, cfg.overwrite):
        prepare_out(out, "eval", overwrite=cfg.overwrite)
    inputs: dict[str, str | Path] = {name: value for name, value in (("completions", cfg.completions),
                                                                      ("data_file", cfg.data_file)) if value}
    if cfg.model is not None and Path(cfg.model).exists():
        inputs["model"] = cfg.model
    record = RunRecord("eval", cfg, inputs=inputs)
    meta: dict[str, Any] = {"task": task.name, "task_title": task.title, "model": cfg.model,
                            "completions_file": cfg.completions, "limit": cfg.limit}

    if _is_code(cfg, task):
        return _run_code(cfg, task, out, record, meta)

    problems, n, prompt_has_think, texts = _collect(cfg, task, mode, out, record, meta)
    settings = cfg.verify_settings(mode)
    verdicts = verify_problems(problems, settings, prompt_has_think=prompt_has_think, progress=True)
    judgements = None
    if judging is not None:
        from distill.stages.evaluate.scoring import judge_problems
        from distill.verify.judge_client import Judge

        with Judge(judging) as judge:
            verdicts, judgements = judge_problems(problems, verdicts, texts, settings, judge,
                                                  prompt_has_think=prompt_has_think)
        meta["judge"] = judge.describe()
    try:
        scored = score_problems(problems, verdicts, n=n, mode=mode, timeout=cfg.verify_timeout, judgements=judgements)
    except ValueError as exc:
        raise DataError(f"{cfg.completions or out}: {exc}") from None
    meta.update({"think": cfg.think, "prompt_has_think": prompt_has_think, "fallback": cfg.fallback,
                 "protocol": _protocol(cfg, task, n, mode, prompt_has_think)})
    if judging is not None:
        meta["protocol"]["generative judge"] = (f"{judging.model}, asked about {', '.join(judging.when)} rule "
                                                "verdicts; Judgement: Yes/No decides, anything else keeps the rules'")
    results = write_outputs(out, scored, meta)

    record.counts.update({"problems": results["num_problems"], "n": n, "samples_scored": results["samples_scored"],
                          "samples_dropped": results["samples_dropped"], "complete": results["complete"],
                          **{name: results[name] for name in metric_names(results)}})
    if judging is not None:
        record.counts["judge"] = {k: v for k, v in results["judge"].items() if k != "settings"}
    record.write(out)
    _print_summary(results, out)
    return out


def _collect(cfg: EvalConfig, task: EvalTask, mode: str, out: Path, record: RunRecord,
             meta: dict[str, Any]) -> tuple[list[ProblemCompletions], int, bool, dict[str, str]]:
    """The completions to score (read from --completions, or sampled by lm-eval), n, whether the prompts
    ended with <think>, and each problem's text by id (for the judge; empty where unknown)."""
    skipped: list[str] = []
    if cfg.completions is not None:
        data_docs = None
        if cfg.data_file is not None:
            data_docs = load_docs(task.name, cfg.data_file, verify_mode=mode, skipped=skipped)
        problems = read_completions(cfg.completions, mode=mode, data_docs=data_docs, limit=cfg.limit,
                                    skipped=skipped)
        n = cfg.samples or max(len(p.completions) for p in problems)
        if n == 0:
            raise DataError(f"{cfg.completions}: every row has an empty 'completions' list; nothing to score")
        prompt_has_think = cfg.prompt_has_think
        meta["data"] = cfg.data_file
        texts = _texts(data_docs) if data_docs is not None else _row_texts(cfg)
    else:
        from distill.stages.evaluate.harness import run_harness

        n = cfg.samples or DEFAULT_SAMPLES
        if cfg.temperature == 0 and n > 1:
            log.warning("temperature 0 is greedy decoding: the %d samples per problem will be identical", n)
        record.write(out, status="partial")
        docs = load_docs(task.name, cfg.data_file, verify_mode=mode, skipped=skipped,
                         trust_remote_code=cfg.trust_remote_code)   # the problems lm-eval will leave out, for the record
        harness = run_harness(cfg, task, out, n=n, verify_mode=mode)
        problems = harness.problems
        prompt_has_think = harness.prompt_has_think
        texts = _texts(docs)
        meta.update({"data": cfg.data_file or task.hub_id, "backend": harness.backend,
                     "max_model_len": harness.max_model_len, "longest_prompt_tokens": harness.longest_prompt_tokens,
                     "template_has_think": harness.template_has_think, "prompt_example": harness.prompt_example,
                     "lm_eval": {"results": "lm_eval/results.json", "samples": "lm_eval/samples.jsonl",
                                 "chunks": harness.chunks_total, "chunks_reused": harness.chunks_reused,
                                 "metrics": harness.lm_eval_metrics}})
        record.extra["lm_eval_model_args"] = harness.model_args
    meta["skipped_without_gold"] = skipped
    return problems, n, prompt_has_think, texts


# ---------------------------------------------------------------- the generative judge


def _judge_settings(cfg: EvalConfig, task: EvalTask, out: Path) -> JudgeSettings | None:
    """The judge asked for (None when off), its key checked; default cache: judge_cache.jsonl in ``out``."""
    try:
        settings = cfg.judge_settings(str(out / JUDGE_CACHE_FILE))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if settings is None:
        return None
    if _is_code(cfg, task):
        raise ConfigError(f"--task {task.name}: code is judged by running its tests; the generative judge "
                          "(--judge-base-url) is for math answers")
    settings.api_key()     # a named variable that is not set: one clear line, exit 2
    return settings


@contextmanager
def _cache_kept(settings: JudgeSettings | None, out: Path, overwrite: bool) -> Iterator[None]:
    """Keep the judge's cache across ``--overwrite`` when it lives in ``out``: its answers never go stale."""
    cache = Path(settings.cache) if settings is not None and settings.cache else None
    inside = cache is not None and overwrite and cache.is_file() and out.resolve() in cache.resolve().parents
    saved = cache.read_bytes() if inside and cache is not None else None
    yield
    if saved is not None and cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(saved)


def _texts(docs: list[dict[str, Any]] | None) -> dict[str, str]:
    return {str(d["id"]): str(d.get("problem") or "") for d in docs or []}


def _row_texts(cfg: EvalConfig) -> dict[str, str]:
    """Problem texts from the completions file's own ``problem`` fields (only read when the judge is on)."""
    if cfg.judge_base_url is None or cfg.completions is None:
        return {}
    from distill.data.jsonl import iter_jsonl

    return {str(row.get("id")): str(row.get("problem") or "") for _, row in iter_jsonl(cfg.completions)}


def _is_code(cfg: EvalConfig, task: EvalTask) -> bool:
    """Code tasks, and ``--task custom`` whose problems (or completion rows) carry code tests."""
    from distill.stages.evaluate.completions import has_code_tests

    if task.mode == "code":
        return True
    if task.name != "custom" or cfg.verify_mode is not None:
        return False
    if cfg.data_file:
        return has_code_tests(cfg.data_file)
    return cfg.completions is not None and has_code_tests(cfg.completions)


def _run_code(cfg: EvalConfig, task: EvalTask, out: Path, record: RunRecord, meta: dict[str, Any]) -> Path:
    """Score code completions: each program runs against its problem's tests in distill.verify's sandbox."""
    from distill.stages.evaluate.completions import load_code_docs, read_code_completions
    from distill.stages.evaluate.scoring import score_code_problems, verify_code_problems
    from distill.stages.evaluate.tasks import humaneval_data_file
    from distill.verify import Limits

    data = cfg.data_file or (str(humaneval_data_file()) if task.name == "humaneval" else None)
    docs = load_code_docs(data) if data else None
    prompt_has_think = cfg.prompt_has_think
    if cfg.model is not None:                 # sample with lm-eval (eval/humaneval.yaml, eval/custom_code.yaml)
        from distill.stages.evaluate.completions import sample_code_completions

        assert docs is not None
        record.write(out, status="partial")
        problems, harness = sample_code_completions(cfg, task, out, n=cfg.samples or DEFAULT_SAMPLES, docs=docs)
        prompt_has_think = harness.prompt_has_think
        meta.update({"backend": harness.backend, "prompt_example": harness.prompt_example,
                     "lm_eval": {"results": "lm_eval/results.json", "samples": "lm_eval/samples.jsonl"}})
    else:
        assert cfg.completions is not None
        problems = read_code_completions(cfg.completions, data_docs=docs, limit=cfg.limit)
    n = cfg.samples or max(len(p.completions) for p in problems)
    if n == 0:
        raise DataError(f"{cfg.completions}: every row has an empty 'completions' list; nothing to score")
    limits = Limits()
    verdicts = verify_code_problems(problems, limits=limits, workers=cfg.verify_workers or None,
                                    prompt_has_think=prompt_has_think, progress=True)
    try:
        scored = score_code_problems(problems, verdicts, n=n)
    except ValueError as exc:
        raise DataError(f"{cfg.completions}: {exc}") from None
    meta.update({"data": data, "skipped_without_gold": [], "prompt_has_think": prompt_has_think,
                 "protocol": {
                     "completions": cfg.completions or f"sampled from {cfg.model} (temperature {cfg.temperature}, "
                                                       f"top-p {cfg.top_p}, up to {cfg.max_tokens} new tokens)",
                     "samples per problem": n, "data": data,
                     "program": "the last fenced code block after </think> (after the prompt when the prompt is "
                                "valid Python: its imports and helpers stay defined); without a fence and without "
                                "reasoning, prompt + completion (HumanEval's body continuation)",
                     "scoring": f"distill.verify sandbox: correct only when every test passes (per run: CPU "
                                f"{limits.cpu_s:g} s, wall {limits.wall_s:g} s, memory {limits.memory_bytes >> 20} "
                                "MiB); pass@k unbiased over n samples; no cons@n"}})
    results = write_outputs(out, scored, meta)
    record.counts.update({"problems": results["num_problems"], "n": n, "samples_scored": results["samples_scored"],
                          "samples_dropped": results["samples_dropped"], "complete": results["complete"],
                          "failure_kinds": results["failure_kinds"],
                          **{name: results[name] for name in metric_names(results)}})
    record.write(out)
    _print_summary(results, out)
    return out


def _print_summary(results: dict[str, Any], out: Path) -> None:
    names = metric_names(results)
    head = f"pass@1 {pct(results['pass@1'])}% ± {pct(results.get('pass@1_stderr'))}"
    rest = " · ".join([f"{k} {pct(results[k])}%" for k in names[1:]]
                      + [f"{k} {v}" for k, v in (results.get("failure_kinds") or {}).items()])
    print(f"{results['task']}: {head} · {rest} (n={results['n']}, {results['num_problems']} problems) -> {out}")
    if results.get("judge"):
        print(summary_line(results["judge"]))
    if not results["complete"]:
        print(f"warning: {len(results['missing'])} problem(s) have fewer than {results['n']} samples and were scored "
              f"on the samples they have; see {out / RESULTS_FILE} 'missing'")
