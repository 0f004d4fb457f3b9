"""distill sft without training: data loading and checks, chat templates, context extension, plans, recipes."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pytest

from distill.chat_template import assistant_content
from distill.errors import DataError, DistillError

REPO = Path(__file__).resolve().parents[1]
STUDENT_RECIPES = sorted((REPO / "recipes" / "students").glob("[!_]*.yaml"))
PAPER_STUDENTS = ["qwen-1.5b", "qwen-7b", "llama-8b", "qwen-14b", "qwen-32b", "llama-70b"]


def rows(n: int, seed: int = 0) -> list[dict]:
    """Rows shaped like 'distill filter' output: messages + id/source/teacher/token columns."""
    from distill.data.prompts import user_content
    from distill.stages.nano_task.task import gold_trace, problem_text

    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        out.append({"id": f"p{i}-0", "source": "nano", "teacher": "gold", "completion_tokens": 40,
                    "messages": [{"role": "user", "content": user_content(problem_text(a, b))},
                                 {"role": "assistant", "content": gold_trace(a, b)}]})
    return out


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen):
    from transformers import AutoTokenizer

    from distill.stages.sft.chat import install_chat_template, pick_format

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    install_chat_template(tok, pick_format("auto", tok))
    return tok


# ------------------------------------------------------------------------------------------------ loading
def test_loads_save_to_disk_folder_with_validation_split(tmp_path):
    import datasets

    from distill.stages.sft.data import load_sft_dataset

    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows(6)),
                          "validation": datasets.Dataset.from_list(rows(2, seed=1))}).save_to_disk(tmp_path / "d")
    data = load_sft_dataset(str(tmp_path / "d"), split="train", eval_split="validation")
    assert len(data.train) == 6 and len(data.eval) == 2
    assert data.splits == ["train", "validation"]
    with pytest.raises(DataError, match="no split 'dev'; it has train, validation"):
        load_sft_dataset(str(tmp_path / "d"), split="dev")


def test_loads_jsonl_and_parquet_files(tmp_path):
    import datasets

    from distill.stages.sft.data import load_sft_dataset

    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(5)))
    assert len(load_sft_dataset(str(path)).train) == 5
    datasets.Dataset.from_list(rows(3)).to_parquet(str(tmp_path / "sft.parquet"))
    data = load_sft_dataset(str(tmp_path / "sft.parquet"))
    assert len(data.train) == 3 and "messages" in data.columns


def test_missing_messages_column_lists_the_columns(tmp_path):
    import datasets

    from distill.stages.sft.data import load_sft_dataset

    datasets.Dataset.from_list([{"id": "a", "problem": "1+1", "answer": "2"}]).save_to_disk(tmp_path / "d")
    with pytest.raises(DataError) as err:
        load_sft_dataset(str(tmp_path / "d"))
    assert "no 'messages' column" in str(err.value) and "id, problem, answer" in str(err.value)


def test_missing_path_and_plain_folder_are_clear_errors(tmp_path):
    from distill.stages.sft.data import load_sft_dataset

    with pytest.raises(DataError, match="dataset not found"):
        load_sft_dataset(str(tmp_path / "nope.jsonl"))
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("x")
    with pytest.raises(DataError, match="not a datasets.save_to_disk folder"):
        load_sft_dataset(str(tmp_path / "plain"))


def test_unreachable_hub_dataset_is_a_data_error():
    from distill.stages.sft.data import load_sft_dataset

    with pytest.raises(DataError, match="could not load dataset 'no-such-org/no-such-sft-set' from the hub"):
        load_sft_dataset("no-such-org/no-such-sft-set")


@pytest.mark.parametrize("messages,problem", [
    ([{"role": "user", "content": "q"}], "the last message must be the assistant turn"),
    ([{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}], "role 'bot'"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": None}], "content of type NoneType"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}], "(assistant) is empty"),
    ([{"role": "assistant", "content": "a"}], "no user turn"),
    ("hello", "non-empty list"),
])
def test_message_problems_are_named(messages, problem):
    from distill.data.sft_rows import message_problem

    assert problem in message_problem(messages)


def test_malformed_row_stops_the_run_naming_row_and_id(tokenizer):
    import datasets

    from distill.stages.sft.data import encode_dataset

    bad = rows(5)
    bad[3]["messages"] = [{"role": "user", "content": "q"}, {"role": "user", "content": "again"}]
    ds = datasets.Dataset.from_list(bad)
    with pytest.raises(DataError) as err:
        encode_dataset(ds, tokenizer, source="sft.jsonl", max_length=512, overlong="drop", assistant_only=True)
    assert "sft.jsonl: row 3 (id 'p3-0')" in str(err.value) and "assistant turn" in str(err.value)


# --------------------------------------------------------------------------------------- labels, lengths
def test_labels_cover_exactly_the_assistant_turn_and_eos(tokenizer):
    import datasets

    from distill.stages.sft.data import IGNORE, encode_dataset

    data = rows(6)
    encoded, stats = encode_dataset(datasets.Dataset.from_list(data), tokenizer, source="t", max_length=512,
                                    overlong="drop", assistant_only=True)
    assert stats.kept == 6 and stats.without_think == 0
    for row, enc in zip(data, encoded):
        ids, labels = enc["input_ids"], enc["labels"]
        first = next(i for i, x in enumerate(labels) if x != IGNORE)
        assert all(x == IGNORE for x in labels[:first])                  # prompt: masked
        assert labels[first:] == ids[first:]                               # assistant turn: trained to the end
        assert tokenizer.decode(labels[first:]) == row["messages"][1]["content"] + tokenizer.eos_token
        assert ids[-1] == tokenizer.eos_token_id != tokenizer.pad_token_id
        prompt = tokenizer.apply_chat_template(row["messages"][:1], tokenize=False, add_generation_prompt=True)
        assert tokenizer.decode(ids[:first]) == prompt


def test_full_sequence_loss_when_assistant_only_is_off(tokenizer):
    import datasets

    from distill.stages.sft.data import encode_dataset

    encoded, _ = encode_dataset(datasets.Dataset.from_list(rows(2)), tokenizer, source="t", max_length=512,
                                overlong="drop", assistant_only=False)
    assert encoded[0]["labels"] == encoded[0]["input_ids"]


def test_overlong_examples_are_dropped_counted_or_refused(tokenizer):
    import datasets

    from distill.stages.sft.data import encode_dataset

    data = rows(4)
    data[1]["messages"][1]["content"] = assistant_content("carry " * 300, "\\boxed{1}")
    ds = datasets.Dataset.from_list(data)
    kept, stats = encode_dataset(ds, tokenizer, source="t", max_length=200, overlong="drop", assistant_only=True)
    assert len(kept) == 3 and stats.overlong == 1 and stats.kept == 3
    assert all(len(r["input_ids"]) <= 200 for r in kept)
    with pytest.raises(DataError, match=r"row 1 \(id 'p1-0'\): \d+ tokens"):
        encode_dataset(ds, tokenizer, source="t", max_length=200, overlong="error", assistant_only=True)
    kept, stats = encode_dataset(ds, tokenizer, source="t", max_length=200, overlong="truncate", assistant_only=True)
    assert len(kept) == 4 and stats.truncated == 1


# ------------------------------------------------------------------------------------------ chat formats
def _fake_qwen_base(tiny_qwen):
    """The tiny tokenizer dressed like a Qwen2.5 base: ChatML tokens present, pad == eos == <|endoftext|>."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    tok.add_special_tokens({"extra_special_tokens": ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]}, False)
    tok.eos_token = tok.pad_token = "<|endoftext|>"
    tok.chat_template = None
    return tok


