"""The recipe's ``rewards:`` mapping -> TRL reward functions, weights, and what the metrics call them.

Rewards come from :func:`distill.rewards.build_rewards`, so GRPO scores answers with the same code as the
rejection filter and the eval. Two conveniences on top:

- an ``overlong`` entry without ``max_length`` gets the stage's ``max_completion_length`` (tokens), and
  without ``buffer`` a fifth of it, so the penalty ramps over the last 20% of the length budget;
- the first accuracy-type (else code-type) and format-type entries are remembered, so the per-step metrics can
  report ``accuracy`` and ``format_rate`` (their rewards are 1/0, so their batch means are those rates), and the
  held-out eval verifies with the accuracy reward's own settings (mode, think, fallback, timeout) and its
  ``prompt_has_think``.

>>> s = setup_rewards({"accuracy": {"weight": 1.0, "mode": "aime"}, "fmt": {"reward": "format", "weight": 0.1}},
...                   max_completion_length=512)
>>> s.labels, s.weights, s.accuracy_label, s.format_label, s.verify.mode
(['accuracy', 'fmt'], [1.0, 0.1], 'accuracy', 'fmt', 'aime')
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from distill.rewards import build_rewards
from distill.verify import VerifySettings

FORMAT_KINDS = ("format", "r1_zero_format")


@dataclass
class RewardSetup:
    funcs: list[Callable[..., list[float | None]]]
    weights: list[float]
    labels: list[str]
    kinds: list[str]
    accuracy_label: str | None = None
    format_label: str | None = None
    verify: VerifySettings = field(default_factory=VerifySettings)  # how the held-out eval verifies
    prompt_has_think: bool = False  # the accuracy reward's: the prompts end with a prefilled <think>

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
    # The code reward is code's accuracy (1/0 unless partial): it names the metric when no accuracy reward does.
    accuracy_metric = accuracy or next((lab for lab, k in zip(labels, kinds) if k == "code"), None)
    fmt = next((lab for lab, k in zip(labels, kinds) if k in FORMAT_KINDS), None)
    verify, prompt_has_think = VerifySettings(), False
    if accuracy is not None:
        # The reward's workers are not the eval's: the held-out eval verifies with one process per CPU.
        verify = dataclasses.replace(VerifySettings.from_options(spec[accuracy]), workers=None)
        prompt_has_think = bool(spec[accuracy].get("prompt_has_think", False))
    return RewardSetup(funcs=funcs, weights=weights, labels=labels, kinds=kinds, accuracy_label=accuracy_metric,
                       format_label=fmt, verify=verify, prompt_has_think=prompt_has_think)
