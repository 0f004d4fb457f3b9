"""Config of ``distill nano-task``: the synthetic, verifiable task of the nano recipes (arithmetic, or code)."""

from __future__ import annotations

from dataclasses import dataclass

from distill.config import option


@dataclass
class NanoTaskConfig:
    out: str = option("out/nano/task", "output folder: train.jsonl, heldout.jsonl, warmup/ (an SFT dataset)")
    kind: str = option("arithmetic", "arithmetic: column-by-column addition with a boxed answer; code: one-line "
                       "Python functions and stdin/stdout programs with a constant (plus_17(x) returns x + 17), "
                       "each problem with its tests in a 'tests' column, checked in the sandbox; reflect: the "
                       "arithmetic problems with warm-up traces that add quickly (forgetting carries) and sometimes check "
                       "(distill.stages.nano_task.reflect, recipes/nano-r1-zero.yaml)",
                       choices=["arithmetic", "code", "reflect"])
    train_problems: int = option(2000, "problems for GRPO and trace generation")
    heldout_problems: int = option(200, "held-out evaluation problems (never in any training set)")
    validation_problems: int = option(
        0, "problems for choosing checkpoints during training (validation.jsonl; disjoint from the others)")
    warmup_examples: int = option(4000, "gold-trace examples that warm the tiny base model up")
    warmup_slip_rate: float = option(
        0.0, "share of digit columns whose sum the warm-up traces get wrong by one (the working and answer "
             "follow from the slip): the base learns to slip at about this rate, so the rate, not luck, sets "
             "its accuracy, and RL has a habit to unlearn")
    warmup_check_rate: float = option(
        0.2, "reflect: share of warm-up traces that check their quick pass (a 'Wait, let me check.' and the "
             "working with carries); the rest stop after the quick pass")
    warmup_switch_rate: float = option(
        0.0, "reflect: share of the checking warm-up traces whose check switches to Chinese mid-reasoning "
             "(for the language-consistency ablation)")
    min_value: int = option(10, "smallest operand (code: smallest constant)")
    max_value: int = option(999, "largest operand (code: largest constant)")
    operand_sampling: str = option(
        "values", "how operands are drawn: 'values' (uniform over min_value..max_value, so from 10-999 nine in ten "
                  "have three digits and 3-digit + 2-digit sums are one problem in six) or 'digits' (a digit count "
                  "uniform over those the range holds, then a value: mixed-length sums become one in two)")
    seed: int = option(0, "seed of the problem generator")

    def __post_init__(self) -> None:
        if not 0 <= self.min_value < self.max_value:
            raise ValueError(f"need 0 <= min_value < max_value (got {self.min_value}, {self.max_value})")
        if self.kind not in ("arithmetic", "code", "reflect"):
            raise ValueError(f"kind must be 'arithmetic', 'code' or 'reflect', got {self.kind!r}")
        for name in ("warmup_check_rate", "warmup_switch_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if self.operand_sampling not in ("values", "digits"):
            raise ValueError(f"operand_sampling must be 'values' or 'digits', got {self.operand_sampling!r}")
        if not 0.0 <= self.warmup_slip_rate <= 1.0:
            raise ValueError(f"warmup_slip_rate must be within [0, 1], got {self.warmup_slip_rate}")
        for name in ("train_problems", "heldout_problems", "validation_problems", "warmup_examples"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        wanted = self.train_problems + self.heldout_problems + self.validation_problems + self.warmup_examples
        if self.kind == "code":
            from distill.stages.nano_task.code import universe

            size = len(universe(self.min_value, self.max_value))
            if wanted > size:
                raise ValueError(f"{wanted} problems requested but the code task has only {size} with constants "
                                 f"{self.min_value}..{self.max_value}; widen the range or ask for fewer")
            return
        pairs = (self.max_value - self.min_value + 1) ** 2
        if wanted > pairs // 2:
            raise ValueError(f"{wanted} problems requested but only {pairs} operand pairs exist; widen the range")
