"""scripts/r1_zero_seeds.py: the cross-seed table and figure of the nano R1-Zero recipe, read from the files a
pipeline run writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "r1_zero_seeds.py"


def _write(path: Path, rows: list[dict] | dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(rows, dict):
        path.write_text(json.dumps(rows), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _fake_run(root: Path, *, lc: bool) -> None:
    _write(root / "eval-base" / "results.json", {"pass@1": 0.25})
    _write(root / "eval-grpo" / "results.json", {"pass@1": 0.75})
    # 20 steps: the first 10 are short and never reflect, the last 10 are long and always do
    steps = [{"step": i + 1, "completion_length": 30.0 if i < 10 else 60.0, "watch/reflection": 0.0 if i < 10 else 1.0,
              "watch/correction": 0.0 if i < 10 else 0.5} for i in range(20)]
    _write(root / "grpo" / "metrics.jsonl", steps)
    _write(root / "grpo" / "eval.jsonl", [{"step": 0, "pass@1": 0.2, "watch/mixed_language": 0.1},
                                          {"step": 20, "pass@1": 0.7, "watch/mixed_language": 0.4}])
    if lc:
        _write(root / "eval-grpo-lc" / "results.json", {"pass@1": 0.5})
        _write(root / "grpo-lc" / "metrics.jsonl", steps)
        _write(root / "grpo-lc" / "eval.jsonl", [{"step": 0, "pass@1": 0.2, "watch/mixed_language": 0.1},
                                                 {"step": 20, "pass@1": 0.5, "watch/mixed_language": 0.0}])
    _write(root / "pipeline.json", {"steps": {"base": {"wall_time_s": 60.0}, "grpo": {"wall_time_s": 30.0}}})


def test_table_figures_come_from_the_run_files_and_missing_runs_are_said(tmp_path):
    _fake_run(tmp_path / "seed0", lc=True)
    _fake_run(tmp_path / "seed1", lc=False)
    png = tmp_path / "fig" / "seeds.png"
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "seed0"), str(tmp_path / "seed1"),
                           "--plot", str(png)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| seed") and "folder" not in line]
    assert len(rows) == 4
    assert "25.0 → 75.0 (+50.0)" in rows[0] and "20.0 → 70.0 (step 20)" in rows[0]
    assert "30.0 → 60.0 (+100%)" in rows[0] and "0.0 → 100.0" in rows[0] and "10.0 → 40.0" in rows[0]
    assert "25.0 → 50.0 (+25.0)" in rows[1] and "10.0 → 0.0" in rows[1]
    assert "(not run)" in rows[3]
    assert "seed0: base 60s, grpo 30s; steps total 90 s (1.5 min)" in done.stdout
    assert png.is_file() and png.stat().st_size > 10_000


def test_a_missing_folder_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "nope")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "not a folder" in done.stderr and "Traceback" not in done.stderr
