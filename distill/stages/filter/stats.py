"""Filter statistics: what came in, what was kept, and why the rest was dropped (``filter_stats.json``).

Two ways of counting drops, both kept:

- ``drops_first``: each dropped row once, under its first failing filter (the drop reason; they sum to
  rows_in - rows_kept);
- ``failing``: every filter a row fails (a row can count several times). Dedup and selection only see rows
  that passed every row filter, so their two counts are equal.

>>> s = {"rows_in": 4, "rows_kept": 1, "filters": {"correctness": True}, "drops_first_by_filter": {"correctness": 3},
...      "failing_by_filter": {"correctness": 3}, "drops_first": {"correctness:incorrect": 3}, "problems_in": 1,
...      "problems_kept": 1, "problems_with_nothing_kept": [], "pass_rate": {"mean": 0.25, "median": 0.25},
...      "bad_lines": [], "folders": {"t": {"in": 4, "kept": 1}}, "kept_tokens": None}
>>> print(format_table(s).splitlines()[0])
distill filter: 4 rows in -> 1 kept (25.0%) from 1 folder(s)
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from distill.stages.filter.apply import Outcome
from distill.stages.filter.rules import ALL_FILTERS
from distill.stages.filter.trace import Trace
from distill.verify.judge import summary_line


def _summary(values: Sequence[int]) -> dict[str, float] | None:
    if not values:
        return None
    vals = sorted(values)
    return {"count": len(vals), "min": vals[0], "median": vals[len(vals) // 2],
            "mean": round(sum(vals) / len(vals), 1), "p95": vals[min(len(vals) - 1, int(0.95 * len(vals)))],
            "max": vals[-1], "total": sum(vals)}


def build_stats(traces: Sequence[Trace], outcome: Outcome, *, filters: dict[str, bool],
                bad_lines: Sequence[str] = (), extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stats dict written to ``filter_stats.json`` (see the module docstring)."""
    kept_ids = {t.index for t in outcome.kept}
    drops_first: Counter[str] = Counter()
    drops_first_by_filter: Counter[str] = Counter()
    failing: Counter[str] = Counter()
    failing_by_filter: Counter[str] = Counter()
    for failures in outcome.failures.values():
        drops_first[failures[0]] += 1
        drops_first_by_filter[failures[0].split(":", 1)[0]] += 1
        for f in failures:
            failing[f] += 1
        for name in dict.fromkeys(f.split(":", 1)[0] for f in failures):
            failing_by_filter[name] += 1

    per_problem_in: Counter[str] = Counter(t.id for t in traces)
    per_problem_kept: Counter[str] = Counter(t.id for t in outcome.kept)
    pass_rate = {pid: round(per_problem_kept[pid] / n, 4) for pid, n in per_problem_in.items()}
    nothing = sorted(pid for pid in per_problem_in if per_problem_kept[pid] == 0)
    rates = list(pass_rate.values())

    def breakdown(key: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for t in traces:
            entry = out.setdefault(str(getattr(t, key)), {"in": 0, "kept": 0})
            entry["in"] += 1
            entry["kept"] += t.index in kept_ids
        return out

    kept_lengths = [t.num_tokens for t in outcome.kept if t.num_tokens is not None]
    stats: dict[str, Any] = {
        "rows_in": len(traces),
        "rows_kept": len(outcome.kept),
        "keep_rate": round(len(outcome.kept) / len(traces), 4) if traces else 0.0,
        "filters": {name: filters.get(name, False) for name in ALL_FILTERS},
        "drops_first": dict(drops_first.most_common()),
        "drops_first_by_filter": {n: drops_first_by_filter[n] for n in ALL_FILTERS if drops_first_by_filter[n]},
        "failing": dict(failing.most_common()),
        "failing_by_filter": {n: failing_by_filter[n] for n in ALL_FILTERS if failing_by_filter[n]},
        "problems_in": len(per_problem_in),
        "problems_kept": sum(1 for pid in per_problem_in if per_problem_kept[pid]),
        "problems_with_nothing_kept": nothing,
        "pass_rate": {"mean": round(statistics.fmean(rates), 4) if rates else 0.0,
                      "median": round(statistics.median(rates), 4) if rates else 0.0},
        "pass_rate_per_problem": pass_rate,
        "verdicts": dict(Counter(t.verdict or "none" for t in traces).most_common()),
        "verdict_sources": dict(Counter(t.verdict_source for t in traces if t.verdict is not None).most_common()),
        "teachers": breakdown("teacher"),
        "folders": breakdown("folder"),
        "kept_tokens": _summary(kept_lengths),
        "bad_lines": list(bad_lines),
        "timing_s": {k: round(v, 3) for k, v in outcome.seconds.items()},
        "row_filter_workers": outcome.workers,
    }
    stats.update(extra or {})
    return stats


def format_table(stats: dict[str, Any], *, max_ids: int = 10) -> str:
    """The summary printed at the end of ``distill filter``."""
    rows_in, kept = stats["rows_in"], stats["rows_kept"]
    pct = 100.0 * kept / rows_in if rows_in else 0.0
    lines = [f"distill filter: {rows_in:,} rows in -> {kept:,} kept ({pct:.1f}%) "
             f"from {len(stats['folders'])} folder(s)"]
    bad = stats.get("bad_lines") or []
    if bad:
        lines.append(f"  {len(bad)} bad line(s) skipped (not in the dataset):")
        lines += [f"    {b}" for b in bad[:max_ids]]
        if len(bad) > max_ids:
            lines.append(f"    ... and {len(bad) - max_ids} more (all listed in filter_stats.json)")
    lines.append(f"  {'filter':<17}{'on':<5}{'dropped (first)':>16}{'failing (any)':>15}")
    for name, on in stats["filters"].items():
        first = stats["drops_first_by_filter"].get(name, 0)
        anyf = stats["failing_by_filter"].get(name, 0)
        lines.append(f"  {name:<17}{'yes' if on else 'OFF':<5}{first:>16,}{anyf:>15,}")
    if stats["drops_first"]:
        lines.append("  drop reasons (first failing filter):")
        width = max(len(r) for r in stats["drops_first"])
        lines += [f"    {r:<{width}}  {n:>8,}" for r, n in stats["drops_first"].items()]
    decon = stats.get("decontamination")
    if decon is not None:
        if not decon.get("on"):
            lines.append("  decontamination OFF: the dataset was NOT checked against eval problems")
        else:
            sets = ", ".join(f"{s['source']} ({s['problems']})" for s in decon["sets"])
            hits = decon["contaminated_problems"]
            lines.append(f"  decontamination ({decon['ngram']}-grams) against {sets}: "
                         f"{len(hits)} problem(s) overlap" + (": " + ", ".join(
                             f"{pid} ~ {label}" for pid, label in list(hits.items())[:max_ids]) if hits else ""))
    judge = stats.get("judge") or {}
    if "questions" in judge:
        lines.append("  " + summary_line(judge))
    nothing = stats["problems_with_nothing_kept"]
    shown = ", ".join(nothing[:max_ids]) + (f", ... (+{len(nothing) - max_ids})" if len(nothing) > max_ids else "")
    lines.append(f"  problems: {stats['problems_in']:,} in, {stats['problems_kept']:,} with a kept trace, "
                 f"{len(nothing):,} with nothing kept" + (f": {shown}" if nothing else ""))
    rate = stats["pass_rate"]
    lines.append(f"  pass rate per problem: mean {100 * rate['mean']:.1f}%, median {100 * rate['median']:.1f}%")
    if len(stats["folders"]) > 1:
        for folder, c in stats["folders"].items():
            lines.append(f"    {folder}: {c['in']:,} in, {c['kept']:,} kept")
    tok = stats.get("kept_tokens")
    if tok:
        lines.append(f"  kept lengths ({stats.get('token_count', 'tokens')}): median {tok['median']:,}, "
                     f"p95 {tok['p95']:,}, max {tok['max']:,}, total {tok['total']:,}")
    return "\n".join(lines)
