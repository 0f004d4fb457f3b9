"""distill filter on real teachers' traces (../shared/data/real-traces): the reasoning formats, language and code
rules make the right call on what R1-distill and Sky-T1 actually wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.stages.filter.config import FilterConfig
from distill.stages.filter.stage import run
from distill.verify.split import split_reasoning

TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-traces"
pytestmark = pytest.mark.skipif(not TRACES.is_dir(), reason=f"real traces not found at {TRACES}")


def as_trace_rows(name: str, *, prompt_has_think: bool) -> list[dict]:
    """The real rows as `distill generate` would have written them (finish_reason unknown: not recorded)."""
    rows = []
    for i, line in enumerate((TRACES / name).read_text(encoding="utf-8").splitlines()):
        src = json.loads(line)
        rows.append({"id": f"{Path(src['path']).parent.name}-{i}", "sample": 0, "problem": src["problem"],
                     "prompt": src["problem"] + ("\n<think>\n" if prompt_has_think else ""),
                     "prompt_has_think": prompt_has_think, "completion": src["completion"], "gold": src["gold"],
                     "verdict": None, "finish_reason": None, "teacher": src["model"], "source": src["source"]})
    return rows


def filter_rows(tmp_path: Path, rows: list[dict], **over) -> tuple[dict, dict[str, str]]:
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "shard-00000-of-00001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "sft"
    cfg = dict(traces=[str(folder)], out=str(out), decontaminate=False, require_stop=False, correctness=False,
               dedup=False, length=False, workers=1, verify_workers=0)
    cfg.update(over)
    run(FilterConfig(**cfg))
    dropped = {}
    for line in (out / "dropped.jsonl").read_text().splitlines():
        rec = json.loads(line)
        dropped[rec["id"]] = rec.get("reason") or rec.get("drop_reason") or str(rec.get("failures"))
    return json.loads((out / "filter_stats.json").read_text()), dropped


def test_r1_distill_math_english_reasoning_is_never_dropped_for_language_or_column_arithmetic(tmp_path):
    rows = as_trace_rows("r1-distill-math.jsonl", prompt_has_think=True)
    stats, dropped = filter_rows(tmp_path, rows)
    language = {k: v for k, v in dropped.items() if "language" in v}
    assert not language, language
    column = [r["id"] for r in rows if r["id"].startswith("problem_5749-")]
    assert column and not any("code_block" in dropped.get(i, "") for i in column)
    assert stats["rows_kept"] >= 140          # the 9 traces that never close are the only ones expected out


def test_sky_t1_closed_thoughts_kept_and_cut_ones_dropped_with_auto_format(tmp_path):
    rows = as_trace_rows("sky-t1-aime24.jsonl", prompt_has_think=False)
    closed = {r["id"] for r in rows if split_reasoning(r["completion"], "sky-t1").finished}
    cut = {r["id"] for r in rows} - closed
    assert closed and cut
    _, dropped = filter_rows(tmp_path, rows, readability=False)
    unfinished = ("no_think_close", "truncated", "empty_reasoning")
    assert not [i for i in closed if any(u in dropped.get(i, "") for u in unfinished)]
    assert all(any(u in dropped.get(i, "") for u in unfinished) for i in cut)


def test_a_format_the_flag_does_not_read_is_named_in_the_drops(tmp_path, capsys):
    from distill.errors import DataError

    rows = as_trace_rows("sky-t1-aime24.jsonl", prompt_has_think=False)[:6]
    with pytest.raises(DataError, match="no trace passed"):
        filter_rows(tmp_path, rows, readability=False, reasoning_format="think")
    out = capsys.readouterr().out
    assert "written in the sky-t1 format" in out and "pass --reasoning-format sky-t1" in out
    stats = json.loads((tmp_path / "sft" / "filter_stats.json").read_text())
    assert any("sky-t1" in h for h in stats["format_hints"])


def test_auto_format_names_no_other_format_for_unclosed_think_rows(tmp_path):
    """Under --reasoning-format auto an unclosed <think> trace is unfinished; no hint sends the user to a flag."""
    rows = as_trace_rows("r1-distill-math.jsonl", prompt_has_think=True)[:8]
    for r in rows[:2]:
        r["completion"] = r["completion"].split("</think>")[0][:400]
    stats, dropped = filter_rows(tmp_path, rows, readability=False)
    assert any("no_think_close" in dropped.get(r["id"], "") or "truncated" in dropped.get(r["id"], "")
               for r in rows[:2])
    assert stats["format_hints"] == []
