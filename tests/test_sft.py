"""distill sft end to end on the tiny Qwen2 student, on CPU: learning, masking, packing, stopping, LoRA, lineage."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from distill.errors import DistillError


def rows(n: int, seed: int = 0) -> list[dict]:
    """Addition traces of mixed lengths (1- to 4-digit operands), shaped like 'distill filter' output."""
    from distill.data.prompts import user_content
    from distill.stages.nano_task.task import gold_trace, problem_text

    rng = random.Random(seed)
    out = []
    for i in range(n):
        digits = 1 + i % 4
        a, b = rng.randint(10 ** (digits - 1), 10 ** digits - 1), rng.randint(1, 10 ** digits - 1)
        out.append({"id": f"p{i}-0", "source": "nano", "teacher": "gold",
                    "messages": [{"role": "user", "content": user_content(problem_text(a, b))},
                                 {"role": "assistant", "content": gold_trace(a, b)}]})
    return out


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    """A 16-example SFT folder as 'distill filter' leaves it: train + validation splits, and its own run.json."""
    import datasets

    folder = tmp_path_factory.mktemp("sft-data") / "data"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows(16)),
                          "validation": datasets.Dataset.from_list(rows(4, seed=1))}).save_to_disk(str(folder))
    (folder / "run.json").write_text(json.dumps({"stage": "filter", "status": "complete",
                                                 "run_id": "filter-0123456789abcdef-1"}))
    return folder


def make_cfg(tiny_qwen: Path, dataset: Path, out: Path, **over):
    from distill.stages.sft.config import SFTStageConfig

    values = dict(student="tiny-qwen", model=str(tiny_qwen), dataset=str(dataset), out=str(out), max_length=256,
                  learning_rate=3e-3, warmup_ratio=0.0, max_steps=60, per_device_train_batch_size=2,
                  gradient_accumulation_steps=1, gradient_checkpointing=False, logging_steps=1, save_steps=1000,
                  seed=0,
                  # float32 on every device: these tests compare weights and logits to float32 references and
                  # need the CPU's learning curve; a GPU's bf16 path is run by scripts/bench/gpu_checks.sh.
                  bf16=False)
    values.update(over)
    return SFTStageConfig(**values)


@pytest.fixture(scope="module")
def trained(tiny_qwen, dataset_dir, tmp_path_factory) -> Path:
    """60 optimizer steps of packed, assistant-only SFT; the student folder."""
    from distill.stages.sft.stage import run

    out = tmp_path_factory.mktemp("sft") / "student"
    return run(make_cfg(tiny_qwen, dataset_dir, out))


@pytest.fixture(scope="module")
def setup(tiny_qwen, dataset_dir, tmp_path_factory):
    """The trainer as the stage builds it (untrained), to look at its batches."""
    from accelerate import PartialState

    from distill.stages.sft.trainer import build
    from distill.students import get_student

    out = tmp_path_factory.mktemp("sft-build") / "student"
    cfg = make_cfg(tiny_qwen, dataset_dir, out)
    return build(cfg, get_student("tiny-qwen"), str(tiny_qwen), out, PartialState(cpu=True))


# ------------------------------------------------------------------------------------------------ learning
def test_loss_falls_by_half_within_60_steps(trained):
    logged = [json.loads(line) for line in (trained / "loss.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in logged if "loss" in r]
    steps = [r["step"] for r in logged if "loss" in r]
    assert steps[-1] == 60 and steps == sorted(steps)
    assert losses[-1] <= 0.5 * losses[0], losses


def test_student_stops_with_eos(trained, dataset_dir):
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(trained)
    model = AutoModelForCausalLM.from_pretrained(trained).eval()
    assert tok.eos_token_id != tok.pad_token_id
    assert model.generation_config.eos_token_id == tok.eos_token_id
    stopped = 0
    for row in datasets.load_from_disk(str(dataset_dir))["train"].select(range(8)):
        prompt = tok.apply_chat_template(row["messages"][:1], tokenize=True, add_generation_prompt=True,
                                         return_tensors="pt", return_dict=True)
        with torch.no_grad():
            gen = model.generate(**prompt, max_new_tokens=120, do_sample=False)[0, prompt["input_ids"].shape[1]:]
        stopped += int(tok.eos_token_id in gen.tolist())
    assert stopped == 8, f"only {stopped} of 8 greedy generations ended with EOS"


def test_saved_student_renders_the_training_format(trained, dataset_dir):
    import datasets
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(trained)
    template = (trained / "chat_template.jinja").read_text()
    assert "{% generation %}" in template.replace("{%- generation %}", "{% generation %}")
    row = datasets.load_from_disk(str(dataset_dir))["train"][0]["messages"]
    prompt = tok.apply_chat_template(row[:1], tokenize=False, add_generation_prompt=True)
    assert tok.apply_chat_template(row, tokenize=False) == prompt + row[1]["content"] + tok.eos_token
    config = json.loads((trained / "tokenizer_config.json").read_text())
    assert "local_files_only" not in config


def test_run_json_carries_the_data_lineage(trained, dataset_dir):
    rec = json.loads((trained / "run.json").read_text())
    assert rec["status"] == "complete" and rec["stage"] == "sft"
    assert rec["inputs"]["dataset"] == {"path": str(dataset_dir), "stage": "filter",
                                        "run_id": "filter-0123456789abcdef-1"}
    assert rec["inputs"]["model"]["stage"] == "tiny"
    c = rec["counts"]
    assert c["steps"] == 60 and c["examples"] == 16 and c["dropped_overlong"] == 0
    assert c["last_loss"] < c["first_loss"] and c["trained_tokens"] < c["tokens"]
    assert c["eval_examples"] == 4 and 0 < c["eval_loss"] < c["first_loss"]          # the validation split
    assert rec["dataset"]["splits"] == ["train", "validation"]
    assert rec["chat_format"]["eos"] != rec["chat_format"]["pad"]
    assert (trained / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (trained / "checkpoints").exists() and not (trained / ".cache").exists()


def test_finished_student_is_not_retrained(trained, tiny_qwen, dataset_dir, capsys):
    from distill.stages.sft.stage import run

    before = (trained / "model.safetensors").stat().st_mtime_ns
    run(make_cfg(tiny_qwen, dataset_dir, trained))
    assert "already holds a finished run of this config" in capsys.readouterr().out
    assert (trained / "model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(DistillError, match="trained with other settings"):
        run(make_cfg(tiny_qwen, dataset_dir, trained, learning_rate=1e-4))


# ------------------------------------------------------------------------------------- masking, packing
def _segments(batch):
    pos = batch["position_ids"][0].tolist()
    starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
    return list(zip(starts[:-1], starts[1:]))


def test_packed_labels_are_masked_except_assistant_tokens(setup):
    from distill.stages.sft.data import IGNORE

    tok = setup.tokenizer
    batch = next(iter(setup.trainer.get_train_dataloader()))
    segments = _segments(batch)
    assert len(segments) >= 2, "the batch should hold several packed examples"
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    assistant_tag = tok.convert_tokens_to_ids("<|assistant|>")
    for start, end in segments:
        seg_ids, seg_labels = ids[start:end], labels[start:end]
        tag = seg_ids.index(assistant_tag)
        assert all(x == IGNORE for x in seg_labels[: tag + 1])                  # BOS, user turn, assistant tag
        assert seg_labels[tag + 1:] == seg_ids[tag + 1:]                          # <think> ... answer, EOS
        assert seg_ids[-1] == tok.eos_token_id and seg_labels[-1] == tok.eos_token_id
        assert tok.decode(seg_ids[tag + 1:]).startswith("<think>")


def test_packed_examples_do_not_attend_to_each_other(setup):
    import torch

    model = setup.trainer.model.eval()
    batch = next(iter(setup.trainer.get_train_dataloader()))
    segments = _segments(batch)
    assert len(segments) >= 2
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        for start, end in segments:
            alone = model(input_ids=batch["input_ids"][:, start:end], use_cache=False).logits[0]
            assert torch.allclose(packed[start:end], alone, atol=1e-4), f"segment {start}:{end} saw its neighbours"
        # The check can fail: one causal sequence over the same row lets later examples see earlier ones.
        leaky = model(input_ids=batch["input_ids"], use_cache=False).logits[0]
        start, end = segments[1]
        assert not torch.allclose(leaky[start:end], packed[start:end], atol=1e-3)


def test_packing_rows_match_the_plan(setup):
    from distill.memory_plan import pack_rows

    assert len(setup.trainer.train_dataset) == pack_rows(setup.stats.lengths, 256)


# ------------------------------------------------------------------------------------------------- LoRA
def test_lora_saves_adapter_and_exports_merged_student(tiny_qwen, dataset_dir, tmp_path):
    import torch
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.stages.sft.stage import run

    out = run(make_cfg(tiny_qwen, dataset_dir, tmp_path / "lora", lora=True, lora_r=8, lora_alpha=16,
                       max_steps=4, learning_rate=1e-2))
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "lora" in k]  # noqa: SIM118 - a plain HF model
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen)
    adapted = PeftModel.from_pretrained(base, str(out / "adapter")).eval()
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 12 + 30?"}], tokenize=True,
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-4)
        untouched = AutoModelForCausalLM.from_pretrained(tiny_qwen)(ids).logits
        assert not torch.allclose(merged(ids).logits, untouched, atol=1e-3)     # the adapter did something
    rec = json.loads((out / "run.json").read_text())
    assert rec["counts"]["trainable_parameters"] < rec["counts"]["parameters"] / 2


def test_lora_with_tokens_the_template_adds(tiny_llama, dataset_dir, tmp_path):
    """A base without the chosen chat tokens: they are added, and their rows (EOS included) are trained."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.stages.sft.stage import run

    out = run(make_cfg(tiny_llama, dataset_dir, tmp_path / "lora-llama3", student="tiny-llama", chat_format="llama3",
                       lora=True, lora_r=8, lora_alpha=16, max_steps=3, learning_rate=1e-2))
    rec = json.loads((out / "run.json").read_text())
    assert rec["chat_format"]["eos"] == "<|eot_id|>" and "<|eot_id|>" in rec["chat_format"]["added_tokens"]
    tok = AutoTokenizer.from_pretrained(out)
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    assert tok.eos_token_id == eot
    merged = AutoModelForCausalLM.from_pretrained(out).get_input_embeddings().weight
    base = AutoModelForCausalLM.from_pretrained(tiny_llama).get_input_embeddings().weight
    assert not torch.allclose(merged[eot], base[eot])                                # the EOS row was trained
