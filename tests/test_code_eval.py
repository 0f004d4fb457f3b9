"""``distill eval --task humaneval|custom --completions FILE``: code completions scored in the sandbox."""

from __future__ import annotations

import gzip
import json

import pytest

from distill.cli import main
from distill.errors import DistillError
from distill.stages.evaluate.completions import load_code_docs
from distill.stages.evaluate.tasks import get_task, humaneval_data_file
from distill.verify import program_of


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _humaneval():
    with gzip.open(humaneval_data_file(), "rt") as fh:
        return [json.loads(line) for line in fh]


def _eval(tmp_path, name, rows, *extra):
    comps = _write(tmp_path / f"{name}.jsonl", rows)
    out = tmp_path / name
    assert main(["eval", *extra, "--completions", str(comps), "--out", str(out), "--verify-workers", "2"]) == 0
    return json.loads((out / "results.json").read_text()), out


def test_humaneval_canonical_solutions_all_pass_and_stub_bodies_all_fail(tmp_path):
    problems = _humaneval()
    assert len(problems) == 164 and get_task("humaneval").mode == "code"
    right = [{"id": p["task_id"], "completions": [p["canonical_solution"]]} for p in problems]
    results, out = _eval(tmp_path, "right", right, "--task", "humaneval")
    assert results["num_problems"] == 164 and results["n"] == 1
    assert results["pass@1"] == 1.0 and results["status_counts"] == {"correct": 164}
    assert results["failure_kinds"] == {} and "cons@1" not in results

    wrong = [{"id": p["task_id"], "completions": ["    return None\n"]} for p in problems]
    results, out = _eval(tmp_path, "wrong", wrong, "--task", "humaneval")
    assert results["pass@1"] == 0.0 and results["num_problems"] == 164
    assert sum(results["failure_kinds"].values()) == 164 and "correct" not in results["status_counts"]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 164 and not any(s["correct"] for s in samples)


def test_humaneval_fenced_answers_after_reasoning_and_pass_at_k(tmp_path):
    p0, p1 = _humaneval()[:2]
    fenced_right = ("<think>compare every pair</think>\nHere it is:\n```python\ndef has_close_elements(numbers, "
                    "threshold):\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) "
                    "for b in numbers[i + 1:])\n```")
    fenced_wrong = "<think>hmm</think>\n```python\ndef has_close_elements(numbers, threshold):\n    return True\n```"
    no_code = "<think>I could not finish</think> Sorry."
    loop = "<think>spin</think>\n```python\ndef separate_paren_groups(s):\n    while True:\n        pass\n```"
    rows = [{"id": p0["task_id"], "completions": [fenced_right, fenced_wrong]},
            {"id": p1["task_id"], "completions": [no_code, p1["canonical_solution"]]}]
    results, out = _eval(tmp_path, "mixed", rows, "--task", "humaneval", "--limit", "2")
    assert results["pass@1"] == 0.5 and results["pass@2"] == 1.0 and results["n"] == 2
    assert results["failure_kinds"] == {"no_code": 1, "wrong_answer": 1}
    assert "Failures: no_code 1, wrong_answer 1." in (out / "summary.md").read_text()
    # a hostile program times out instead of hanging the eval (sandbox limits)
    assert program_of(loop, p1["prompt"]).startswith(p1["prompt"].rstrip("\n"))


def test_custom_code_problems_function_and_stdin_tests(tmp_path):
    data = _write(tmp_path / "code.jsonl", [
        {"id": "add", "prompt": "def add(a, b):\n", "test": "def check(f):\n    assert f(2, 3) == 5\n",
         "entry_point": "add"},
        {"id": "echo", "inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]},
    ])
    assert [d["id"] for d in load_code_docs(data)] == ["add", "echo"]
    rows = [{"id": "add", "completions": ["    return a + b\n", "    return a - b\n"]},
            {"id": "echo", "completions": ["```python\na, b = map(int, input().split())\nprint(a + b)\n```",
                                           "```python\nprint(3)\n```"]}]
    results, _ = _eval(tmp_path, "custom", rows, "--task", "custom", "--data-file", str(data))
    assert results["pass@1"] == 0.5 and results["verify_mode"] == "code"
    assert results["failure_kinds"] == {"wrong_answer": 2}


def test_code_task_refuses_a_model_and_unknown_ids(tmp_path):
    with pytest.raises(DistillError):
        from distill.stages.evaluate.config import EvalConfig
        from distill.stages.evaluate.stage import run

        run(EvalConfig(task="humaneval", model="m", out=str(tmp_path / "o")))
    comps = _write(tmp_path / "bad.jsonl", [{"id": "HumanEval/9999", "completions": ["    return 1\n"]}])
    assert main(["eval", "--task", "humaneval", "--completions", str(comps), "--out", str(tmp_path / "b")]) != 0
