"""Two-process data-parallel SFT on CPU through 'accelerate launch' (gloo), as a multi-GPU run goes."""

from __future__ import annotations

import json

import pytest
from test_sft import rows

pytestmark = pytest.mark.multiproc


def test_two_process_data_parallel_sft(tiny_qwen, tmp_path, capsys, cpu_ranks):
    import datasets

    from distill.stages.sft.config import SFTStageConfig
    from distill.stages.sft.stage import run

    datasets.Dataset.from_list(rows(16)).save_to_disk(str(tmp_path / "data"))
    out = tmp_path / "student"
    cfg = SFTStageConfig(student="tiny-qwen", model=str(tiny_qwen), dataset=str(tmp_path / "data"), out=str(out),
                         max_length=256, learning_rate=3e-3, max_steps=4, per_device_train_batch_size=1,
                         gradient_accumulation_steps=1, gradient_checkpointing=False, logging_steps=1,
                         save_steps=2, num_processes=2, strategy="ddp", seed=0)
    run(cfg)
    assert "launching 2 processes with accelerate (ddp.yaml)" in capsys.readouterr().out
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "complete" and rec["world_size"] == 2
    assert rec["counts"]["steps"] == 4
    logged = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2, 3, 4]          # rank 0 alone writes the log
    # Two ranks each take a packed row per step: the tokens logged per step cover both.
    assert logged[0]["num_tokens"] > 256
    assert (out / "model.safetensors").is_file() and (out / "launch-sft.yaml").is_file()
