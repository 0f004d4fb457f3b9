"""The report's R1-Zero section: a GRPO run recorded the way the paper records R1-Zero's self-evolution.

For each ``grpo`` step that counted behaviours (``grpo.watch``, :mod:`distill.stages.grpo.watch`): one figure
with the paper's three curves over RL steps (held-out pass@1 from the stage's ``eval.jsonl``, mean response
length on the training prompts and each watcher's share of the rollouts, both from ``metrics.jsonl``), their
first-vs-last figures, and one real held-out sample of the last eval that every pattern watcher matches and
that is correct (on the nano reflection task: a rollout that catches and fixes its own slip). With two or more
such steps, a table compares them (the language-consistency ablation): rewards, held-out pass@1 from the
``distill eval`` step that scored the step's model, and the watchers' shares of the last eval's samples.
Everything is read from the steps' files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.data.jsonl import read_jsonl
from distill.runinfo import read_run

WINDOW = 10          # steps averaged for the "start" and "end" figures of per-step curves


def _rows(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path) if path.is_file() else []


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ends(rows: list[dict[str, Any]], key: str) -> tuple[float | None, float | None]:
    vals = [float(r[key]) for r in rows if r.get(key) is not None]
    n = max(1, min(WINDOW, len(vals) // 2))
    return _mean(vals[:n]), _mean(vals[-n:])


def _fmt(x: float | None, pct: bool) -> str:
    return "—" if x is None else (f"{100 * x:.1f}%" if pct else f"{x:.1f}")


def _smooth(ys: list[float], window: int = WINDOW) -> list[float]:
    return [sum(ys[max(0, i - window + 1): i + 1]) / len(ys[max(0, i - window + 1): i + 1]) for i in range(len(ys))]


def curves_figure(path: Path, metrics: list[dict[str, Any]], evals: list[dict[str, Any]], title: str) -> Path:
    """Three panels over steps: held-out pass@1, mean response length, watchers' shares of the rollouts."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), dpi=110)
    axes[0].plot([e["step"] for e in evals], [100 * e["pass@1"] for e in evals], marker="o")
    axes[0].set(title=f"held-out pass@1 (n={evals[0].get('n', '?') if evals else '?'})", xlabel="step", ylabel="%")
    pts = [(r["step"], r["completion_length"]) for r in metrics if r.get("completion_length") is not None]
    if pts:
        axes[1].plot([p[0] for p in pts], [p[1] for p in pts], alpha=0.3)
        axes[1].plot([p[0] for p in pts], _smooth([p[1] for p in pts]), linewidth=2)
    axes[1].set(title="mean response length (training prompts)", xlabel="step", ylabel="tokens")
    for key in sorted({k for r in metrics for k in r if k.startswith("watch/")}):
        pts = [(r["step"], r[key]) for r in metrics if r.get(key) is not None]
        axes[2].plot([p[0] for p in pts], _smooth([100 * p[1] for p in pts]), label=key[6:], linewidth=2)
    axes[2].set(title=f"share of rollouts ({WINDOW}-step mean)", xlabel="step", ylabel="%")
    if axes[2].lines:
        axes[2].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def quoted_rollout(step_out: Path, evals: list[dict[str, Any]], patterns: list[str]) -> dict[str, Any] | None:
    """A correct sample of the last held-out eval that every pattern matches (None when there is none)."""
    import re

    if not evals or not patterns:
        return None
    last = evals[-1]["step"]
    for rec in _rows(step_out / "eval" / f"step-{last:06d}.jsonl"):
        if rec.get("status") == "correct" and all(re.search(p, rec.get("completion", "")) for p in patterns):
            return {**rec, "step": last}
    return None


def _scored_by(steps: list[Any], grpo_step: Any) -> float | None:
    """pass@1 of the ``distill eval`` step whose model is this grpo step's output."""
    for step in steps:
        if step.stage == "eval" and Path(str(getattr(step.config, "model", ""))) == grpo_step.out:
            try:
                return json.loads((step.out / "results.json").read_text()).get("pass@1")
            except (OSError, ValueError):
                return None
    return None


