"""The pipeline report: ``report.md`` plus plots, built only from what the steps wrote to disk.

Every number in it is read from a step's own output — eval scores from ``distill eval``'s ``results.json``,
GRPO curves from its per-step metrics file, filter counts from ``filter_stats.json``, wall times from
``run.json`` — so the report can never disagree with the artifacts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from distill import plots
from distill.data.jsonl import read_jsonl
from distill.runinfo import read_run
from distill.stages.pipeline.self_evolution import self_evolution_lines


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pct(x: Any) -> str:
    return "—" if x is None else f"{100 * float(x):.1f}"


def eval_rows(steps: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for step in steps:
        if step.stage != "eval":
            continue
        res = _read_json(step.out / "results.json")
        if not res:
            continue
        n = res.get("n")
        rows.append({
            "step": step.name,
            "model": str(getattr(step.config, "model", "") or ""),
            "pass@1": res.get("pass@1"),
            "stderr": res.get("pass@1_stderr"),
            "cons": res.get(f"cons@{n}") if n else None,
            "n": n,
            "problems": res.get("num_problems"),
        })
    return rows


def _grpo_evals(step: Any) -> list[str]:
    """The evals GRPO ran while training (on its eval_dataset) and, with keep_best, the step it kept."""
    path = step.out / "eval.jsonl"
    if not path.is_file():
        return []
    evals = read_jsonl(path)
    if not evals:
        return []
    rec = read_run(step.out) or {}
    selected = (rec.get("counts") or {}).get("selected_step")
    source = ((rec.get("config") or {}).get("eval_dataset")) or "problems held out from its dataset"
    lines = [f"Evaluated during training on `{source}` (pass@1 over {evals[0].get('n', '?')} samples):", "",
             "| step | pass@1 (%) | ± stderr |", "|---|---|---|"]
    for e in evals:
        mark = " **(kept)**" if selected is not None and e.get("step") == selected else ""
        lines.append(f"| {e.get('step')}{mark} | {_pct(e.get('pass@1'))} | {_pct(e.get('pass@1_stderr'))} |")
    if selected is not None:
        lines += ["", f"keep_best: the final model is the policy at step {selected}, the best of these evals."]
    return lines + [""]


def grpo_metrics(step: Any) -> list[dict[str, Any]]:
    for name in ("metrics.jsonl", "train_metrics.jsonl", "grpo_metrics.jsonl"):
        path = step.out / name
        if path.is_file():
            return read_jsonl(path)
    return []


def _series(rows: list[dict[str, Any]], *keys: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(rows):
        for key in keys:
            if row.get(key) is not None:
                xs.append(float(row.get("step", i + 1)))
                ys.append(float(row[key]))
                break
    return xs, ys


OPD_KEYS = (("loss", "divergence to the teacher (TRL's loss)"), ("logprob_gap", "student - teacher log-prob of "
            "the samples"), ("accuracy", "accuracy of the student's samples"), ("completion_length", "mean sample "
            "length (tokens)"))


def _opd_lines(step: Any, out: Path) -> list[str]:
    """An opd step's first-vs-last metrics (from its run.json) and its own curves."""
    rec = read_run(step.out) or {}
    counts = rec.get("counts") or {}
    if not counts:
        return []
    lines = [f"## On-policy distillation ({step.name})", "",
             f"Student `{rec.get('student')}`, teacher `{rec.get('teacher')}`, {rec.get('divergence', '')}; "
             f"{counts.get('steps')} steps, {counts.get('train_wall_s')} s.", "",
             "| metric | first steps | last steps |", "|---|---|---|"]
    for key, label in OPD_KEYS:
        first = next((v for k, v in counts.items() if k.startswith(f"{key}_first")), None)
        last = next((v for k, v in counts.items() if k.startswith(f"{key}_last")), None)
        if first is not None and last is not None:
            lines.append(f"| {label} | {first:.4g} | {last:.4g} |")
    lines.append("")
    for name in ("loss.png", "logprobs.png", "accuracy.png"):
        own = step.out / "plots" / name
        if own.is_file():
            lines.append(f"![{step.name} {name[:-4]}]({os.path.relpath(own, out)})")
    return lines + [""]


