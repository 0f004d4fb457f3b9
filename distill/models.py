"""Facts about a model before loading it: local folder or hub id, and how many positions it serves.

A name that looks like a path (``./x``, ``../x``, ``/x``, ``~/x``, or more than one ``/``) is a local folder; a
missing one is reported as such, never as a malformed hub id (which is what transformers says of it).

>>> looks_local("Qwen/Qwen2.5-Math-7B"), looks_local("./out/student"), looks_local("out/runs/student")
(False, True, True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.errors import DistillError


def looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith("/") or Path(name).exists()


def require_folder(name: str, what: str = "model") -> None:
    """Raise a one-line :class:`DistillError` when ``name`` is a local path that does not exist or is empty."""
    if not looks_local(name):
        return
    path = Path(name).expanduser()
    if not path.exists():
        raise DistillError(f"{what} folder not found: {name} (a local path; for a hub model pass its id, "
                           "e.g. Qwen/Qwen2.5-Math-7B)")
    if path.is_dir() and not any(path.iterdir()):
        raise DistillError(f"{what} folder {name} is empty: point it at a saved model (config.json, tokenizer files)")


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