def _run_section(step: Any, out: Path, metrics: list[dict[str, Any]], evals: list[dict[str, Any]],
                 watch: dict[str, Any]) -> list[str]:
    fig = curves_figure(out / f"{step.name}-r1-zero.png", metrics, evals, f"{step.name}: GRPO from the base")
    lines = [f"### {step.name}", "", f"![{step.name} R1-Zero curves]({fig.name})", "",
             "| measure | start | end |", "|---|---|---|"]
    if evals:
        lines.append(f"| held-out pass@1 (n={evals[0].get('n')}, steps {evals[0]['step']} → {evals[-1]['step']}) | "
                     f"{_fmt(evals[0]['pass@1'], True)} | {_fmt(evals[-1]['pass@1'], True)} |")
    first, last = _ends(metrics, "completion_length")
    lines.append(f"| mean response length, training rollouts (tokens; first/last {WINDOW} steps) | "
                 f"{_fmt(first, False)} | {_fmt(last, False)} |")
    for name in watch:
        first, last = _ends(metrics, f"watch/{name}")
        lines.append(f"| {name}: share of training rollouts (first/last {WINDOW} steps) | {_fmt(first, True)} | "
                     f"{_fmt(last, True)} |")
        if evals and f"watch/{name}" in evals[-1]:
            lines.append(f"| {name}: share of held-out samples | {_fmt(evals[0].get(f'watch/{name}'), True)} | "
                         f"{_fmt(evals[-1].get(f'watch/{name}'), True)} |")
    quote = quoted_rollout(step.out, evals, [str(v["pattern"]) for v in watch.values() if "pattern" in (v or {})])
    if quote:
        lines += ["", f"A held-out sample of the policy at step {quote['step']} (problem `{quote['id']}`, correct) "
                      "that catches and fixes its own slip:", "", "```", quote["completion"].strip(), "```"]
    return lines + [""]


def self_evolution_lines(out: Path, steps: list[Any]) -> list[str]:
    """The report section (empty when no grpo step watched anything)."""
    runs = []
    for step in steps:
        rec = (read_run(step.out) or {}) if step.stage == "grpo" else {}
        watch = (rec.get("config") or {}).get("watch") or {}
        if watch:
            runs.append((step, rec, watch, _rows(step.out / "metrics.jsonl"), _rows(step.out / "eval.jsonl")))
    if not runs:
        return []
    lines = ["## Self-evolution during GRPO (the R1-Zero curves)", "",
             "Held-out pass@1 at regular steps, mean response length on the training prompts and the share of "
             "rollouts showing each watched behaviour, per step; the behaviours are counted, never rewarded.", ""]
    for step, _, watch, metrics, evals in runs:
        lines += _run_section(step, out, metrics, evals, watch)
    if len(runs) > 1:
        names = sorted({k for *_, evals in runs for k in (evals[-1] if evals else {}) if k.startswith("watch/")})
        lines += ["### The GRPO runs compared", "",
                  "| run | rewards (weight) | held-out pass@1, `distill eval` | last in-training eval pass@1 | "
                  + " | ".join(f"{n[6:]} (held-out samples)" for n in names) + " |",
                  "|---|---|---|---|" + "---|" * len(names)]
        for step, rec, _, _, evals in runs:
            rewards = ", ".join(f"{k} ({v:g})" for k, v in (rec.get("rewards") or {}).items())
            end = evals[-1] if evals else {}
            lines.append(f"| {step.name} | {rewards} | {_fmt(_scored_by(steps, step), True)} | "
                         f"{_fmt(end.get('pass@1'), True)} | " + " | ".join(_fmt(end.get(n), True) for n in names)
                         + " |")
        lines.append("")
    return lines
