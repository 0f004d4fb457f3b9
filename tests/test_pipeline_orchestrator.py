"""`distill pipeline` mechanics on cheap steps: order, skipping finished steps, ranges, gates, errors."""

from __future__ import annotations

import json

import pytest

from distill.cli import main

RECIPE = """
description: two cheap steps
nano-task:
  train_problems: 20
  heldout_problems: 10
  warmup_examples: 10
tiny:
  layers: 1
  corpus_size: 300
pipeline:
  out: {out}
  steps:
    - {{name: task, stage: nano-task, set: {{seed: "{{seed}}"}}}}
    - {{name: model, stage: tiny}}
  check:
    - {{after: task, metric: counts/heldout, file: run.json, min: 5, max: 50}}
"""


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(RECIPE.format(out=tmp_path / "run"))
    return path


def test_runs_in_order_then_skips_finished_steps(recipe, tmp_path, capsys):
    assert main(["pipeline", "--recipe", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "[1/2] task" in out and "[2/2] model" in out and "gate after task" in out
    state = json.loads((tmp_path / "run" / "pipeline.json").read_text())
    assert [state["steps"][s]["status"] for s in ("task", "model")] == ["complete", "complete"]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "report.md").is_file()
    mtime = (tmp_path / "run" / "model" / "model.safetensors").stat().st_mtime
    assert main(["pipeline", "--recipe", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 2
    assert (tmp_path / "run" / "model" / "model.safetensors").stat().st_mtime == mtime


def test_changed_config_reruns_only_that_step(recipe, tmp_path, capsys):
    assert main(["pipeline", "--recipe", str(recipe)]) == 0
    capsys.readouterr()
    assert main(["pipeline", "--recipe", str(recipe), "--set", "tiny.seed=3"]) == 0
    out = capsys.readouterr().out
    assert "task (nano-task): complete" in out and "[2/2] model (tiny) ->" in out
    assert "model: stale (it holds a finished run of other settings)" in out


def test_a_rerun_step_makes_later_steps_rerun(recipe, tmp_path, capsys):
    assert main(["pipeline", "--recipe", str(recipe)]) == 0
    capsys.readouterr()
    assert main(["pipeline", "--recipe", str(recipe), "--set", "nano-task.train_problems=30"]) == 0
    out = capsys.readouterr().out
    assert "[1/2] task (nano-task) ->" in out
    assert "model: stale (upstream step 'task' reran)" in out and "[2/2] model (tiny) ->" in out


def test_seed_override_reaches_steps_and_placeholders(recipe, tmp_path, capsys):
    assert main(["pipeline", "--recipe", str(recipe), "--seed", "7", "--until", "task"]) == 0
    run = json.loads((tmp_path / "run" / "task" / "run.json").read_text())
    assert run["config"]["seed"] == 7
    assert not (tmp_path / "run" / "model").exists()


def test_from_requires_earlier_steps_complete(recipe, capsys):
    assert main(["pipeline", "--recipe", str(recipe), "--from", "model"]) == 2
    assert "not complete" in capsys.readouterr().err


def test_gate_outside_window_stops_with_a_message(recipe, capsys):
    assert main(["pipeline", "--recipe", str(recipe), "--set", "nano-task.heldout_problems=60"]) == 2
    err = capsys.readouterr().err
    assert "outside the window" in err and "counts/heldout = 60" in err


def test_unknown_stage_and_bad_steps_are_config_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline:\n  steps:\n    - {name: a, stage: nosuch}\n")
    assert main(["pipeline", "--recipe", str(bad)]) == 2
    assert "unknown stage 'nosuch'" in capsys.readouterr().err
    bad.write_text("pipeline:\n  steps:\n    - {name: a, stage: tiny, sett: {}}\n")
    assert main(["pipeline", "--recipe", str(bad)]) == 2
    assert "unknown key" in capsys.readouterr().err
    bad.write_text("tiny:\n  nosuchkey: 1\npipeline:\n  steps:\n    - {name: a, stage: tiny}\n")
    assert main(["pipeline", "--recipe", str(bad)]) == 2
    assert "nosuchkey" in capsys.readouterr().err


def test_dry_run_prints_configs_and_runs_nothing(recipe, tmp_path, capsys):
    assert main(["pipeline", "--recipe", str(recipe), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# step task (nano-task)" in out and "tiny:" in out
    assert not (tmp_path / "run" / "model").exists()


@pytest.mark.parametrize("content", ["{not json", "[1]", '{"steps": 3}'])
def test_a_damaged_pipeline_json_is_one_clear_error(recipe, tmp_path, capsys, content):
    assert main(["pipeline", "--recipe", str(recipe), "--until", "task"]) == 0
    (tmp_path / "run" / "pipeline.json").write_text(content)
    capsys.readouterr()
    assert main(["pipeline", "--recipe", str(recipe), "--until", "task"]) == 2
    assert "pipeline.json is damaged" in capsys.readouterr().err
