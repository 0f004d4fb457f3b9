"""The R1 recipes plan offline: recipes/r1.yaml (the paper's multi-stage recipe at GPU scale), the six
recipes/opd/<student>.yaml, and recipes/nano-r1.yaml at tiny sizes; the planner refuses an opd step it cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.config import build_config, load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
OPD_STUDENTS = ["qwen-1.5b", "qwen-7b", "llama-8b", "qwen-14b", "qwen-32b", "llama-70b"]
NANO_TINY = ["nano-task.train_problems=48", "nano-task.heldout_problems=16", "nano-task.validation_problems=8",
             "nano-task.warmup_examples=128", "tiny.layers=2", "sft.max_steps=4", "grpo.max_steps=3",
             "grpo.per_device_train_batch_size=16", "grpo.num_generations=4", "opd.max_steps=4",
             "opd.per_device_train_batch_size=8", "eval.samples=2", "pipeline.check=[]"]


def steps_of(path: Path, sets: list[str] | None = None) -> dict:
    from distill.config import parse_sets
    from distill.stages.pipeline.config import PipelineConfig
    from distill.stages.pipeline.stage import plan_steps

    recipe = load_recipe(path)
    recipe["__sets__"] = parse_sets(sets or [], "pipeline")
    cfg = build_config(PipelineConfig, recipe["pipeline"], source=str(path))
    return {s.name: s for s in plan_steps(cfg, recipe)}


def test_r1_recipe_plans_offline(capsys):
    assert main(["pipeline", "--recipe", str(RECIPES / "r1.yaml"), "--plan"]) == 0
    out = capsys.readouterr().out
    for step in ("cold-start (sft)", "reasoning-rl (grpo)", "rs-traces (generate)", "rs-data (filter)", "r1 (sft)",
                 "student-sft (sft)", "student-opd (opd)", "eval-student-opd (eval)"):
        assert step in out, step
    assert "DOES NOT FIT" not in out and "GPU-hours" in out


def test_r1_recipe_has_the_papers_stages():
    steps = steps_of(RECIPES / "r1.yaml")
    rl = steps["reasoning-rl"].config
    assert rl.model.endswith("/cold-start") and rl.template == "chat"
    assert {"accuracy", "language_consistency"} <= set(rl.rewards)
    rs = steps["rs-traces"].config
    assert rs.teacher.endswith("/reasoning-rl") and rs.num_samples > 1
    judged = steps["rs-data"].config
    assert judged.correctness and judged.judge_base_url and judged.judge_model and judged.judge_api_key_env
    assert judged.readability and not judged.allow_code
    assert steps["r1"].config.dataset.endswith("/rs-data") and steps["r1"].config.model == ""   # the base, again
    opd = steps["student-opd"].config
    assert opd.student.endswith("/student-sft") and opd.teacher.endswith("/r1") and opd.beta == 1.0
    assert steps["cold-start-traces"].out != steps["rs-traces"].out


@pytest.mark.parametrize("student", OPD_STUDENTS)
def test_opd_recipes_plan_offline_and_fit(student, capsys):
    assert main(["pipeline", "--recipe", str(RECIPES / "opd" / f"{student}.yaml"), "--plan"]) == 0
    out = capsys.readouterr().out
    opd = out.split("(opd) ->", 1)[1].split("\n[", 1)[0]
    assert f"shape {student}" in opd and "-> fits" in opd and "GPU-hours" in opd


def test_opd_plan_counts_the_teacher_sharded_under_fsdp_and_zero3_and_whole_under_ddp(capsys):
    """distill opd shards the in-process teacher as the student is under FSDP (shard_teacher) and TRL does under
    ZeRO-3; under DDP every GPU holds it whole, so a 32B teacher does not fit beside a 7B student there."""
    def opd_memory(strategy: str) -> str:
        assert main(["pipeline", "--recipe", str(RECIPES / "opd" / "qwen-7b.yaml"), "--plan",
                     "--set", f"opd.strategy={strategy}"]) == 0
        block = capsys.readouterr().out.split("(opd) ->", 1)[1].split("\n[", 1)[0]
        return next(line for line in block.splitlines() if "memory per GPU" in line)

    zero3, fsdp, ddp = opd_memory("zero3"), opd_memory("fsdp"), opd_memory("ddp")
    assert "teacher 7.6 (bf16, sharded)" in zero3 and "-> fits" in zero3
    assert "teacher 7.6 (bf16, sharded)" in fsdp and "-> fits" in fsdp
    assert "teacher 61.0 (bf16)" in ddp and "DOES NOT FIT" in ddp


def test_opd_recipe_resolves_for_distill_opd(capsys):
    assert main(["opd", "--recipe", str(RECIPES / "opd" / "qwen-7b.yaml"), "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "beta: 1.0" in text and "teacher: out/r1-distill/qwen-32b/student" in text


def test_nano_r1_plans_at_tiny_sizes_and_compares_equal_compute(capsys):
    sets = [x for s in NANO_TINY for x in ("--set", s)]
    assert main(["pipeline", "--recipe", str(RECIPES / "nano-r1.yaml"), "--plan", *sets]) == 0
    assert "student-opd (opd)" in capsys.readouterr().out
    steps = steps_of(RECIPES / "nano-r1.yaml")
    opd, more = steps["student-opd"].config, steps["student-more-sft"].config
    assert opd.student == more.model and opd.teacher.endswith("/grpo")
    assert opd.max_steps == more.max_steps                                   # the same extra steps ...
    assert opd.per_device_train_batch_size * opd.gradient_accumulation_steps == \
        more.per_device_train_batch_size * more.gradient_accumulation_steps   # ... of the same batch
    assert opd.learning_rate == more.learning_rate
    assert {"eval-student", "eval-student-opd", "eval-student-more-sft"} <= set(steps)


def test_plan_refuses_a_teacher_of_another_family(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "include": [str(RECIPES / "opd" / "_base.yaml")],
        "opd": {"student": "s", "teacher": "t", "student_shape": "qwen-7b", "teacher_shape": "llama-70b"},
        "pipeline": {"out": str(tmp_path / "run"), "steps": [{"name": "opd", "stage": "opd"}]}}))
    assert main(["pipeline", "--recipe", str(recipe), "--plan"]) == 2
    assert "needs one tokenizer" in capsys.readouterr().err
