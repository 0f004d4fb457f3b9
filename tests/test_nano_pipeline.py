"""The nano pipeline composes: every stage runs in order on the CI recipe, a SIGKILL mid-run resumes, and the
report is built from the stages' own outputs. (Learning is measured on recipes/nano.yaml; see README.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "nano-ci.yaml"
STEPS = ["task", "init", "base", "eval-base", "grpo", "eval-teacher", "traces", "filtered", "unfiltered",
         "student", "student-unfiltered", "eval-student", "eval-student-unfiltered"]


def _cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "distill", "pipeline", "--recipe", str(RECIPE), "--out", str(out)]


@pytest.mark.slow
def test_nano_ci_pipeline_runs_every_stage_and_resumes_after_sigkill(tmp_path):
    out = tmp_path / "nano"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(_cmd(out), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.time() + 600
    # Kill the whole process group once the GRPO step has started: the steps before it must survive.
    while time.time() < deadline and proc.poll() is None:
        if "[5/13] grpo (grpo) ->" in (tmp_path / "first.log").read_text(errors="replace"):
            time.sleep(2)
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.5)
    proc.wait(timeout=60)
    log.close()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]

    second = subprocess.run(_cmd(out), capture_output=True, text=True, env=env, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for name in STEPS[:4]:
        assert f"{name} (" in second.stdout and f"complete in {out / name}, skipped" in second.stdout, name
    assert "[5/13] grpo (grpo) ->" in second.stdout

    state = json.loads((out / "pipeline.json").read_text())
    assert [state["steps"][s]["status"] for s in STEPS] == ["complete"] * len(STEPS)
    for name in STEPS:
        run = json.loads((out / name / "run.json").read_text())
        assert run["status"] == "complete", name
    for name in [s for s in STEPS if s.startswith("eval-")]:
        res = json.loads((out / name / "results.json").read_text())
        assert res["n"] == 2 and res["num_problems"] == 16 and 0.0 <= res["pass@1"] <= res["pass@2"] <= 1.0
    # Lineage: the student's run.json names the filter output it trained on.
    student = json.loads((out / "student" / "run.json").read_text())
    assert str(out / "filtered") in json.dumps(student["inputs"])
    report = (out / "report.md").read_text()
    for name in [s for s in STEPS if s.startswith("eval-")]:
        assert f"| {name} |" in report
    assert "## Filter (filtered)" in report and "## Wall time per step" in report
    assert (out / "eval.png").stat().st_size > 1000

    third = subprocess.run(_cmd(out), capture_output=True, text=True, env=env, timeout=300)
    assert third.returncode == 0 and third.stdout.count("skipped") == len(STEPS)