def test_chatml_format_for_qwen_bases_gets_a_distinct_eos_and_pad(tiny_qwen):
    from distill.stages.sft.chat import check_training_format, install_chat_template, pick_format

    tok = _fake_qwen_base(tiny_qwen)
    before = len(tok)
    fmt = pick_format("auto", tok)
    # The tiny tokenizer also has the distill tags; an explicit choice picks ChatML.
    fmt = pick_format("chatml", tok)
    got = install_chat_template(tok, fmt)
    assert (got.eos_token, got.pad_token, got.added_tokens) == ("<|im_end|>", "<|endoftext|>", [])
    assert len(tok) == before                                              # no new embedding rows
    check_training_format(tok)
    text = tok.apply_chat_template([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
                                   tokenize=False)
    assert text == "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>"


def test_auto_picks_chatml_when_only_chatml_tokens_exist(tiny_llama):
    from transformers import AutoTokenizer

    from distill.stages.sft.chat import pick_format

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    assert pick_format("auto", tok).name == "distill"
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    bare = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    bare.pre_tokenizer = pre_tokenizers.Whitespace()
    plain = PreTrainedTokenizerFast(tokenizer_object=bare, unk_token="<unk>")
    plain.add_special_tokens({"extra_special_tokens": ["<|im_start|>", "<|im_end|>"]}, False)
    assert pick_format("auto", plain).name == "chatml"


def test_llama3_format_adds_missing_tags_and_the_model_is_resized(tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.stages.sft.chat import check_training_format, install_chat_template, pick_format, sync_model_tokens

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    tok.pad_token = tok.eos_token                                        # a base with pad == eos
    got = install_chat_template(tok, pick_format("llama3", tok))
    assert got.eos_token == "<|eot_id|>" and got.pad_token != got.eos_token
    assert set(got.added_tokens) == {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}
    check_training_format(tok)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert sync_model_tokens(model, tok) == 0                              # 1024 rows already hold 612 tokens
    model.resize_token_embeddings(len(tok) - 3)                            # a base whose matrix is full
    assert sync_model_tokens(model, tok) > 0
    assert model.get_input_embeddings().weight.shape[0] % 64 == 0
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id != model.generation_config.pad_token_id


def test_template_that_leaves_eos_untrained_is_refused(tiny_qwen):
    from transformers import AutoTokenizer

    from distill.stages.sft.chat import check_training_format

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    tok.chat_template = tok.chat_template.replace("{%- endgeneration %}", "").replace(
        "{{- message['content'] + eos_token }}", "{{- message['content'] }}{%- endgeneration %}{{- eos_token }}")
    with pytest.raises(DistillError, match="does not end on the EOS"):
        check_training_format(tok)


# ------------------------------------------------------------------------------------- context extension
def test_context_extension_changes_rope_and_positions(tiny_qwen):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from distill.stages.sft.context import apply_context_extension, check_positions

    config = AutoConfig.from_pretrained(tiny_qwen)
    with pytest.raises(DistillError, match="exceeds"):
        check_positions(config, 32768, model="tiny")
    changed = apply_context_extension(config, rope_theta=300000.0, max_position_embeddings=32768)
    assert changed == {"rope_theta": [10000.0, 300000.0], "max_position_embeddings": [4096, 32768]}
    check_positions(config, 32768, model="tiny")
    model = AutoModelForCausalLM.from_config(config)
    head_dim = config.hidden_size // config.num_attention_heads
    expected = 1.0 / (300000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    assert torch.allclose(model.model.rotary_emb.inv_freq, expected)


def test_config_refuses_32k_on_a_4k_base_without_extension():
    from distill.config import build_config
    from distill.errors import ConfigError
    from distill.stages.sft.config import SFTStageConfig

    with pytest.raises(ConfigError, match="exceeds qwen-7b's 4096 positions"):
        build_config(SFTStageConfig, {"student": "qwen-7b", "max_length": 32768}, source="t")
    cfg = build_config(SFTStageConfig, {"student": "qwen-7b", "max_length": 32768, "rope_theta": 3e5,
                                        "max_position_embeddings": 32768}, source="t")
    assert cfg.out == "out/qwen-7b"
    with pytest.raises(ConfigError, match="unknown student 'qwen-3b'. Valid students: qwen-1.5b"):
        build_config(SFTStageConfig, {"student": "qwen-3b"}, source="t")
    with pytest.raises(ConfigError, match="set lora: true"):
        build_config(SFTStageConfig, {"student": "llama-8b", "qlora": True}, source="t")


# ----------------------------------------------------------------------------------------------- recipes
def test_every_student_has_a_recipe():
    names = {p.stem for p in STUDENT_RECIPES}
    assert set(PAPER_STUDENTS) | {"tiny-qwen", "tiny-llama"} <= names


@pytest.mark.parametrize("path", STUDENT_RECIPES, ids=lambda p: p.stem)
def test_student_recipe_resolves_offline(path, capsys):
    from dataclasses import asdict

    from distill.cli import main
    from distill.config import resolve_config
    from distill.stages.sft.config import SFTStageConfig

    assert main(["sft", "--recipe", str(path), "--print-config"]) == 0
    assert path.stem in capsys.readouterr().out
    cfg = asdict(resolve_config(SFTStageConfig, "sft", recipe=path))
    assert cfg["student"] == path.stem
    assert cfg["max_length"] >= 1024 and cfg["packing"] and cfg["assistant_only_loss"]
    assert cfg["strategy"] in ("ddp", "zero2", "zero3", "fsdp")
    if not path.stem.startswith("tiny"):
        assert cfg["max_length"] == 32768 and cfg["gradient_checkpointing"] and cfg["bf16"]
        assert (REPO / "recipes" / "accelerate" / f"{cfg['strategy']}.yaml").is_file()


@pytest.mark.parametrize("name", PAPER_STUDENTS)
def test_student_recipe_plan_fits_its_launch(name, capsys):
    from distill.cli import main

    assert main(["sft", "--recipe", str(REPO / "recipes" / "students" / f"{name}.yaml"), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "-> fits" in out, out


def test_qwen_math_recipes_extend_the_context():
    from distill.config import resolve_config
    from distill.stages.sft.config import SFTStageConfig

    for name in ("qwen-1.5b", "qwen-7b"):
        cfg = resolve_config(SFTStageConfig, "sft", recipe=REPO / "recipes" / "students" / f"{name}.yaml")
        assert cfg.max_position_embeddings == 131072 and cfg.rope_theta == 300000.0


# ---------------------------------------------------------------------------------------------- planning
def test_plan_numbers_for_qwen_7b_are_sane():
    from distill.memory_plan import GIB, make_plan
    from distill.stages.sft.config import ALL_LINEAR
    from distill.students import get_student

    s = get_student("qwen-7b")
    common = dict(model="Qwen/Qwen2.5-Math-7B", seq_len=32768, micro_batch=1, grad_accum=4, lora=False,
                  qlora=False, lora_r=64, lora_targets=ALL_LINEAR, offloading=False, packing=True,
                  gpu_memory_gib=80, epochs=3, max_steps=-1)
    z3 = make_plan(s, strategy="zero3", num_gpus=8, checkpointing=True, **common)
    assert z3.parameters == pytest.approx(7.62e9, rel=0.01)
    states = z3.memory_gib["weights"] + z3.memory_gib["gradients"] + z3.memory_gib["optimizer"]
    assert states == pytest.approx(16 * 7.62e9 / 8 / GIB, rel=0.02)            # 16 bytes/param over 8 GPUs
    assert 15 < z3.memory_gib["activations"] < 30 < z3.memory_gib["activations_no_checkpointing"]
    assert z3.fits and z3.tokens_per_step == 32768 * 4 * 8
    one_gpu = make_plan(s, strategy="ddp", num_gpus=1, checkpointing=True, **common)
    assert not one_gpu.fits and one_gpu.memory_gib["total"] > 120             # 7B full FT never fits one GPU
    no_ckpt = make_plan(s, strategy="zero3", num_gpus=8, checkpointing=False, **common)
    assert not no_ckpt.fits and "gradient_checkpointing" in no_ckpt.notes[-1]
    lora = make_plan(s, strategy="ddp", num_gpus=1, checkpointing=True, **dict(common, lora=True))
    assert 0.1e9 < lora.trainable < 0.2e9 and lora.memory_gib["weights"] < 16


def test_plan_counts_steps_from_lengths():
    from distill.memory_plan import make_plan, pack_rows
    from distill.students import get_student

    assert pack_rows([6, 5, 4, 3, 2], 10) == 2
    assert pack_rows([10, 10, 1], 10) == 3
    lengths = [1000] * 90 + [9000] * 10 + [40000] * 2
    plan = make_plan(get_student("qwen-1.5b"), model="m", strategy="ddp", num_gpus=2, seq_len=32768, micro_batch=1,
                     grad_accum=2, checkpointing=True, lora=False, qlora=False, lora_r=8, lora_targets=[],
                     offloading=False, packing=True, gpu_memory_gib=80, epochs=2, max_steps=-1, lengths=lengths,
                     total_examples=1020, length_source="test")
    assert plan.examples == 1000 and plan.dataset_tokens == 1_800_000           # sample of 102 scaled x10
    assert plan.rows_per_epoch >= 1_800_000 / 32768
    assert plan.steps_per_epoch == math.ceil(math.ceil(plan.rows_per_epoch / 2) / 2)   # 2 GPUs, 2 accumulation
    assert plan.total_steps == 2 * plan.steps_per_epoch
    assert any("exceed max_length" in n for n in plan.notes)


def test_plan_cli_with_dataset_and_tiny_tokenizer(tmp_path, tiny_qwen, tokenizer, capsys):
    import datasets

    from distill.cli import main
    from distill.stages.sft.config import SFTStageConfig
    from distill.stages.sft.data import encode_dataset
    from distill.stages.sft.stage import print_plan
    from distill.students import get_student

    datasets.Dataset.from_list(rows(12)).save_to_disk(tmp_path / "d")
    code = main(["sft", "--student", "tiny-qwen", "--model", str(tiny_qwen), "--dataset", str(tmp_path / "d"),
                 "--max-length", "256", "--plan", "--out", str(tmp_path / "never")])
    out = capsys.readouterr().out
    assert code == 0 and "12 examples" in out and "(tokenized)" in out and "steps per epoch" in out
    assert not (tmp_path / "never").exists()                                   # --plan writes nothing
    cfg = SFTStageConfig(student="tiny-qwen", model=str(tiny_qwen), dataset=str(tmp_path / "d"), max_length=256,
                         plan=True)
    plan = print_plan(cfg, get_student("tiny-qwen"), str(tiny_qwen))
    _, stats = encode_dataset(datasets.load_from_disk(str(tmp_path / "d")), tokenizer, source="d", max_length=256,
                              overlong="drop", assistant_only=True)
    assert plan.dataset_tokens == stats.tokens                                 # the same tokens training sees


# ------------------------------------------------------------------------------------ arguments, folders
def test_trainer_arguments_never_fall_back_to_trl_defaults(tmp_path):
    from distill.stages.sft.config import SFTStageConfig
    from distill.stages.sft.stage import sft_arguments

    cfg = SFTStageConfig(student="qwen-14b", max_length=32768)
    kw = sft_arguments(cfg, out=tmp_path, cuda=False, has_eval=True, liger=False)
    assert kw["max_length"] == 32768 and kw["packing"] and kw["packing_strategy"] == "bfd" and kw["padding_free"]
    assert kw["use_cpu"] and not kw["bf16"] and kw["eval_strategy"] == "no"
    assert kw["lr_scheduler_kwargs"] == {"min_lr_rate": 0.1} and kw["output_dir"].endswith("checkpoints")
    gpu = sft_arguments(SFTStageConfig(student="qwen-14b", eval_steps=50), out=tmp_path, cuda=True, has_eval=True,
                        liger=True)
    assert gpu["bf16"] and not gpu["use_cpu"] and gpu["eval_steps"] == 50 and gpu["use_liger_kernel"]


def test_output_folder_decisions(tmp_path):
    from distill.outdir import MARKER
    from distill.outdir import prepare_out as outdir_prepare
    from distill.stages.sft.config import SFTStageConfig, train_fingerprint
    from distill.stages.sft.output import prepare_out

    out = tmp_path / "student"
    cfg = SFTStageConfig(student="tiny-qwen", max_length=1024, out=str(out))
    assert prepare_out(cfg, out).checkpoint is None
    ckpt = out / "checkpoints" / "checkpoint-8"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    (out / "checkpoints" / "checkpoint-12").mkdir()                             # cut short by a kill
    (out / "run.json").write_text(json.dumps({"stage": "sft", "status": "running",
                                              "train_fingerprint": train_fingerprint(cfg)}))
    assert prepare_out(cfg, out).checkpoint == ckpt                           # same settings: resume
    other = SFTStageConfig(student="tiny-qwen", max_length=1024, out=str(out), learning_rate=1.0)
    with pytest.raises(DistillError, match="pass --resume to continue from it anyway, --overwrite to start over"):
        prepare_out(other, out)
    assert prepare_out(SFTStageConfig(student="tiny-qwen", max_length=1024, out=str(out), learning_rate=1.0, resume=True),
                       out).checkpoint == ckpt
    (out / "run.json").write_text(json.dumps({"stage": "sft", "status": "complete",
                                              "train_fingerprint": train_fingerprint(cfg)}))
    assert prepare_out(cfg, out).done
    with pytest.raises(DistillError, match="trained with other settings"):
        prepare_out(other, out)
    assert prepare_out(SFTStageConfig(student="tiny-qwen", max_length=1024, out=str(out), overwrite=True), out).checkpoint is None
    assert [p.name for p in out.iterdir()] == [MARKER]                            # emptied, still ours
    traces = outdir_prepare(tmp_path / "traces", "generate", overwrite=False)
    (traces / "shard-00000-of-00001.jsonl").write_text("{}\n")
    with pytest.raises(DistillError, match="'distill generate'"):               # --overwrite never takes it
        prepare_out(SFTStageConfig(student="tiny-qwen", max_length=1024, out=str(traces), overwrite=True), traces)
    assert (traces / "shard-00000-of-00001.jsonl").exists()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "notes.txt").write_text("mine")
    with pytest.raises(DistillError, match="holds other files"):
        prepare_out(cfg, tmp_path / "elsewhere")


def test_bf16_export_rewrites_shards(tmp_path, tiny_qwen):
    import torch
    from transformers import AutoModelForCausalLM

    from distill.weights import to_bf16

    folder = tmp_path / "m"
    shutil.copytree(tiny_qwen, folder)
    assert to_bf16(folder) == 1 and to_bf16(folder) == 0
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    model = AutoModelForCausalLM.from_pretrained(folder)
    ref = AutoModelForCausalLM.from_pretrained(tiny_qwen)
    assert next(model.parameters()).dtype == torch.bfloat16
    ids = torch.tensor([[0, 5, 6, 7]])
    assert torch.allclose(model(ids).logits.float(), ref(ids).logits, atol=0.05)


def test_qlora_without_cuda_is_refused_before_work(tmp_path):
    import torch

    from distill.stages.sft.config import SFTStageConfig
    from distill.stages.sft.stage import run

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the refusal only happens without one")
    cfg = SFTStageConfig(student="tiny-qwen", max_length=1024, model="m", dataset="d", out=str(tmp_path / "o"), lora=True, qlora=True)
    with pytest.raises(DistillError, match="qlora needs a CUDA GPU"):
        run(cfg)


def test_missing_tiny_base_points_to_distill_tiny(tmp_path, capsys):
    from distill.stages.sft.config import SFTStageConfig
    from distill.stages.sft.stage import run

    cfg = SFTStageConfig(student="tiny-llama", max_length=512, model=str(tmp_path / "absent"), dataset="d",
                         out=str(tmp_path / "o"))
    with pytest.raises(DistillError, match="distill tiny --recipe recipes/students/tiny-llama.yaml"):
        run(cfg)
    run(SFTStageConfig(student="tiny-llama", max_length=512, plan=True, out=str(tmp_path / "o")))
    assert "plan: tiny-llama (tiny-llama (made by distill tiny))" in capsys.readouterr().out
    assert not (tmp_path / "o").exists()


def test_launch_command_and_deepspeed_check(tmp_path):
    import importlib.util

    from distill.launch import accelerate_config_file, check_launch_config, launch_command

    cmd = launch_command("sft", tmp_path / "r.yaml", config_file=tmp_path / "ddp.yaml", num_processes=2,
                         mixed_precision="no", port=12345)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "2" and cmd[-4:] == ["distill", "sft", "--recipe",
                                                                        str(tmp_path / "r.yaml")]
    assert accelerate_config_file("fsdp").name == "fsdp.yaml"
    with pytest.raises(DistillError, match="accelerate config not found"):
        accelerate_config_file("ddp", str(tmp_path / "missing.yaml"))
    if importlib.util.find_spec("deepspeed") is None:
        with pytest.raises(DistillError, match="pip install 'distill\\[deepspeed\\]'"):
            check_launch_config(accelerate_config_file("zero3"))
    assert check_launch_config(accelerate_config_file("ddp"))["distributed_type"] == "MULTI_GPU"


def test_more_processes_than_gpus_is_refused_before_launching(tmp_path, monkeypatch):
    import distill.launch as launch
    from distill.stages.sft.config import SFTStageConfig

    monkeypatch.setattr(launch, "visible_gpus", lambda: 1)
    monkeypatch.setattr(launch.subprocess, "Popen", lambda *a, **k: pytest.fail("launched anyway"))
    with pytest.raises(DistillError, match="num_processes 2 needs one GPU per process, but this machine shows 1"):
        launch.relaunch("sft", SFTStageConfig(student="tiny-qwen", max_length=256), workdir=tmp_path, config_file=launch.accelerate_config_file("ddp"),
                        num_processes=2)
    assert not (tmp_path / "launch-sft.yaml").exists()
    launch.check_gpus(1)                                  # one process per GPU is fine
    monkeypatch.setattr(launch, "visible_gpus", lambda: 0)
    launch.check_gpus(4)                                  # no GPU at all: the CPU path decides, not this check


def test_packing_without_flash_attention_on_a_gpu_warns_with_the_measured_cost():
    from distill.stages.sft.config import SFTStageConfig
    from distill.stages.sft.stage import packing_attention_warning

    cfg = SFTStageConfig(student="tiny-qwen", max_length=4096, packing=True)
    msg = packing_attention_warning(cfg, "sdpa", cuda=True)
    assert msg and "4096 x 4096" in msg and "0.38x" in msg and "pip install flash-attn" in msg
    assert packing_attention_warning(cfg, "flash_attention_2", cuda=True) is None      # varlen kernels: no mask
    assert packing_attention_warning(cfg, "sdpa", cuda=False) is None                  # CPU: nothing faster exists
    unpacked = SFTStageConfig(student="tiny-qwen", max_length=4096, packing=False)
    assert packing_attention_warning(unpacked, "sdpa", cuda=True) is None


def test_a_changed_dataset_is_never_taken_for_the_one_a_student_was_trained_on(tmp_path):
    """Re-filtered to other rows, rerun sft: refused naming the dataset (it used to say 'already holds this student')."""
    import datasets

    from distill.errors import DistillError
    from distill.runinfo import RunRecord
    from distill.stages.sft.config import SFTStageConfig, dataset_identity, train_fingerprint
    from distill.stages.sft.output import prepare_out

    data = tmp_path / "sft-data"
    datasets.Dataset.from_list([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
                               * 12).save_to_disk(str(data))
    RunRecord("filter", SFTStageConfig(student="tiny-qwen", max_length=64)).write(data)
    out = tmp_path / "student"
    cfg = SFTStageConfig(student="tiny-qwen", max_length=1024, out=str(out), dataset=str(data))
    first = dataset_identity(str(data))
    (out).mkdir()
    (out / "run.json").write_text(json.dumps({"stage": "sft", "status": "complete", "dataset_identity": first,
                                              "train_fingerprint": train_fingerprint(cfg)}))
    assert prepare_out(cfg, out).done
    RunRecord("filter", SFTStageConfig(student="tiny-qwen", max_length=128)).write(data)  # filtered again
    assert dataset_identity(str(data)) != first
    with pytest.raises(DistillError, match="earlier version of .*sft-data"):
        prepare_out(cfg, out)
