"""What the eval needs to know about vLLM models: their position limit as vLLM derives it, and per-request seeds
for lm-eval's vLLM backend when it runs several replicas (``--data-parallel-size``)."""

from __future__ import annotations

import hashlib
from typing import Any

from distill.engines import derive_seed

# The keys vLLM reads a model's position limit from (the smallest present wins), and the RoPE types whose
# max_position_embeddings already states the scaled limit (vLLM multiplies in the ``factor`` of the others):
# ``derive_max_model_len_and_key`` (vllm/transformers_utils/model_arch_config_convertor.py) and
# ``_get_and_verify_max_len`` (vllm/config/model.py).
POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                 "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len")
PRESCALED_ROPE = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")


def model_positions(model_config: Any) -> tuple[int | None, str]:
    """``(positions, where they come from)``: the longest context the model serves, derived as vLLM derives it.

    The smallest of the config's position keys, times the RoPE scaling ``factor`` for linear/dynamic scaling
    (YaRN/llama3/longrope configs already state the scaled limit). vLLM refuses a ``max_model_len`` above it
    (unless ``VLLM_ALLOW_LONG_MAX_MODEL_LEN``, which its own message warns yields NaNs with RoPE); transformers
    would run on positions the model never saw. ``(None, "")`` when the config states no limit.
    """
    found = [(v, k) for k in POSITION_KEYS
             if isinstance(v := getattr(model_config, k, None), int) and not isinstance(v, bool) and v > 0]
    if not found:
        return None, ""
    limit, key = min(found)
    params = getattr(model_config, "rope_parameters", None) or getattr(model_config, "rope_scaling", None)
    if isinstance(params, dict):
        rope_type = params.get("rope_type", params.get("type", "default"))
        factor = params.get("factor")
        if rope_type not in ("default", None, *PRESCALED_ROPE) and isinstance(factor, (int, float)) and factor > 1:
            return int(limit * factor), f"{key} {limit} x rope {rope_type} factor {factor:g}"
    return limit, key


def request_seeds(requests: list[list[int]], base: int) -> list[int]:
    """One seed per request: the k-th copy of a prompt (token ids) gets ``derive_seed(base, prompt, k)``.

    lm-eval hands its vLLM backend ``repeats`` identical copies of each prompt; with ``data_parallel_size`` N
    it deals them out to N replicas in turn, every replica built with the same engine ``seed`` and handed the same
    prompts in the same order, so without per-request seeds replica r's copies are likely to repeat replica 0's
    (the copies then count as independent samples in pass@k and cons@n). These seeds differ between the copies of a
    prompt, depend only on (seed, prompt, copy), not on the replica a copy lands on, the batch it runs in or
    the chunk, so a run is reproducible for any --data-parallel-size.
    """
    seen: dict[str, int] = {}
    seeds = []
    for ids in requests:
        key = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]
        k = seen.get(key, 0)
        seen[key] = k + 1
        seeds.append(derive_seed(base, key, k))
    return seeds


def seed_sampling_params(params: list[Any], requests: list[list[int]], base: int) -> list[Any]:
    """Copies of vLLM ``SamplingParams`` with :func:`request_seeds` set where sampling is random and unseeded."""
    out = []
    for sp, seed in zip(params, request_seeds(requests, base), strict=True):
        if getattr(sp, "temperature", 0) and getattr(sp, "seed", None) is None:
            sp = sp.clone()
            sp.seed = seed
            if hasattr(sp, "__dict__"):
                sp.__dict__.pop("sampling_type", None)   # a sampling type cached as RANDOM before the seed was set
        out.append(sp)
    return out


def seeded_vllm_class(base_cls: Any) -> Any:
    """lm-eval's vLLM model with per-request seeds (:func:`request_seeds`) on every sampled request.

    Used for ``data_parallel_size`` > 1: lm-eval 0.4.13 runs each replica as ``LLM(**self.model_args)`` (one
    ``seed`` for all) on ``distribute(data_parallel_size, requests)``, the interleaved share of the same sorted
    request list. Per-request seeds cost vLLM its batched sampling fast path, so the one-engine case keeps the
    engine's own stream (its copies of a prompt draw different noise within one batch).
    """

    class SeededVLLM(base_cls):  # type: ignore[misc, valid-type]
        def _model_generate(self, requests: Any, generate: bool = False, sampling_params: Any = None) -> Any:
            if generate and isinstance(sampling_params, list):
                sampling_params = seed_sampling_params(sampling_params, requests, int(self.model_args["seed"]))
            return super()._model_generate(requests, generate=generate, sampling_params=sampling_params)

    SeededVLLM.__name__ = SeededVLLM.__qualname__ = f"Seeded{base_cls.__name__}"
    return SeededVLLM
