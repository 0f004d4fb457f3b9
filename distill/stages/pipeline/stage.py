"""``distill pipeline``: run a recipe's steps in order, skipping the ones already done.

The orchestrator sits beside the CLI, above the stages. A step is ``{name, stage, set}``: its config is the
recipe's section for ``stage`` with ``set`` merged on top, ``{out}`` and ``{seed}`` substituted, and ``out``
defaulting to ``<pipeline out>/<name>``. A step whose folder already holds a complete ``run.json`` with the
same config fingerprint is skipped, so a killed pipeline resumes at the step it was in (and that step resumes
from its own checkpoints or shards where the stage supports it). Gates (``pipeline.check``) stop the run
with a message when a measured result falls outside a window, e.g. a base model too weak or too strong for RL
to show anything.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from distill.config import build_config, config_fingerprint, config_to_dict, deep_merge, dump_config
from distill.errors import ConfigError, DistillError
from distill.outdir import clear, is_empty
from distill.runinfo import is_complete, read_run
from distill.stages import COMMANDS, get_command
from distill.stages.pipeline.config import PipelineConfig
from distill.stages.pipeline.report import write_report

log = logging.getLogger(__name__)


class GateError(DistillError):
    """A pipeline gate failed: a measured result is outside the window the next steps need."""


@dataclass
class Step:
    name: str
    stage: str
    config: Any
    out: Path


def _substitute(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, rep in mapping.items():
            value = value.replace("{" + key + "}", rep)
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, mapping) for v in value]
    return value


def plan_steps(cfg: PipelineConfig, recipe: dict[str, Any]) -> list[Step]:
    """Resolve every step's config (validating all of them before anything runs)."""
    commands = {c.name: c for c in COMMANDS if c.name != "pipeline"}
    source = recipe.get("__file__", "<recipe>")
    if not cfg.steps:
        raise ConfigError(f"{source}: pipeline.steps is empty; list the steps to run")
    mapping = {"out": str(cfg.out), "seed": str(cfg.seed if cfg.seed is not None else 0)}
    sets = recipe.get("__sets__") or {}
    steps = []
    for spec in cfg.steps:
        stage = spec["stage"]
        if stage not in commands:
            raise ConfigError(f"{source}: step {spec['name']!r}: unknown stage {stage!r}. "
                              f"Valid stages: {', '.join(commands)}")
        cls = commands[stage].load_config_class()
        values = deep_merge(dict(recipe.get(stage) or {}), dict(spec.get("set") or {}))
        values = deep_merge(values, dict(sets.get(stage) or {}))     # the command line's --set wins over a step's
        names = {f.name for f in fields(cls)}
        if cfg.seed is not None and "seed" in names:
            values["seed"] = cfg.seed
        values.setdefault("out", str(Path(cfg.out) / spec["name"]))
        values = _substitute(values, mapping)
        step_cfg = build_config(cls, values, source=f"{source} step {spec['name']!r} ({stage})")
        steps.append(Step(spec["name"], stage, step_cfg, Path(getattr(step_cfg, "out", Path(cfg.out) / spec["name"]))))
    return steps


def _metric(folder: Path, file: str, metric: str) -> float:
    path = folder / file
    if not path.is_file():
        raise GateError(f"gate needs {path}, which the step did not write")
    value: Any = json.loads(path.read_text())
    for part in metric.split("/"):
        if not isinstance(value, dict) or part not in value:
            raise GateError(f"{path}: no metric {metric!r}")
        value = value[part]
    return float(value)


def _check_gates(cfg: PipelineConfig, step: Step) -> list[str]:
    notes = []
    for gate in cfg.check:
        if gate["after"] != step.name:
            continue
        value = _metric(step.out, gate.get("file", "results.json"), gate["metric"])
        lo, hi = gate.get("min"), gate.get("max")
        line = f"gate after {step.name}: {gate['metric']} = {value:.4f} (window [{lo}, {hi}])"
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            why = gate.get("why", "later steps cannot show a meaningful change from here")
            raise GateError(f"{line} — outside the window: {why}. Adjust the recipe (e.g. the warm-up steps or "
                            "learning rate) and rerun; finished steps are kept.")
        print(line + " — ok")
        notes.append(line)
    return notes


def _clear_output(step: Step, root: Path, why: str) -> None:
    """Remove a finished step's stale output before rerunning it: only folders inside the pipeline's root that
    the step's own command made (see :mod:`distill.outdir`)."""
    target = step.out.resolve()
    if root.resolve() not in target.parents:
        raise DistillError(f"step {step.name!r} must rerun ({why}) but its output {step.out} lies outside "
                           f"the pipeline folder {root}; delete it yourself or point the step inside {root}")
    print(f"{step.name}: stale ({why}); removing {step.out}")
    clear(step.out, step.stage)


