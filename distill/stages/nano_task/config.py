"""Config of ``distill nano-task``: the synthetic, verifiable arithmetic task of the nano recipe."""

from __future__ import annotations

from dataclasses import dataclass

from distill.config import option


@dataclass
class NanoTaskConfig:
    out: str = option("out/nano/task", "output folder: train.jsonl, heldout.jsonl, warmup/ (an SFT dataset)")
    train_problems: int = option(2000, "problems for GRPO and trace generation")
    heldout_problems: int = option(200, "held-out evaluation problems (never in any training set)")
    validation_problems: int = option(
        0, "problems for choosing checkpoints during training (validation.jsonl; disjoint from the others)")
    warmup_examples: int = option(4000, "gold-trace examples that warm the tiny base model up")
    warmup_slip_rate: float = option(
        0.0, "share of digit columns whose sum the warm-up traces get wrong by one (the working and answer "
             "follow from the slip): the base learns to slip at about this rate, so the rate, not luck, sets "
             "its accuracy, and RL has a habit to unlearn")
    min_value: int = option(10, "smallest operand")
    max_value: int = option(999, "largest operand")
    operand_sampling: str = option(
        "values", "how operands are drawn: 'values' (uniform over min_value..max_value, so from 10-999 nine in ten "
                  "have three digits and 3-digit + 2-digit sums are one problem in six) or 'digits' (a digit count "
                  "uniform over those the range holds, then a value: mixed-length sums become one in two)")
    seed: int = option(0, "seed of the problem generator")

    def __post_init__(self) -> None:
        if not 0 <= self.min_value < self.max_value:
            raise ValueError(f"need 0 <= min_value < max_value (got {self.min_value}, {self.max_value})")
        if self.operand_sampling not in ("values", "digits"):
            raise ValueError(f"operand_sampling must be 'values' or 'digits', got {self.operand_sampling!r}")
        if not 0.0 <= self.warmup_slip_rate <= 1.0:
            raise ValueError(f"warmup_slip_rate must be within [0, 1], got {self.warmup_slip_rate}")
        for name in ("train_problems", "heldout_problems", "validation_problems", "warmup_examples"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        pairs = (self.max_value - self.min_value + 1) ** 2
        wanted = self.train_problems + self.heldout_problems + self.validation_problems + self.warmup_examples
        if wanted > pairs // 2:
            raise ValueError(f"{wanted} problems requested but only {pairs} operand pairs exist; widen the range")
