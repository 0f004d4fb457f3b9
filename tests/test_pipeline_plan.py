"""`distill pipeline --plan`: the paper's recipes plan offline; steps that disagree are refused; --set wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.cli import main

RECIPES = sorted(p for p in Path("recipes/r1-distill").glob("*.yaml") if not p.name.startswith("_"))

BASE = """
generate: {{teacher: deepseek-ai/DeepSeek-R1-Distill-Qwen-32B, dataset: d, engine: vllm, limit: 10,
            max_tokens: {gen_tokens}, tensor_parallel_size: 2}}
filter: {{max_tokens: {filter_tokens}}}
sft: {{student: qwen-7b, max_length: 32768, max_position_embeddings: 131072, num_processes: {procs},
       strategy: zero2, accelerate_config: "{accel}"}}
eval: {{task: aime24, max_tokens: 32768, samples: 4, model_args: {model_args}}}
pipeline:
  out: {out}
  steps:
    - {{name: traces, stage: generate}}
    - {{name: filtered, stage: filter, set: {{traces: ["{{out}}/traces"]}}}}
    - {{name: student, stage: sft, set: {{dataset: "{{out}}/filtered", learning_rate: 1.0e-5}}}}
    - {{name: eval-aime24, stage: eval, set: {{model: "{{out}}/student"}}}}
"""


def _recipe(tmp_path, **kw):
    values = {"gen_tokens": 32768, "filter_tokens": 32768, "procs": 8, "accel": "", "model_args": "{}",
              "out": tmp_path / "run"}
    values.update(kw)
    path = tmp_path / "r.yaml"
    path.write_text(BASE.format(**values))
    return str(path)


def _plan(recipe, *sets, capsys):
    argv = ["pipeline", "--recipe", recipe, "--plan"] + [a for s in sets for a in ("--set", s)]
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_paper_recipes_plan_offline(path, capsys):
    rc, out, err = _plan(str(path), capsys=capsys)
    assert rc == 0, err
    assert "GPU-hours" in out and "memory per GPU" in out and "assumptions" in out
    assert "eval-aime25" in out and "64 samples x 32,768 max_tokens" in out


def test_six_students_have_a_recipe():
    assert {p.stem for p in RECIPES} == {"qwen-1.5b", "qwen-7b", "llama-8b", "qwen-14b", "qwen-32b", "llama-70b"}


def test_short_student_context_is_refused_naming_both_steps(capsys):
    rc, _, err = _plan("recipes/r1-distill/qwen-7b.yaml", "eval.max_tokens=32768",
                       "sft.max_position_embeddings=32768", capsys=capsys)
    assert rc == 2
    assert "'student' (sft)" in err and "'eval-aime24' (eval)" in err and "max_position_embeddings" in err


def test_hand_made_recipe_plans(tmp_path, capsys):
    rc, out, err = _plan(_recipe(tmp_path), capsys=capsys)
    assert rc == 0, err
    assert "10 problems x 4 samples" in out


def test_filter_longer_than_sft_is_refused(tmp_path, capsys):
    rc, _, err = _plan(_recipe(tmp_path, filter_tokens=65536), capsys=capsys)
    assert rc == 2 and "'filtered' (filter)" in err and "'student' (sft)" in err and "filter.max_tokens" in err


def test_teacher_context_too_short_is_refused(tmp_path, capsys):
    rc, _, err = _plan(_recipe(tmp_path, gen_tokens=131072), capsys=capsys)
    assert rc == 2 and "'traces' (generate)" in err and "131072 positions" in err


def test_eval_template_not_the_trained_one_is_refused(tmp_path, capsys):
    rc, _, err = _plan(_recipe(tmp_path, model_args="{chat_template: llama3}"), capsys=capsys)
    assert rc == 2 and "'eval-aime24' (eval)" in err and "'student' (sft)" in err and "'chatml'" in err


def test_launch_config_process_count_mismatch_is_refused(tmp_path, capsys):
    accel = tmp_path / "accel.yaml"
    accel.write_text("num_processes: 8\nnum_machines: 1\n")
    rc, _, err = _plan(_recipe(tmp_path, procs=16, accel=accel), capsys=capsys)
    assert rc == 2 and "'student' (sft)" in err and "num_machines" in err and str(accel) in err
    rc, _, err = _plan(_recipe(tmp_path, procs=12), capsys=capsys)
    assert rc == 2 and "GPUs per node" in err


def test_set_wins_over_a_steps_own_set(tmp_path, capsys):
    recipe = _recipe(tmp_path)
    assert main(["pipeline", "--recipe", recipe, "--dry-run"]) == 0
    assert "1.0e-05" in capsys.readouterr().out
    assert main(["pipeline", "--recipe", recipe, "--dry-run", "--set", "sft.learning_rate=0.000123",
                 "--set", "eval.samples=7"]) == 0
    out = capsys.readouterr().out
    assert "0.000123" in out and "1.0e-05" not in out and "samples: 7" in out
