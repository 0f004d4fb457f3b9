"""``distill generate``: long-CoT traces from a teacher, n samples per problem; sharded, resumable, lossless.

    problems -> this shard's share (a hash of each id) -> (id, sample) pairs not yet in the shard file
      -> prompts (chat template or R1-Zero) -> engine.stream (vllm | hf | openai)
      -> split at </think>, extract the answer, verdict against the gold (distill.verify); a code problem
         (tests in its row, --tests-column): the program's sandboxed run against the tests, the tests kept in the row
      -> append rows to OUT/shard-IIIII-of-NNNNN.jsonl, ``chunk_size`` finished problems at a time (fsync'd)

Modules: ``plan`` (this shard's problems, what is left to do, prompts and requests), ``rows`` (completions into
trace rows, verdicts, the tally), ``execute`` (the engine loop, the shard writes, the run record), and this one
(``run``, the engine). The rows follow the trace-row contract of ``distill.data.traces``; the folder's
bookkeeping (shard names, the resume scan, the shard lock, the settings check) is ``distill.data.shards``.

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

import logging
from pathlib import Path
from typing import Any

from distill.data.shards import shard_lock, shard_name
from distill.engines import BaseEngine, get_engine
from distill.errors import ConfigError
from distill.stages.generate.config import GenerateConfig
from distill.stages.generate.execute import base_counts, execute, new_record
from distill.stages.generate.plan import prepare
from distill.stages.generate.rows import Tally

log = logging.getLogger(__name__)

__all__ = ["build_engine", "execute", "prepare", "run"]


def run(cfg: GenerateConfig) -> Path:
    try:
        cfg.require_inputs()            # before the lock: a bad command line leaves no folder behind
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
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


def build_engine(cfg: GenerateConfig, name: str) -> BaseEngine:

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
