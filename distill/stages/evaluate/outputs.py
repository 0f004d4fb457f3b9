"""Write what ``distill eval`` measured: ``results.json``, ``samples.jsonl``, ``problems.jsonl``, ``summary.md``.

``results.json`` holds fractions in [0, 1] (``pass@1``, ``pass@1_stderr``, ``pass@1_ci95``, ``cons@<n>``,
``pass@<k>``, ``n``, ``num_problems``, sample counts and verdict counts; for code tasks no ``cons@n`` but
``failure_kinds``) plus how they were measured;
``summary.md`` shows them as percentages, the way the paper's tables do.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

from distill.stages.evaluate.scoring import Scored
from distill.verify.judge import summary_line

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
PROBLEMS_FILE = "problems.jsonl"
SUMMARY_FILE = "summary.md"
# Per-problem table in summary.md only for sets this small (AIME: 30).
MAX_TABLE_PROBLEMS = 60


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _clean(value: Any) -> Any:
    """JSON has no NaN: a single problem's stderr becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def metric_names(results: dict[str, Any]) -> list[str]:
    """``pass@1``, ``cons@n``, then ``pass@k`` by k."""
    passes = sorted((k for k in results if k.startswith("pass@") and k[5:].isdigit()), key=lambda k: int(k[5:]))
    cons = [k for k in results if k.startswith("cons@")]
    return passes[:1] + cons + passes[1:]


def pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_outputs(out: Path, scored: Scored, meta: dict[str, Any]) -> dict[str, Any]:
    """Write the four files; returns the results dict as written."""
    out.mkdir(parents=True, exist_ok=True)
    results = _clean({**scored.results, **meta})
    _write(out / RESULTS_FILE, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    _write(out / SAMPLES_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in scored.samples))
    _write(out / PROBLEMS_FILE, "".join(json.dumps(_clean(r), ensure_ascii=False) + "\n" for r in scored.problems))
    _write(out / SUMMARY_FILE, summary_markdown(results, scored.problems))
    return results


def summary_markdown(results: dict[str, Any], problems: list[dict[str, Any]]) -> str:
    n = results["n"]
    lines = [f"# {results.get('task_title', results.get('task', 'eval'))}: {results.get('model') or 'completions file'}",
             ""]
    if not results.get("complete", True):
        missing = results.get("missing", [])
        shown = ", ".join(f"{m['id']} ({m['have']}/{m['expected']})" for m in missing[:10])
        lines += [f"**INCOMPLETE**: {len(missing)} problem(s) have fewer than {n} samples and are scored on the "
                  f"samples they have: {shown}{' ...' if len(missing) > 10 else ''}.", ""]
    lines += ["| metric | value (%) |", "| --- | --- |"]
    for name in metric_names(results):
        value = pct(results[name])
        if name == "pass@1":
            ci = results.get("pass@1_ci95") or [None, None]
            value += f" ± {pct(results.get('pass@1_stderr'))} (stderr); 95% CI {pct(ci[0])}-{pct(ci[1])}"
        lines.append(f"| {name} | {value} |")
    lines += ["", f"{results['num_problems']} problems, n = {n} samples each "
              f"({results['samples_scored']} completions scored"
              + (f", {results['samples_dropped']} beyond n ignored" if results.get("samples_dropped") else "") + ").",
              "Verdicts: " + ", ".join(f"{k} {v}" for k, v in results.get("status_counts", {}).items()) + ".", ""]
    if results.get("judge"):
        lines += [summary_line(results["judge"]).replace("generative judge", "Generative judge", 1) + ".", ""]
    how = results.get("protocol") or {}
    if how:
        lines += ["## How this was measured", ""]
        lines += [f"- {k.replace('_', ' ')}: {html.escape(str(v), quote=False)}" for k, v in how.items()]
        lines.append("")
    if results.get("verify_mode") == "code":
        kinds = results.get("failure_kinds") or {}
        lines += ["Failures: " + (", ".join(f"{k} {v}" for k, v in kinds.items()) or "none") + ".", ""]
    if problems and len(problems) <= MAX_TABLE_PROBLEMS and results.get("verify_mode") == "code":
        lines += ["## Per problem", "", "| id | tests | correct | verdicts |", "| --- | --- | --- | --- |"]
        for p in problems:
            verdicts = ", ".join(f"{k} {v}" for k, v in p.get("statuses", {}).items())
            lines.append(f"| {_cell(p['id'])} | {_cell(p['gold'])} | {p['num_correct']}/{p['n']} | {_cell(verdicts)} |")
        lines.append("")
    elif problems and len(problems) <= MAX_TABLE_PROBLEMS:
        lines += ["## Per problem", "", "| id | gold | correct | majority answer | cons |", "| --- | --- | --- | --- | --- |"]
        for p in problems:
            maj = p.get("majority_answer")
            lines.append(f"| {_cell(p['id'])} | {_cell(p['gold'])} | {p['num_correct']}/{p['n']} | "
                         f"{'—' if maj is None else _cell(maj)} ({p.get('majority_count', 0)}) | "
                         f"{'yes' if p.get('cons') else 'no'} |")
        lines.append("")
    prompt = results.get("prompt_example")
    if prompt:
        lines += ["## First prompt, as the model saw it", "", "```", prompt, "```", ""]
    return "\n".join(lines)
