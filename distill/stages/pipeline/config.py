"""Config of ``distill pipeline``: stages in order, each a step of the recipe's ``pipeline.steps`` list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill.config import option


@dataclass
class PipelineConfig:
    out: str = option("out/pipeline", "root folder; each step writes into OUT/<step name> unless it sets 'out'")
    steps: list[Any] = option([], "ordered steps: {name, stage, set: {option: value}}; values may use {out} and "
                                  "{seed}; a step's options are the recipe's section for its stage + 'set'",
                              flag=False)
    seed: int | None = option(None, "if set, overrides 'seed' in every step that has one (for seed sweeps)")
    from_step: str | None = option(None, "first step to run (earlier ones must be complete)", flag="--from")
    until: str | None = option(None, "last step to run")
    force: bool = option(False, "rerun steps even when their folder holds a complete run of the same config")
    check: list[Any] = option([], "gates after steps: {after, metric, min, max, file}: stop with a message when "
                                  "a result falls outside the window (e.g. the base model's pass@1 before RL)",
                              flag=False)
    report: bool = option(True, "write OUT/report.md and its plots at the end")
    dry_run: bool = option(False, "print each step's resolved config and whether it would run, then stop")
    plan: bool = option(False, "print every step's model, GPUs, memory per GPU, tokens and GPU-hours at the recipe's "
                               "scale (no weights, no GPU), refusing steps that disagree; then stop")
    gpus_per_node: int = option(8, "--plan: GPUs per node the launch configs are checked against")

    def __post_init__(self) -> None:
        names = []
        for i, step in enumerate(self.steps):
            if not isinstance(step, dict) or "name" not in step or "stage" not in step:
                raise ValueError(f"pipeline.steps[{i}] must be a mapping with 'name' and 'stage' (got {step!r})")
            unknown = set(step) - {"name", "stage", "set"}
            if unknown:
                raise ValueError(f"pipeline.steps[{i}] ({step['name']}): unknown key(s) {sorted(unknown)}; "
                                 "valid: name, stage, set")
            if step["name"] in names:
                raise ValueError(f"pipeline.steps: duplicate step name {step['name']!r}")
            names.append(step["name"])
        for bound in (self.from_step, self.until):
            if bound is not None and names and bound not in names:
                raise ValueError(f"no step named {bound!r}; steps: {', '.join(names)}")
        for i, gate in enumerate(self.check):
            if not isinstance(gate, dict) or "after" not in gate or "metric" not in gate:
                raise ValueError(f"pipeline.check[{i}] must be a mapping with 'after' and 'metric'")
            if names and gate["after"] not in names:
                raise ValueError(f"pipeline.check[{i}]: no step named {gate['after']!r}")