def write_report(out: Path, steps: list[Any], recipe: dict[str, Any]) -> Path:
    out = Path(out)
    lines = [f"# distill pipeline report — {out.name}", ""]
    if recipe.get("description"):
        lines += [str(recipe["description"]).strip(), ""]
    if recipe.get("__file__"):
        lines += [f"Recipe: `{recipe['__file__']}`", ""]

    rows = eval_rows(steps)
    if rows:
        lines += ["## Held-out evaluation (measured by `distill eval`)", "",
                  "| step | model | pass@1 (%) | ± stderr | cons@n (%) | n | problems |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['step']} | `{Path(r['model']).name or r['model']}` | {_pct(r['pass@1'])} | "
                         f"{_pct(r['stderr'])} | {_pct(r['cons'])} | {r['n']} | {r['problems']} |")
        plots.grouped_bars(out / "eval.png", [r["step"] for r in rows],
                           {"pass@1": [100 * (r["pass@1"] or 0) for r in rows],
                            "cons@n": [100 * (r["cons"] or 0) for r in rows]},
                           title="held-out accuracy", ylabel="%",
                           errors={"pass@1": [100 * (r["stderr"] or 0) for r in rows]})
        lines += ["", "![held-out accuracy](eval.png)", ""]

    for step in steps:
        if step.stage != "grpo":
            continue
        metrics = grpo_metrics(step)
        if not metrics:
            continue
        reward = _series(metrics, "reward", "reward_mean", "rewards/mean")
        acc = _series(metrics, "accuracy", "rewards/accuracy/mean", "reward_accuracy")
        length = _series(metrics, "completion_length", "mean_completion_length", "completions/mean_length")
        plots.line_plot(out / f"{step.name}-reward.png", {"reward": reward, "accuracy": acc},
                        title=f"{step.name}: reward and training accuracy", xlabel="step", smooth=25)
        plots.line_plot(out / f"{step.name}-length.png", {"mean completion length": length},
                        title=f"{step.name}: response length", xlabel="step", ylabel="tokens", smooth=25)
        lines += [f"## GRPO ({step.name})", "", f"{len(metrics)} logged steps.", ""]
        lines += _grpo_evals(step)
        lines += [f"![reward]({step.name}-reward.png)", f"![length]({step.name}-length.png)", ""]
        for name in ("accuracy.png", "response_length.png"):
            own = step.out / "plots" / name
            if own.is_file():
                lines.append(f"![{name[:-4]} (from the grpo stage)]({os.path.relpath(own, out)})")
        lines.append("")

    lines += self_evolution_lines(out, steps)      # grpo steps that watched behaviours: the R1-Zero curves

    for step in steps:
        if step.stage == "opd":
            lines += _opd_lines(step, out)

    for step in steps:
        if step.stage != "filter":
            continue
        stats = _read_json(step.out / "filter_stats.json")
        if not stats:
            continue
        lines += [f"## Filter ({step.name})", "",
                  f"Rows in: {stats.get('rows_in')}, kept: {stats.get('rows_kept')}.", ""]
        drops = stats.get("drops_first") or stats.get("drops") or {}
        if isinstance(drops, dict) and drops:
            lines += ["| dropped by (first failing filter) | rows |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in sorted(drops.items(), key=lambda kv: -kv[1])]
            lines.append("")

    lines += ["## Wall time per step", "", "| step | stage | wall (s) |", "|---|---|---|"]
    total = 0.0
    for step in steps:
        rec = read_run(step.out)
        wall = rec.get("wall_time_s") if rec else None
        total += float(wall or 0)
        lines.append(f"| {step.name} | {step.stage} | {'—' if wall is None else f'{wall:.1f}'} |")
    lines += [f"| **total** | | **{total:.1f}** |", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
