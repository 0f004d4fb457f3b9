"""distill sft survives interruption: kill -9 mid-run then --resume, and a graceful Ctrl-C then a plain rerun,
both end at the same step (and loss) as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sft import rows

pytestmark = pytest.mark.slow

# 16 examples, one per step, three epochs: 48 optimizer steps; a checkpoint every 4.
SETTINGS = dict(max_length=256, learning_rate=3e-3, warmup_ratio=0.0, num_train_epochs=3.0, max_steps=-1,
                per_device_train_batch_size=1, gradient_accumulation_steps=1, packing=False,
                gradient_checkpointing=False, logging_steps=1, save_steps=4, seed=0)
STEPS = 48


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    import datasets

    folder = tmp_path_factory.mktemp("resume-data") / "data"
    datasets.Dataset.from_list(rows(16)).save_to_disk(str(folder))
    return folder


def cfg_for(tiny_qwen: Path, dataset: Path, out: Path, **over):
    from distill.stages.sft.config import SFTStageConfig

    return SFTStageConfig(student="tiny-qwen", model=str(tiny_qwen), dataset=str(dataset), out=str(out),
                          **{**SETTINGS, **over})


def cli_args(tiny_qwen: Path, dataset: Path, out: Path) -> list[str]:
    args = ["sft", "--student", "tiny-qwen", "--model", str(tiny_qwen), "--dataset", str(dataset), "--out", str(out)]
    for key, value in SETTINGS.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            args += [flag, str(value)]
    return args


@pytest.fixture(scope="module")
def reference(tiny_qwen, dataset_dir, tmp_path_factory) -> dict:
    """The uninterrupted run's run.json."""
    from distill.stages.sft.stage import run

    out = run(cfg_for(tiny_qwen, dataset_dir, tmp_path_factory.mktemp("ref") / "student"))
    return json.loads((out / "run.json").read_text())


def losses(out: Path) -> list[tuple[int, float]]:
    logged = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in logged if "loss" in r]


def test_killed_run_resumes_to_the_same_step_count(reference, tiny_qwen, dataset_dir, tmp_path):
    out = tmp_path / "student"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "distill", *cli_args(tiny_qwen, dataset_dir, out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    killed_after = None
    while time.time() < deadline and proc.poll() is None:
        done = sorted(int(p.parent.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*/trainer_state.json"))
        if done and done[-1] >= 8:
            proc.send_signal(signal.SIGKILL)
            killed_after = done[-1]
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_after is not None, "the run finished or stalled before it could be killed:\n" + \
        proc.stdout.read().decode()[-3000:]
    assert proc.returncode == -signal.SIGKILL
    assert killed_after < STEPS
    assert json.loads((out / "run.json").read_text())["status"] == "running"

    res = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "resuming from checkpoint-" in res.stdout
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "complete"
    assert rec["counts"]["steps"] == reference["counts"]["steps"] == STEPS
    assert int(rec["resumed_from"].rsplit("-", 1)[1]) >= killed_after
    logged = losses(out)
    assert [s for s, _ in logged] == list(range(1, STEPS + 1))             # every step once, none twice
    assert rec["counts"]["last_loss"] == pytest.approx(reference["counts"]["last_loss"], rel=1e-3)


def test_ctrl_c_checkpoints_and_a_plain_rerun_continues(reference, tiny_qwen, dataset_dir, tmp_path, monkeypatch,
                                                      sigint_default):
    from distill.stages.sft.callbacks import LossRecorder
    from distill.stages.sft.stage import run

    original = LossRecorder.on_log
    sent = []

    def on_log(self, args, state, control, logs=None, **kw):
        original(self, args, state, control, logs=logs, **kw)
        if state.global_step == 5 and not sent:
            sent.append(5)
            signal.raise_signal(signal.SIGINT)                              # as if the user pressed Ctrl-C

    monkeypatch.setattr(LossRecorder, "on_log", on_log)
    out = tmp_path / "student"
    cfg = cfg_for(tiny_qwen, dataset_dir, out)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "partial" and rec["counts"]["stopped_at_step"] == 6
    assert (out / "checkpoints" / "checkpoint-6" / "trainer_state.json").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler     # handler restored

    run(cfg)                                                                 # same command: resumes by itself
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "complete" and rec["counts"]["steps"] == STEPS
    assert rec["resumed_from"].endswith("checkpoint-6")
    assert [s for s, _ in losses(out)] == list(range(1, STEPS + 1))
    assert rec["counts"]["last_loss"] == pytest.approx(reference["counts"]["last_loss"], rel=1e-3)


def test_a_pipeline_interrupted_mid_sft_resumes_from_its_checkpoint(tiny_qwen, dataset_dir, tmp_path, monkeypatch,
                                                                     sigint_default, capsys):
    """The issue's case: the pipeline dies while its SFT step holds checkpoints; the rerun continues from the
    latest one (the step's config fingerprint matches), it does not restart at step 0 or delete them."""
    import yaml

    from distill.cli import main
    from distill.stages.sft.callbacks import LossRecorder

    recipe = tmp_path / "r.yaml"
    sft = {k: v for k, v in SETTINGS.items()}
    sft.update(student="tiny-qwen", model=str(tiny_qwen), dataset=str(dataset_dir), num_train_epochs=1.0)
    recipe.write_text(yaml.safe_dump({"sft": sft, "pipeline": {"out": str(tmp_path / "run"), "report": False,
                                                               "steps": [{"name": "student", "stage": "sft"}]}}))
    original = LossRecorder.on_log

    def on_log(self, args, state, control, logs=None, **kw):
        original(self, args, state, control, logs=logs, **kw)
        if state.global_step == 9:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(LossRecorder, "on_log", on_log)
    assert main(["pipeline", "--recipe", str(recipe)]) == 130
    out = tmp_path / "run" / "student"
    assert (out / "checkpoints" / "checkpoint-8").is_dir() or (out / "checkpoints" / "checkpoint-10").is_dir()
    monkeypatch.setattr(LossRecorder, "on_log", original)
    capsys.readouterr()
    assert main(["pipeline", "--recipe", str(recipe)]) == 0
    assert "student: resuming the interrupted run" in capsys.readouterr().out
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "complete" and rec["counts"]["steps"] == 16
    assert rec.get("resumed_from") and "checkpoint-" in rec["resumed_from"]
