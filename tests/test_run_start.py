"""Where sft, grpo and opd start in their --out (distill.run_start): done, resumed from the last complete
checkpoint (one killed while saving is skipped), or refused with the way out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.run_start import Start, decide_on_main, decide_start, last_complete_checkpoint


def checkpoint(folder: Path, step: int, *, complete: bool = True) -> Path:
    path = folder / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"x")
    if complete:
        (path / "trainer_state.json").write_text("{}")
    return path


def run_json(folder: Path, stage: str, status: str, fingerprint: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps({"stage": stage, "status": status, "train_fingerprint": fingerprint}))


def start(out: Path, *, stage: str = "grpo", fingerprint: str = "a", resume: bool = False, overwrite: bool = False,
          **kw) -> Start:
    return decide_start(stage, out, checkpoints="checkpoints", overwrite=overwrite, resume=resume,
                        same=lambda previous: previous.get("train_fingerprint") == fingerprint, ours=("launch.yaml",),
                        **kw)


def test_a_checkpoint_killed_while_saving_is_skipped(tmp_path, caplog):
    out = tmp_path / "run"
    first = checkpoint(out, 2)
    checkpoint(out, 4, complete=False)                 # the Trainer writes trainer_state.json last
    assert last_complete_checkpoint(out / "checkpoints") == first
    assert "checkpoint-4 is incomplete" in caplog.text
    run_json(out, "grpo", "partial", "a")
    assert start(out) == Start(False, first)           # the same settings: resumed from the complete one
    assert last_complete_checkpoint(tmp_path / "none") is None


def test_finished_same_settings_is_done_and_other_settings_are_refused_or_resumed(tmp_path, capsys):
    out = tmp_path / "run"
    run_json(out, "grpo", "complete", "a")
    assert start(out) == Start(True)
    assert "nothing to do" in capsys.readouterr().out
    with pytest.raises(DistillError, match="finished run with other settings: pass --resume"):
        start(out, fingerprint="b")
    last = checkpoint(out, 6)
    assert start(out, fingerprint="b", resume=True) == Start(False, last)       # a finished run given more steps
    with pytest.raises(DistillError, match="trained on an earlier version"):    # a stage that never continues one
        start(out, fingerprint="b", resume=True, resume_finished=False,
              other_finished=lambda previous: "trained on an earlier version of the data")


def test_checkpoints_of_other_settings_need_resume(tmp_path):
    out = tmp_path / "run"
    run_json(out, "opd", "partial", "a")
    last = checkpoint(out, 3)
    with pytest.raises(DistillError, match="checkpoints \\(last: checkpoint-3\\) of a run with other settings"):
        start(out, stage="opd", fingerprint="b")
    assert start(out, stage="opd", fingerprint="b", resume=True) == Start(False, last)


def test_another_stages_folder_and_foreign_files_are_refused_and_kept(tmp_path):
    theirs = tmp_path / "sft-out"
    run_json(theirs, "sft", "complete", "a")
    with pytest.raises(DistillError, match="holds the output of 'distill sft'"):
        start(theirs)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DistillError, match="holds other files"):
        start(foreign)
    with pytest.raises(DistillError):                  # --overwrite never deletes a folder distill did not make
        start(foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"
    fresh = tmp_path / "launched"
    fresh.mkdir()
    (fresh / "launch.yaml").write_text("x: 1")         # what the launcher writes before the ranks start
    assert start(fresh) == Start(False)


def test_decide_on_main_returns_or_raises_on_one_process():
    assert decide_on_main(lambda: Start(False, Path("c")), process_index=0, world_size=1) == Start(False, Path("c"))

    def refuse() -> Start:
        raise DistillError("no")

    with pytest.raises(DistillError, match="no"):
        decide_on_main(refuse, process_index=0, world_size=1)
