"""`distill grpo` with the `code` reward: code problems' tests reach the reward through the dataset rows, every
completion's program is run in the sandbox, and a tiny run completes with its metrics and held-out evals
(rewards are ~0 for a random model: this checks the path, not learning)."""

from __future__ import annotations

import json

import pytest

from distill.cli import main
from distill.data.problems import load_problems
from distill.rewards import make_code_reward
from distill.stages.grpo.data import to_rows
from distill.stages.nano_task.config import NanoTaskConfig
from distill.stages.nano_task.stage import run as nano_task


@pytest.fixture(scope="module")
def code_task(tmp_path_factory):
    out = tmp_path_factory.mktemp("nano-code") / "task"
    return nano_task(NanoTaskConfig(out=str(out), kind="code", train_problems=16, heldout_problems=4,
                                    validation_problems=2, warmup_examples=4))


def test_grpo_rows_carry_tests_that_the_code_reward_runs(code_task):
    problems = load_problems(str(code_task / "train.jsonl"), tests_column="auto")[:6]
    assert all(p.answer is None and p.tests for p in problems)
    rows = to_rows(problems, template="chat")
    assert all(isinstance(r["tests"], str) for r in rows)          # JSON text: one column type for Arrow
    reward = make_code_reward(workers=2)
    right = [f"<think>\nok\n</think>\n\n```python\n{p.extra['solution']}```" for p in problems]
    assert reward(right, tests=[r["tests"] for r in rows]) == [1.0] * 6
    wrong = ["<think>\nhm\n</think>\n\n```python\nprint(0)\n```"] * 6
    assert reward(wrong, tests=[r["tests"] for r in rows]) == [0.0] * 6


@pytest.mark.slow
def test_tiny_grpo_run_with_the_code_reward_completes(code_task, tiny_qwen, tmp_path):
    out = tmp_path / "grpo"
    recipe = tmp_path / "grpo-code.yaml"
    recipe.write_text(f"""
grpo:
  model: {tiny_qwen}
  dataset: {code_task / "train.jsonl"}
  eval_dataset: {code_task / "validation.jsonl"}
  template: chat
  rewards: {{code: {{weight: 1.0, workers: 2}}}}
  num_generations: 4
  per_device_train_batch_size: 8
  max_completion_length: 16
  learning_rate: 1.0e-4
  beta: 0.02
  temperature: 1.0
  eval_problems: 2
  eval_samples: 2
  eval_every: 0
  eval_max_new_tokens: 16
  eval_batch_size: 4
  bf16: false
  gradient_checkpointing: false
  save_steps: 2
  seed: 0
""")
    assert main(["grpo", "--recipe", str(recipe), "--out", str(out), "--max-steps", "2"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["counts"]["steps"] == 2 and run["rewards"] == {"code": 1.0}
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        code = row["reward/code/mean"]
        assert code is not None and 0.0 <= code <= 1.0          # computed (None/NaN would mean no tests reached it)
        assert row["accuracy"] == code                          # the code reward is code's accuracy
    evals = [json.loads(x) for x in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 2] and all(e["num_problems"] == 2 and e["n"] == 2 for e in evals)
    assert all(set(e["statuses"]) <= {"correct", "wrong_answer", "error", "timeout", "no_code", "memory",
                                      "output_limit", "killed"} for e in evals)   # programs were run, not math-checked
