"""`distill grpo` without training: config checks, recipes -> TRL GRPOConfig, rewards, data, metrics, plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.cli import main
from distill.config import build_config, resolve_config
from distill.errors import ConfigError, DataError, DistillError
from distill.stages.grpo.config import GRPOStageConfig
from distill.stages.grpo.data import prepare, prompt_ids, r1_zero_chat_template
from distill.stages.grpo.metrics import keep_until, metrics_row
from distill.stages.grpo.reward_setup import setup_rewards
from distill.stages.grpo.serve import main as serve_main
from distill.stages.grpo.serve import server_gpus, vllm_serve_command
from distill.stages.grpo.trl_args import CPU_SAFE_OVERRIDES, make_grpo_config, resolve_generation, trl_kwargs

REPO = Path(__file__).resolve().parents[1]
TEACHER = REPO / "recipes" / "teacher"
R7B = TEACHER / "r1-zero-qwen-7b.yaml"


def grpo_cfg(recipe: Path = R7B, sets: list[str] | None = None) -> GRPOStageConfig:
    from distill.stages import section_names

    return resolve_config(GRPOStageConfig, "grpo", recipe=recipe, sets=sets or [], known_sections=section_names())


# ------------------------------------------------------------------------------------------------ config
def test_defaults_carry_a_kl_term_and_the_papers_loss():
    cfg = GRPOStageConfig()
    assert cfg.beta > 0                      # TRL's default is 0: no KL term at all
    assert cfg.loss_type == "grpo"
    assert set(cfg.rewards) == {"accuracy", "r1_zero_format"}


@pytest.mark.parametrize("values, needle", [
    ({"template": "chat", "rewards": {"accuracy": {}, "r1_zero_format": {}}}, "'format' reward"),
    ({"num_generations": 8, "per_device_train_batch_size": 12}, "multiple of num_generations=8"),
    ({"num_generations": 1, "per_device_train_batch_size": 4}, "num_generations must be >= 2"),
    ({"rewards": {"acuracy": {"weight": 1.0}}}, "unknown reward 'acuracy'"),
    ({"rewards": {"accuracy": {"weight": 1.0, "mdoe": "aime"}}}, "unknown parameter(s) ['mdoe']"),
    ({"num_processes": 6, "vllm_tensor_parallel_size": 4, "generation": "vllm", "per_device_train_batch_size": 8},
     "must divide num_processes"),
    ({"resume": True, "overwrite": True}, "pick one"),
    ({"keep_best": True, "eval_problems": 0}, "keep_best chooses among held-out evals"),
    ({"keep_best": True, "num_processes": 8, "strategy": "zero3"}, "holds only a shard under zero3"),
])
def test_config_errors_say_what_to_change(values, needle):
    with pytest.raises(ConfigError) as exc:
        build_config(GRPOStageConfig, values, source="r.yaml [grpo]")
    assert needle in str(exc.value) and "r.yaml [grpo]" in str(exc.value)


def test_teacher_recipes_validate_and_set_the_knobs_explicitly():
    for path in sorted(TEACHER.glob("[!_]*.yaml")):
        cfg = grpo_cfg(path)
        raw = (TEACHER / "_r1-zero-base.yaml").read_text() + path.read_text()
        for knob in ("num_generations", "beta", "loss_type", "temperature", "learning_rate",
                     "max_completion_length", "rewards"):
            assert f"{knob}:" in raw, f"{path.name} leaves {knob} to a default"
        assert cfg.beta > 0, path.name
    assert grpo_cfg(TEACHER / "r1-zero-qwen-1.5b.yaml").model == "Qwen/Qwen2.5-Math-1.5B"


# -------------------------------------------------------------------------------- recipe -> GRPOConfig
def test_7b_recipe_resolves_to_the_grpo_config_a_gpu_node_gets():
    cfg = grpo_cfg()
    setup = setup_rewards(cfg.rewards, max_completion_length=cfg.max_completion_length)
    kw = trl_kwargs(cfg, reward_weights=setup.weights, cuda=True, have_vllm=True)
    assert kw["bf16"] is True and kw["use_cpu"] is False           # what a GPU node gets
    args = make_grpo_config({**kw, **CPU_SAFE_OVERRIDES})            # GRPOConfig refuses bf16 without a GPU
    assert args.use_vllm is True and args.vllm_mode == "colocate"
    assert args.vllm_tensor_parallel_size == 1 and args.vllm_gpu_memory_utilization == 0.3
    assert args.vllm_enable_sleep_mode is True and args.vllm_max_model_length == 4096
    assert args.beta == 0.001 and args.num_generations == 16 and args.loss_type == "grpo"
    assert args.epsilon == 0.2 and args.scale_rewards == "group" and args.temperature == 1.0
    assert args.reward_weights == [1.0, 0.2] and setup.labels == ["accuracy", "r1_zero_format"]
    assert args.max_completion_length == 3072 and args.learning_rate == 1e-6
    assert args.per_device_train_batch_size == 4 and args.gradient_accumulation_steps == 16
    assert args.steps_per_generation == 16 and args.generation_batch_size == 64  # one process here
    assert args.generation_batch_size % args.num_generations == 0
    assert args.output_dir.endswith("r1-zero-qwen-7b/checkpoints") and args.remove_unused_columns is False


def test_server_mode_reaches_grpo_config_and_the_serve_command():
    cfg = grpo_cfg(sets=["grpo.vllm_mode=server", "grpo.vllm_server_port=8123", "grpo.vllm_tensor_parallel_size=2",
                         "grpo.num_processes=6"])
    kw = trl_kwargs(cfg, reward_weights=[1.0, 0.2], cuda=True)
    args = make_grpo_config({**kw, **CPU_SAFE_OVERRIDES})
    assert args.use_vllm and args.vllm_mode == "server" and args.vllm_server_port == 8123
    assert args.vllm_server_host == "localhost"
    cmd = vllm_serve_command(cfg)
    assert cmd[:2] == ["trl", "vllm-serve"] and cmd[cmd.index("--model") + 1] == "Qwen/Qwen2.5-Math-7B"
    assert cmd[cmd.index("--tensor_parallel_size") + 1] == "2" and cmd[cmd.index("--port") + 1] == "8123"
    assert cmd[cmd.index("--max_model_len") + 1] == "4096" and server_gpus(cfg) == 2


def test_serve_entry_point_prints_what_the_slurm_script_reads(capsys):
    assert serve_main(["--recipe", str(R7B), "--set", "grpo.vllm_data_parallel_size=2", "--print", "gpus"]) == 0
    assert capsys.readouterr().out.strip() == "2"
    assert serve_main(["--recipe", str(R7B), "--print", "command"]) == 0
    assert capsys.readouterr().out.startswith("trl vllm-serve --model Qwen/Qwen2.5-Math-7B ")
    assert serve_main(["--recipe", str(R7B), "--set", "grpo.beta=-1"]) == 2


def test_generation_engine_choice_and_the_cpu_refusal():
    assert resolve_generation("auto", cuda=False, have_vllm=True) == "transformers"
    assert resolve_generation("auto", cuda=True, have_vllm=True) == "vllm"
    assert resolve_generation("auto", cuda=True, have_vllm=False) == "transformers"
    with pytest.raises(DistillError, match="--generation transformers"):
        resolve_generation("vllm", cuda=False, have_vllm=True)
    with pytest.raises(DistillError, match="not installed"):
        resolve_generation("vllm", cuda=True, have_vllm=False)
    cfg = grpo_cfg(sets=["grpo.generation=transformers", "grpo.bf16=false"])
    kw = trl_kwargs(cfg, reward_weights=[1.0, 0.2], cuda=False)
    assert kw["use_vllm"] is False and kw["use_cpu"] is True and "vllm_mode" not in kw
    with pytest.raises(DistillError, match="--no-bf16"):
        trl_kwargs(grpo_cfg(sets=["grpo.generation=transformers"]), reward_weights=[1.0, 0.2], cuda=False)


def test_trl_batch_errors_become_config_errors():
    cfg = grpo_cfg(sets=["grpo.generation=transformers", "grpo.bf16=false"])
    kw = trl_kwargs(cfg, reward_weights=[1.0, 0.2], cuda=False)
    with pytest.raises(ConfigError, match="TRL rejected"):
        make_grpo_config({**kw, "steps_per_generation": 2, "generation_batch_size": 64})


def test_print_config_shows_vllm_kl_group_size_and_reward_weights(capsys):
    import yaml

    assert main(["grpo", "--recipe", str(R7B), "--print-config"]) == 0
    out = capsys.readouterr().out
    shown = yaml.safe_load(out)["grpo"]                     # the printout is YAML (help text as comments)
    assert shown["generation"] == "vllm" and shown["vllm_mode"] == "colocate"
    assert shown["vllm_gpu_memory_utilization"] == 0.3 and shown["vllm_tensor_parallel_size"] == 1
    assert shown["beta"] == 0.001 and shown["num_generations"] == 16 and shown["loss_type"] == "grpo"
    assert shown["rewards"] == {"accuracy": {"weight": 1.0, "mode": "math"}, "r1_zero_format": {"weight": 0.2}}
    assert shown["model"] == "Qwen/Qwen2.5-Math-7B" and shown["num_processes"] == 8
    assert "KL coefficient" in out and "group size" in out


def test_run_without_model_is_a_user_error(tmp_path, capsys):
    assert main(["grpo", "--dataset", "x.jsonl", "--out", str(tmp_path / "o")]) == 2
    assert "--model" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------- rewards
def test_reward_setup_names_weights_and_overlong_defaults():
    s = setup_rewards({"accuracy": {"weight": 1.0, "mode": "aime", "fallback": True}, "format": {"weight": 0.5},
                       "overlong": {"weight": 1.0}}, max_completion_length=100)
    assert s.labels == ["accuracy", "format", "overlong"] and s.weights == [1.0, 0.5, 1.0]
    assert [f.__name__ for f in s.funcs] == s.labels          # TRL logs rewards/<__name__>/mean
    assert s.accuracy_label == "accuracy" and s.format_label == "format"
    assert s.verify.mode == "aime" and s.verify.fallback is True
    overlong = s.funcs[2]
    ids = [[0] * 70, [0] * 90, [0] * 100, [0] * 120]          # ramp over the last 20 tokens of 100
    assert overlong(["a"] * 4, completion_ids=ids) == [0.0, -0.5, -1.0, -1.0]


# ----------------------------------------------------------------------------------------------- data
def _problems(path: Path, n: int, *, missing: int = 0, long: int = 0) -> Path:
    rows = [{"id": f"p{i}", "problem": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1)} for i in range(n)]
    for r in rows[:missing]:
        r["answer"] = None
    for r in rows[missing:missing + long]:
        r["problem"] = "Add these numbers: " + " + ".join(["7"] * 400) + "."
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prepare_holds_out_drops_and_builds_prompts(tiny_qwen, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    src = _problems(tmp_path / "p.jsonl", 40, missing=2, long=3)
    cfg = GRPOStageConfig(model=str(tiny_qwen), dataset=str(src), eval_problems=5, max_prompt_tokens=256,
                          template="r1-zero")
    data = prepare(cfg, tok)
    train_ids, held_ids = {r["id"] for r in data.train}, {r["id"] for r in data.heldout}
    assert len(held_ids) == 5 and not train_ids & held_ids
    assert {"p0", "p1"}.isdisjoint(train_ids | held_ids)             # no gold answer
    assert data.counts()["dropped_no_answer"] == 2
    assert data.counts()["dropped_long_prompt"] + len(train_ids) + 5 == 38
    row = data.train[0]
    assert isinstance(row["prompt"], str) and row["prompt"].endswith(f"User: {row['problem']}. Assistant:")
    assert set(row) == {"prompt", "answer", "id", "problem"}
    chat = prepare(GRPOStageConfig(model=str(tiny_qwen), dataset=str(src), template="chat", rewards={
        "accuracy": {}, "format": {}}, eval_problems=0), tok)
    assert chat.train[0]["prompt"][-1]["role"] == "user" and not chat.heldout
    assert len(prompt_ids(tok, chat.train[0]["prompt"])) > 5


def test_prepare_with_separate_heldout_file_removes_overlap(tiny_qwen, tmp_path):
    from transformers import AutoTokenizer

    src = _problems(tmp_path / "train.jsonl", 30)
    held = _problems(tmp_path / "held.jsonl", 4)                         # the same first 4 problems
    cfg = GRPOStageConfig(model=str(tiny_qwen), dataset=str(src), eval_dataset=str(held), eval_problems=10)
    data = prepare(cfg, AutoTokenizer.from_pretrained(tiny_qwen))
    assert len(data.heldout) == 4 and len(data.train) == 26 and len(data.dropped["in_heldout"]) == 4


def test_prepare_without_any_answer_names_the_column(tiny_qwen, tmp_path):
    from transformers import AutoTokenizer

    src = _problems(tmp_path / "p.jsonl", 6, missing=6)
    with pytest.raises(DataError, match="--answer-column"):
        prepare(GRPOStageConfig(model=str(tiny_qwen), dataset=str(src)), AutoTokenizer.from_pretrained(tiny_qwen))


def test_r1_zero_chat_template_renders_the_training_prompt(tiny_qwen):
    from transformers import AutoTokenizer

    from distill.data.prompts import r1_zero_prompt

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    tok.chat_template = r1_zero_chat_template()
    problem = "What is 'x' if x + 1 = 3?"
    text = tok.apply_chat_template([{"role": "user", "content": problem}], tokenize=False, add_generation_prompt=True)
    assert text == r1_zero_prompt(problem)
    ids = tok.apply_chat_template([{"role": "user", "content": problem}], tokenize=True, add_generation_prompt=True,
                                  return_dict=True)["input_ids"]
    assert list(ids) == prompt_ids(tok, r1_zero_prompt(problem))      # same tokens TRL trained on


# ------------------------------------------------------------------------------------ metrics and plots
def test_metrics_row_renames_trl_keys():
    logs = {"loss": 0.1, "reward": 0.7, "reward_std": 0.2, "rewards/accuracy/mean": 0.5, "rewards/accuracy/std": 0.5,
            "rewards/format/mean": 0.9, "rewards/format/std": 0.3, "completions/mean_length": 321.0,
            "completions/clipped_ratio": 0.1, "kl": 0.002, "clip_ratio/region_mean": 0.01, "step_time": 4.2,
            "entropy": float("nan")}
    row = metrics_row(logs, step=7, time_s=30.0, labels=["accuracy", "format"], accuracy_label="accuracy",
                      format_label="format")
    assert row["step"] == 7 and row["accuracy"] == 0.5 and row["format_rate"] == 0.9
    assert row["reward/format/std"] == 0.3 and row["completion_length"] == 321.0 and row["truncated_ratio"] == 0.1
    assert row["kl"] == 0.002 and row["clip_ratio"] == 0.01 and row["step_time"] == 4.2
    assert row["entropy"] is None                                         # NaN is not JSON
    json.dumps(row, allow_nan=False)


def test_keep_until_drops_rows_after_a_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 8)))
    assert keep_until(path, 4) == 3
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2, 3, 4]
    assert keep_until(path, 10) == 0 and keep_until(tmp_path / "absent.jsonl", 1) == 0


def test_plots_are_written(tmp_path):
    from distill.stages.grpo.plots import draw

    metrics = [{"step": s, "accuracy": s / 20, "completion_length": 100 + 5 * s, "reward": s / 10,
                "reward/accuracy/mean": s / 20} for s in range(1, 21)]
    evals = [{"step": 0, "pass@1": 0.1}, {"step": 20, "pass@1": 0.3}]
    written = draw(tmp_path, metrics, evals, ["accuracy"])
    assert sorted(p.name for p in written) == ["accuracy.png", "response_length.png", "rewards.png"]
    assert all(p.stat().st_size > 5000 for p in written)
    assert draw(tmp_path / "empty", [], [], ["accuracy"]) == []