def _read_state(path: Path) -> dict[str, Any]:
    """``pipeline.json`` (each step's status and lineage), or a fresh one; a damaged file is one clear error."""
    if not path.is_file():
        return {"steps": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        state = exc
    if not isinstance(state, dict) or not isinstance(state.get("steps"), dict):
        raise DistillError(f"{path} is damaged ({state if isinstance(state, Exception) else 'not a pipeline state'});"
                           " delete it and rerun: finished steps are still recognised by their run.json files")
    return state


# Commands that continue an interrupted run of the same config in their folder (checkpoints, shards, chunks).
RESUMING = ("sft", "grpo", "opd", "generate", "eval")


def _resume_or_clear(step: Step, root: Path) -> None:
    """A step whose folder holds an unfinished run: resumed when its command can and the run's config is this
    step's (its fingerprint in run.json), else cleared (only what the step's command made; see _clear_output)."""
    rec = read_run(step.out) or {}
    same = rec.get("config_fingerprint") == config_fingerprint(step.config)
    if step.stage in RESUMING and same:
        print(f"{step.name}: resuming the interrupted run in {step.out}")
        return
    state = "a finished" if rec.get("status") == "complete" else "an unfinished"
    why = f"it holds {state} run" + ("" if same else " of other settings")
    _clear_output(step, root, why)


def run_pipeline(cfg: PipelineConfig, recipe: dict[str, Any]) -> dict[str, Any]:
    steps = plan_steps(cfg, recipe)
    if cfg.plan:
        from distill.stages.pipeline.plan import format_pipeline_plan

        print(format_pipeline_plan(steps, gpus_per_node=cfg.gpus_per_node))
        return {"plan": True}
    names = [s.name for s in steps]
    first = names.index(cfg.from_step) if cfg.from_step else 0
    last = names.index(cfg.until) if cfg.until else len(steps) - 1
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "pipeline.json"
    state = _read_state(state_path)
    state["config"] = config_to_dict(cfg)

    def save() -> None:
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, default=str))
        tmp.replace(state_path)

    def lineage(upto: int) -> dict[str, Any]:
        """The run ids of the steps before ``upto``: a step is stale when they changed since it ran."""
        return {s.name: (read_run(s.out) or {}).get("run_id") for s in steps[:upto]}

    for i, step in enumerate(steps):
        if i < first:
            if not is_complete(step.out, step.config):
                raise DistillError(f"--from {cfg.from_step}: earlier step {step.name!r} is not complete in "
                                   f"{step.out}; run it first (drop --from)")
            continue
        if i > last:
            break
        done = is_complete(step.out, step.config)
        recorded = state["steps"].get(step.name, {}).get("upstream")
        stale = [k for k, v in lineage(i).items() if recorded is not None and recorded.get(k) != v]
        if cfg.dry_run:
            print(f"# step {step.name} ({step.stage}) -> {step.out}: {'complete, skip' if done and not cfg.force else 'run'}")
            print(dump_config(step.stage, step.config))
            continue
        if done and not cfg.force and not stale:
            print(f"[{i + 1}/{len(steps)}] {step.name} ({step.stage}): complete in {step.out}, skipped")
            entry = state["steps"].setdefault(step.name, {})
            entry.update(status="complete", out=str(step.out))
            entry.setdefault("upstream", lineage(i))
            _check_gates(cfg, step)
            continue
        if done or stale:
            why = f"upstream step {stale[0]!r} reran" if stale else "--force"
            _clear_output(step, out, why)
        elif not is_empty(step.out):
            _resume_or_clear(step, out)
        print(f"[{i + 1}/{len(steps)}] {step.name} ({step.stage}) -> {step.out}", flush=True)
        state["steps"][step.name] = {"stage": step.stage, "out": str(step.out), "status": "running"}
        save()
        start = time.time()
        try:
            get_command(step.stage).run(step.config)
        except BaseException:
            state["steps"][step.name].update(status="failed", wall_time_s=round(time.time() - start, 1))
            save()
            raise
        state["steps"][step.name].update(status="complete", wall_time_s=round(time.time() - start, 1),
                                         upstream=lineage(i))
        save()
        print(f"[{i + 1}/{len(steps)}] {step.name} done in {time.time() - start:.1f} s", flush=True)
        state["steps"][step.name]["gates"] = _check_gates(cfg, step)
        save()
    if cfg.report and not cfg.dry_run and last == len(steps) - 1:

        path = write_report(out, steps, recipe)
        print(f"report: {path}")
    return state


def run(cfg: PipelineConfig, recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """CLI entry: ``recipe`` is the whole recipe (all sections, ``--set`` applied) the steps build on."""
    return run_pipeline(cfg, recipe or {})
