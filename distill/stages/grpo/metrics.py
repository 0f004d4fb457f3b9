"""The per-step metrics file of ``distill grpo``: one JSON row per logged step, plain names, no nesting.

TRL logs its own names (``rewards/accuracy/mean``, ``completions/mean_length``, ``clip_ratio/region_mean``,
...); :func:`metrics_row` turns them into the row a user reads::

    {"step": 12, "time_s": 80.1, "step_time": 6.2, "loss": 0.01, "learning_rate": 1e-06, "grad_norm": 0.4,
     "reward": 0.62, "reward_std": 0.41, "reward/accuracy/mean": 0.55, "reward/accuracy/std": 0.50, ...,
     "accuracy": 0.55, "format_rate": 0.70, "completion_length": 412.0, "completion_length_max": 1024,
     "truncated_ratio": 0.03, "kl": 0.0004, "clip_ratio": 0.001, "entropy": 0.61, "frac_reward_zero_std": 0.25}

``accuracy`` and ``format_rate`` are the batch means of the accuracy and format rewards (both 1/0).
``watch/<name>`` is a watcher's share of the step's rollouts (:mod:`distill.stages.grpo.watch`).
``clip_ratio`` is the share of tokens where the PPO-style ratio clip was active; ``truncated_ratio`` is the
share of completions cut at ``max_completion_length``.

>>> row = metrics_row({"reward": 1.0, "rewards/acc/mean": 0.5, "completions/mean_length": 12.0}, step=3,
...                   time_s=1.0, labels=["acc"], accuracy_label="acc", format_label=None)
>>> row["accuracy"], row["completion_length"], row["format_rate"]
(0.5, 12.0, None)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distill.data.jsonl import read_jsonl

WATCH_PREFIX = "watch_"      # distill.stages.grpo.watch.PREFIX: a watcher's name as TRL logs it

# TRL's log key -> our row key.
RENAMES = {
    "loss": "loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "step_time": "step_time",
    "reward": "reward",
    "reward_std": "reward_std",
    "frac_reward_zero_std": "frac_reward_zero_std",
    "completions/mean_length": "completion_length",
    "completions/max_length": "completion_length_max",
    "completions/min_length": "completion_length_min",
    "completions/mean_terminated_length": "terminated_length",
    "completions/clipped_ratio": "truncated_ratio",
    "kl": "kl",
    "clip_ratio/region_mean": "clip_ratio",
    "clip_ratio/low_mean": "clip_ratio_low",
    "clip_ratio/high_mean": "clip_ratio_high",
    "entropy": "entropy",
    "num_tokens": "num_tokens",
    "epoch": "epoch",
}


def metrics_row(logs: dict[str, Any], *, step: int, time_s: float, labels: Sequence[str],
                accuracy_label: str | None, format_label: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"step": step, "time_s": round(time_s, 3)}
    for src, dst in RENAMES.items():
        if src in logs:
            row[dst] = _num(logs[src])
    for label in labels:
        for stat in ("mean", "std"):
            key = f"rewards/{label}/{stat}"
            if key in logs:
                row[f"reward/{label}/{stat}"] = _num(logs[key])
    for key, value in logs.items():                 # watchers (weight 0, never rewarded): their shares
        if key.startswith(f"rewards/{WATCH_PREFIX}") and key.endswith("/mean"):
            row[f"watch/{key[len('rewards/' + WATCH_PREFIX):-len('/mean')]}"] = _num(value)
    row["accuracy"] = _num(logs.get(f"rewards/{accuracy_label}/mean")) if accuracy_label else None
    row["format_rate"] = _num(logs.get(f"rewards/{format_label}/mean")) if format_label else None
    return row


def _num(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:  # NaN -> null (valid JSON)
        return None
    return value


def keep_until(path: Path, step: int) -> int:
    """Drop rows logged after ``step`` (a resumed run redoes those steps); return how many were dropped."""
    if not path.is_file():
        return 0
    rows = read_jsonl(path)
    kept = [r for r in rows if int(r.get("step", 0)) <= step]
    if len(kept) == len(rows):
        return 0
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    os.replace(tmp, path)
    return len(rows) - len(kept)
