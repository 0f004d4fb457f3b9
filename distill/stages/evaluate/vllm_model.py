"""Per-request seeds for lm-eval's vLLM backend when it runs several replicas (``--data-parallel-size``)."""

from __future__ import annotations

import hashlib
from typing import Any

from distill.engines import derive_seed


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
