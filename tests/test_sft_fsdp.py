"""Sharded SFT on 2 CPU ranks through 'accelerate launch' (gloo), with the launch configs a GPU cluster uses:
FSDP2 (recipes/accelerate/fsdp.yaml), and DeepSpeed ZeRO-2/3 where deepspeed is installed.

accelerate on its own trains CPU ranks launched with these configs as plain DDP (distill.launch.shard_cpu_ranks);
run.json's ``sharding`` says what the ranks really did. Each run is checked against one process with the same
global batch (2 ranks x 1 row against 1 process x 2 rows, same seed and data order): same step count, last loss
within 1%, and a saved student that reloads with the input model's vocabulary and embedding rows.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from test_sft import rows

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]

needs_deepspeed = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None,
    reason="deepspeed is not installed (pip install 'distill[deepspeed]'); ZeRO on CPU ranks needs it")

SHARDING = {
    "fsdp": {"distributed_type": "FSDP", "fsdp_version": 2},
    "zero2": {"distributed_type": "DEEPSPEED", "zero_stage": 2},
    "zero3": {"distributed_type": "DEEPSPEED", "zero_stage": 3},
}
# What each strategy's checkpoint holds: FSDP's full model state (accelerate's save_fsdp_model), DeepSpeed's engine
# folder; a DDP checkpoint holds neither.
CHECKPOINT_MARK = {"fsdp": "pytorch_model_fsdp.bin", "zero2": "global_step*", "zero3": "global_step*"}


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory) -> Path:
    import datasets

    folder = tmp_path_factory.mktemp("fsdp-data") / "data"
    datasets.Dataset.from_list(rows(16)).save_to_disk(str(folder))
    return folder


def _config(model: Path, data: Path, out: Path, **kw):
    from distill.stages.sft.config import SFTStageConfig

    return SFTStageConfig(student="tiny-qwen", model=str(model), dataset=str(data), out=str(out), max_length=128,
                          learning_rate=1e-3, warmup_ratio=0.05, num_train_epochs=2, gradient_accumulation_steps=1,
                          gradient_checkpointing=False, logging_steps=1, seed=0, **kw)


@pytest.fixture(scope="module")
def one_process(tiny_qwen, sft_data, tmp_path_factory) -> dict:
    """run.json of 1 process x 2 rows per step, on the CPU (as the cpu_ranks fixture sets it up)."""
    import distill.stages.sft.stage as sft_stage

    out = tmp_path_factory.mktemp("fsdp-ref") / "one"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUDA_VISIBLE_DEVICES", "")
        mp.setattr(sft_stage, "_cuda", lambda: False)
        sft_stage.run(_config(tiny_qwen, sft_data, out, per_device_train_batch_size=2, num_processes=1,
                              save_steps=1000))
    return json.loads((out / "run.json").read_text())


@pytest.mark.parametrize("strategy", ["fsdp", pytest.param("zero2", marks=needs_deepspeed),
                                      pytest.param("zero3", marks=needs_deepspeed)])
def test_two_cpu_ranks_shard_save_and_reload(strategy, one_process, tiny_qwen, sft_data, tmp_path, capsys,
                                             cpu_ranks):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.stages.sft.stage import run

    out = tmp_path / strategy
    run(_config(tiny_qwen, sft_data, out, per_device_train_batch_size=1, num_processes=2, strategy=strategy,
                save_steps=5, keep_checkpoints=True))
    assert f"launching 2 processes with accelerate ({strategy}.yaml)" in capsys.readouterr().out
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "complete" and rec["world_size"] == 2
    assert rec["sharding"] == SHARDING[strategy]                 # sharded, not DDP under another name
    assert list((out / "checkpoints").glob(f"checkpoint-*/{CHECKPOINT_MARK[strategy]}"))

    # the same global batch, seed and data order as one process: the same steps and (within 1%) the same last loss
    steps, last = rec["counts"]["steps"], rec["counts"]["last_loss"]
    ref_steps, ref_last = one_process["counts"]["steps"], one_process["counts"]["last_loss"]
    assert steps == ref_steps == 14, (steps, ref_steps)     # 2 epochs of 14 packed rows, 2 rows per step
    assert abs(last - ref_last) <= 0.01 * abs(ref_last), (last, ref_last)
    print(f"{strategy}: last_loss {last:.6f} on 2 ranks vs {ref_last:.6f} on 1 process "
          f"({abs(last - ref_last) / abs(ref_last):.2e} relative)")

    # the saved student reloads with the input model's vocabulary and embedding rows (all of them: no rank's shard)
    base, base_tok = AutoModelForCausalLM.from_pretrained(tiny_qwen), AutoTokenizer.from_pretrained(tiny_qwen)
    student, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert tok.get_vocab() == base_tok.get_vocab()
    rows_in = base.get_input_embeddings().weight.shape
    assert student.get_input_embeddings().weight.shape == rows_in
    assert student.get_output_embeddings().weight.shape == base.get_output_embeddings().weight.shape
    assert student.config.vocab_size == base.config.vocab_size == rows_in[0]
    assert rec["counts"]["parameters"] == one_process["counts"]["parameters"] == base.num_parameters()
