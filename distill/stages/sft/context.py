"""Context extension: RoPE base frequency and position limit written into the student's model config.

Qwen2.5-Math-1.5B and -7B are 4k-context models (``max_position_embeddings`` 4096, ``rope_theta`` 10000), while R1
traces run to 32k tokens. Their recipes raise ``rope_theta`` to 300000 and ``max_position_embeddings`` to
131072 (the value of DeepSeek's released R1-Distill-Qwen configs) before training: a larger base slows the rotation
of every RoPE frequency, so positions up to 32k map onto angles close to those the base saw within 4k, and SFT on
long traces adapts the model to the rest. The position limit leaves room for the eval's prompt plus 32,768 new
tokens; positions past the 32k of the training traces were never trained. The saved student keeps the new values
in its ``config.json``, so vLLM and transformers serve it with the same positions it was trained on. This is our choice, not a value from the DeepSeek-R1 paper (which does not say how its 4k
Qwen-Math bases were extended); the other four students already have 128k positions and need nothing.

>>> class C: max_position_embeddings = 4096; rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
>>> c = C(); apply_context_extension(c, rope_theta=300000.0, max_position_embeddings=32768)
{'rope_theta': [10000.0, 300000.0], 'max_position_embeddings': [4096, 32768]}
>>> c.rope_parameters["rope_theta"], c.max_position_embeddings
(300000.0, 32768)
"""

from __future__ import annotations

from typing import Any

from distill.errors import DistillError


def rope_theta_of(config: Any) -> float | None:
    """The RoPE base of a transformers config (5.x keeps it in ``rope_parameters``; 4.x as ``rope_theta``)."""
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"])
    theta = getattr(config, "rope_theta", None)
    return float(theta) if theta is not None else None


def apply_context_extension(config: Any, *, rope_theta: float | None = None,
                            max_position_embeddings: int | None = None) -> dict[str, list[Any]]:
    """Write the overrides into ``config`` in place; return ``{key: [old, new]}`` for what changed."""
    changed: dict[str, list[Any]] = {}
    if rope_theta is not None:
        old = rope_theta_of(config)
        params = getattr(config, "rope_parameters", None)
        if isinstance(params, dict):
            if params.get("rope_type", "default") not in ("default", None):
                raise DistillError(f"the base model already uses RoPE scaling {params.get('rope_type')!r}; "
                                   "drop rope_theta from the recipe or edit rope_parameters by hand")
            params["rope_theta"] = float(rope_theta)
        if hasattr(config, "rope_theta") or not isinstance(params, dict):
            config.rope_theta = float(rope_theta)
        if old != float(rope_theta):
            changed["rope_theta"] = [old, float(rope_theta)]
    if max_position_embeddings is not None:
        old_pos = getattr(config, "max_position_embeddings", None)
        config.max_position_embeddings = int(max_position_embeddings)
        if old_pos != max_position_embeddings:
            changed["max_position_embeddings"] = [old_pos, int(max_position_embeddings)]
        window = getattr(config, "sliding_window", None)
        if window and getattr(config, "use_sliding_window", False) and window < max_position_embeddings:
            raise DistillError(f"the base uses sliding-window attention of {window} tokens; training on "
                               f"{max_position_embeddings} positions needs full attention (use_sliding_window: false)")
    return changed


def check_positions(config: Any, max_length: int, *, model: str) -> None:
    """A sequence of ``max_length`` tokens must fit the model's positions, or training sees unseen positions."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and max_length > limit:
        raise DistillError(f"max_length {max_length} exceeds {model}'s max_position_embeddings {limit}: extend the "
                           "context (set rope_theta and max_position_embeddings) or lower max_length")
