"""The recipe's ``rewards:`` mapping -> TRL reward functions, weights, and what the metrics call them.

Rewards come from :func:`distill.rewards.build_rewards`, so GRPO scores answers with the same code as the
rejection filter and the eval. Two conveniences on top:

- an ``overlong`` entry without ``max_length`` gets the stage's ``max_completion_length`` (tokens), and
  without ``buffer`` a fifth of it, so the penalty ramps over the last 20% of the length budget;
- the first accuracy-type and format-type entries are remembered, so the per-step metrics can report
  ``accuracy`` and ``format_rate`` (their rewards are 1/0, so their batch means are those rates), and the
  held-out eval verifies with the accuracy reward's own settings (mode, think, fallback).

>>> s = setup_rewards({"accuracy": {"weight": 1.0, "mode": "aime"}, "fmt": {"reward": "format", "weight": 0.1}},
...                   max_completion_length=512)
>>> s.labels, s.weights, s.accuracy_label, s.format_label, s.verify_params["mode"]
(['accuracy', 'fmt'], [1.0, 0.1], 'accuracy', 'fmt', 'aime')
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from distill.rewards import build_rewards

FORMAT_KINDS = ("format", "r1_zero_format")
# Parameters of the accuracy reward that the held-out eval reuses when verifying.
_VERIFY_KEYS = ("mode", "think", "prompt_has_think", "fallback", "timeout")


@dataclass
class RewardSetup:
    funcs: list[Callable[..., list[float | None]]]
    weights: list[float]
    labels: list[str]
    kinds: list[str]
    accuracy_label: str | None = None
    format_label: str | None = None
    verify_params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return ", ".join(f"{label} x{w:g}" for label, w in zip(self.labels, self.weights))


def setup_rewards(spec: dict[str, Any], *, max_completion_length: int) -> RewardSetup:
    spec = copy.deepcopy(spec)
    kinds: list[str] = []
    for label, raw in list(spec.items()):
        params = dict(raw or {})
        kind = str(params.get("reward", label))
        if kind == "overlong" and "max_length" not in params:
            params["max_length"] = max_completion_length
            if "buffer" not in params and "cache" not in params:
                params["buffer"] = max(1, max_completion_length // 5)
        spec[label] = params
        kinds.append(kind)
    funcs, weights = build_rewards(spec)
    labels = [str(label) for label in spec]
    accuracy = next((lab for lab, k in zip(labels, kinds) if k == "accuracy"), None)
    fmt = next((lab for lab, k in zip(labels, kinds) if k in FORMAT_KINDS), None)
    verify = {"mode": "math", "think": "auto", "prompt_has_think": False, "fallback": False, "timeout": 5.0}
    if accuracy is not None:
        verify.update({k: v for k, v in spec[accuracy].items() if k in _VERIFY_KEYS})
    return RewardSetup(funcs=funcs, weights=weights, labels=labels, kinds=kinds, accuracy_label=accuracy,
                       format_label=fmt, verify_params=verify)
