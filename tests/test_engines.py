"""Engines without vLLM: the protocol helpers, the hf engine on a tiny model, and the openai engine against
small local fake servers (retries on 429/5xx, a server that hangs, errors that name the endpoint, the
``reasoning_content`` field, the API key kept out of every file)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from distill.engines import (
    Completion,
    EngineError,
    Request,
    Sampling,
    collect,
    derive_seed,
    get_engine,
    resolve_engine_name,
    vllm_available,
)

SECRET = "sk-distill-test-4f8a1c9e2b7d"


# ------------------------------------------------------------------------------------------ protocol helpers
def test_derive_seed_is_stable_and_leaves_room_for_sample_offsets():
    from distill.engines import SEED_MAX

    seeds = {derive_seed(0, f"p{i}") for i in range(200)}
    assert len(seeds) == 200
    assert all(0 <= s < SEED_MAX and s + 1000 < 2**31 for s in seeds)
    assert derive_seed(3, "x") == derive_seed(3, "x") != derive_seed(4, "x")


def test_resolve_engine_name():
    assert resolve_engine_name("hf") == "hf"
    assert resolve_engine_name("auto", base_url="http://h:1/v1") == "openai"
    assert resolve_engine_name("auto") == ("vllm" if vllm_available() else "hf")
    with pytest.raises(ValueError, match="unknown engine"):
        resolve_engine_name("tgi")


# ------------------------------------------------------------------------------------------ hf engine
@pytest.fixture(scope="module")
def hf_engine(tiny_qwen):
    engine = get_engine("hf", str(tiny_qwen), batch_size=3)
    yield engine
    engine.close()


def test_hf_engine_samples_n_per_prompt_with_counts(hf_engine, tiny_qwen):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    prompts = ["<|user|>What is 2 + 3?\n<|assistant|>", "<|user|>Compute 17 - 4, step by step please.\n<|assistant|>",
               "<|user|>1+1?\n<|assistant|>", "<|user|>What is 12 \\times 12?\n<|assistant|>"]
    out = hf_engine.generate(prompts, 4, Sampling(temperature=0.6, top_p=0.95, max_tokens=12), seed=5)
    assert len(out) == 4 and all(len(c) == 4 for c in out)
    for prompt, completions in zip(prompts, out):
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        for c in completions:
            assert isinstance(c, Completion)
            assert c.prompt_tokens == n_prompt            # left padding is not counted
            assert 1 <= c.completion_tokens <= 12
            assert c.finish_reason in ("stop", "length")
            if c.finish_reason == "length":
                assert c.completion_tokens == 12
            assert "<|pad|>" not in c.text and "<|end_of_text|>" not in c.text
    # Sampling, not greedy: four samples of one prompt are not all the same text.
    assert any(len({c.text for c in completions}) > 1 for completions in out)


def test_hf_engine_is_reproducible_for_the_same_batches(hf_engine):
    prompts = ["<|user|>What is 5 + 5?\n<|assistant|>", "<|user|>What is 6 + 1?\n<|assistant|>"]
    sampling = Sampling(max_tokens=10)
    a = hf_engine.generate(prompts, 2, sampling, seed=11)
    b = hf_engine.generate(prompts, 2, sampling, seed=11)
    c = hf_engine.generate(prompts, 2, sampling, seed=12)
    assert [[x.text for x in r] for r in a] == [[x.text for x in r] for r in b]
    assert [[x.text for x in r] for r in a] != [[x.text for x in r] for r in c]


def test_hf_engine_stops_at_eos(hf_engine):
    """With EOS forced to be the only likely token, every sample stops after one token: 'stop', empty text."""
    from transformers import LogitsProcessor

    eos = hf_engine.tokenizer.eos_token_id

    class ForceEOS(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            scores[:, eos] = 1e4
            return scores

    original = hf_engine._generation_kwargs

    def patched(sampling: Sampling, n: int) -> dict[str, Any]:
        return {**original(sampling, n), "logits_processor": [ForceEOS()]}

    hf_engine._generation_kwargs = patched
    try:
        out = hf_engine.generate(["<|user|>2+2?\n<|assistant|>"], 3, Sampling(max_tokens=8))
    finally:
        hf_engine._generation_kwargs = original
    assert [(c.finish_reason, c.completion_tokens, c.text) for c in out[0]] == [("stop", 1, "")] * 3


def test_hf_engine_rejects_chat_messages(hf_engine):
    with pytest.raises(EngineError, match="must be text"):
        collect(hf_engine, [Request([{"role": "user", "content": "hi"}], 1, 0)], Sampling(max_tokens=4))


# ------------------------------------------------------------------------------------------ fake endpoints
class FakeOpenAI:
    """A tiny OpenAI-compatible server on 127.0.0.1 that follows a script of failures, then answers.

    ``script``: statuses to return first ("hang" sleeps past the client's timeout); then 200 answers.
    Records every request body and Authorization header.
    """

    def __init__(self, script: list[Any] | None = None, *, reasoning: bool = False, hang_s: float = 3.0):
        self.script = list(script or [])
        self.reasoning = reasoning
        self.hang_s = hang_s
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.bodies.append(body)
                    fake.auth.append(self.headers.get("Authorization"))
                    action = fake.script.pop(0) if fake.script else 200
                if action == "hang":
                    time.sleep(fake.hang_s)
                    action = 200
                if action != 200:
                    payload = json.dumps({"error": {"message": f"scripted failure {action}"}}).encode()
                    self.send_response(action)
                    if action == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                payload = json.dumps(fake.answer(self.path, body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer '2 + 3' style questions correctly: the boxed sum of the two numbers in the prompt."""
        import re

        text = body["prompt"] if "prompt" in body else body["messages"][0]["content"]
        a, b = (int(x) for x in re.findall(r"\d+", text)[:2])
        usage = {"prompt_tokens": 10 + len(text) // 10, "completion_tokens": 7 + (body.get("seed") or 0) % 5}
        if path.endswith("/chat/completions"):
            message = {"role": "assistant", "content": f"So the sum is $\\boxed{{{a + b}}}$."}
            if self.reasoning:
                message["reasoning_content"] = f"{a} plus {b} is {a + b}."
            else:
                message["content"] = f"<think>\n{a} plus {b}\n</think>\n\n" + message["content"]
            return {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage}
        return {"choices": [{"index": 0, "text": f"{a} plus {b}\n</think>\n\n$\\boxed{{{a + b}}}$",
                             "finish_reason": "stop"}], "usage": usage}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_server():
    servers: list[FakeOpenAI] = []

    def make(script: list[Any] | None = None, **kwargs: Any) -> FakeOpenAI:
        servers.append(FakeOpenAI(script, **kwargs))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _openai(url: str, **kwargs: Any) -> Any:
    kwargs.setdefault("backoff", 0.01)
    kwargs.setdefault("max_backoff", 0.05)
    return get_engine("openai", "served-model", base_url=url, **kwargs)


def test_openai_retries_429_and_500_then_succeeds(fake_server, caplog):
    server = fake_server([429, 500, 503])
    engine = _openai(server.url, concurrency=1, max_retries=3)
    [[c]] = collect(engine, [Request("What is 2 + 3?", 1, 7, add_special_tokens=False)], Sampling(max_tokens=50))
    engine.close()
    assert len(server.bodies) == 4                      # three failures, then the answer
    assert c.text.endswith("$\\boxed{5}$") and c.finish_reason == "stop"
    assert c.prompt_tokens is not None and c.completion_tokens is not None and c.seed == 7
    body = server.bodies[-1]
    assert body["model"] == "served-model" and body["n"] == 1 and body["seed"] == 7
    assert body["temperature"] == 0.6 and body["top_p"] == 0.95 and body["max_tokens"] == 50
    assert body["add_special_tokens"] is False          # a chat-rendered prompt: no second BOS
    assert "HTTP 429" in caplog.text and "retry 1/3" in caplog.text


def test_openai_gives_up_naming_endpoint_and_status(fake_server):
    server = fake_server([503] * 10)
    engine = _openai(server.url, max_retries=2)
    with pytest.raises(EngineError) as err:
        collect(engine, [Request("What is 1 + 1?", 1, 0)], Sampling(max_tokens=5))
    engine.close()
    msg = str(err.value)
    assert f"{server.url}/completions" in msg and "HTTP 503" in msg and "3 attempt(s)" in msg
    assert len(server.bodies) == 3


def test_openai_client_errors_fail_at_once_with_a_hint(fake_server):
    server = fake_server([404])
    engine = _openai(server.url, max_retries=5)
    with pytest.raises(EngineError, match=r"HTTP 404: scripted failure 404 \(is --teacher 'served-model'"):
        collect(engine, [Request("What is 1 + 1?", 1, 0)], Sampling(max_tokens=5))
    engine.close()
    assert len(server.bodies) == 1


def test_openai_timeout_becomes_a_clear_error(fake_server):
    server = fake_server(["hang", "hang"], hang_s=2.0)
    engine = _openai(server.url, request_timeout=0.3, max_retries=1)
    start = time.monotonic()
    with pytest.raises(EngineError) as err:
        collect(engine, [Request("What is 1 + 1?", 1, 0)], Sampling(max_tokens=5))
    engine.close()
    assert time.monotonic() - start < 1.8               # did not wait for the hung server
    msg = str(err.value)
    assert server.url in msg and "no response within 0.3 s" in msg and "--request-timeout" in msg


def test_openai_timeout_is_retried(fake_server):
    server = fake_server(["hang"], hang_s=1.0)
    engine = _openai(server.url, request_timeout=0.3, max_retries=2)
    [[c]] = collect(engine, [Request("What is 4 + 4?", 1, 0)], Sampling(max_tokens=5))
    engine.close()
    assert "\\boxed{8}" in c.text and len(server.bodies) == 2


def test_openai_chat_rejoins_reasoning_content_and_sends_the_key(fake_server, monkeypatch):
    monkeypatch.setenv("MY_TEST_KEY", SECRET)
    server = fake_server(reasoning=True)
    engine = _openai(server.url, api_key_env="MY_TEST_KEY", concurrency=3)
    assert SECRET not in repr(engine)
    messages = [{"role": "user", "content": "What is 20 + 22?"}]
    [completions] = collect(engine, [Request(messages, 3, 100)], Sampling(max_tokens=64))
    engine.close()
    assert len(completions) == 3
    for k, c in enumerate(completions):
        assert c.reasoning == "20 plus 22 is 42."
        assert c.text == "<think>\n20 plus 22 is 42.\n</think>\n\nSo the sum is $\\boxed{42}$."
        assert c.seed == 100 + k
    assert sorted(b["seed"] for b in server.bodies) == [100, 101, 102]   # one request per sample, own seed
    assert set(server.auth) == {f"Bearer {SECRET}"}
    assert all("continue_final_message" not in b for b in server.bodies)


def test_openai_chat_force_think_continues_the_assistant_turn(fake_server):
    server = fake_server()
    engine = _openai(server.url)
    messages = [{"role": "user", "content": "What is 1 + 2?"}, {"role": "assistant", "content": "<think>\n"}]
    collect(engine, [Request(messages, 1, None)], Sampling(max_tokens=8))
    engine.close()
    body = server.bodies[0]
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert "seed" not in body                            # unseeded run


def test_openai_unclosed_reasoning_stays_unclosed():
    from distill.engines.openai_engine import _parse

    data = {"choices": [{"message": {"content": None, "reasoning_content": "long thought"},
                         "finish_reason": "length"}], "usage": {"prompt_tokens": 3, "completion_tokens": 9}}
    c = _parse(data, "http://x/v1/chat/completions", chat=True)
    assert c.text == "<think>\nlong thought" and c.finish_reason == "length" and c.completion_tokens == 9
    with pytest.raises(EngineError, match="no choices"):
        _parse({"error": "x"}, "http://x/v1/completions", chat=False)


def test_openai_rejects_a_bad_base_url():
    with pytest.raises(EngineError, match="not an http"):
        get_engine("openai", "m", base_url="127.0.0.1:8000")
    with pytest.raises(EngineError, match="needs --base-url"):
        get_engine("openai", "m")


# ------------------------------------------------------------------------------------------ key never stored
def test_generate_with_openai_never_writes_the_key(fake_server, tmp_path, monkeypatch, capsys):
    from distill.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = fake_server([429, 500], reasoning=True)
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + {i + 2}?", "answer": str(2 * i + 2)})
                            + "\n" for i in range(5)))
    out = tmp_path / "traces"
    rc = main(["generate", "--engine", "openai", "--base-url", server.url, "--teacher", "served-model",
               "--dataset", str(data), "--out", str(out), "--num-samples", "2", "--max-tokens", "64",
               "--verify-workers", "0", "--concurrency", "4"])
    assert rc == 0
    printed = capsys.readouterr()
    rows = [json.loads(line) for line in (out / "shard-00000-of-00001.jsonl").read_text().splitlines()]
    assert len(rows) == 10
    assert {r["verdict"] for r in rows} == {"correct"}
    assert all(r["reasoning"] and r["prompt"][0]["role"] == "user" for r in rows)
    assert "pass rate 100.0% (10/10)" in printed.out
    for path in Path(out).rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(), path
    assert SECRET not in printed.out + printed.err
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["api_key_env"] == "OPENAI_API_KEY" and run["status"] == "complete"
    assert set(server.auth) == {f"Bearer {SECRET}"}      # the key was used, only on the wire


def test_a_refused_request_is_skipped_and_retried_by_a_rerun(fake_server, tmp_path, capsys):
    """A 400 for one prompt (say, too long for the server) must not stop a long run: that problem is skipped,
    the run ends 'partial', and the rerun fills it in."""
    from distill.cli import main
    from distill.engines import RequestError

    server = fake_server([400])
    engine = _openai(server.url, concurrency=1)
    got = list(engine.stream([Request("What is 1 + 1?", 2, 0), Request("What is 2 + 2?", 1, 0)], Sampling()))
    engine.close()
    assert isinstance(got[0][1], RequestError) and got[0][0] == 0 and "HTTP 400" in str(got[0][1])
    assert got[1][0] == 1 and "\\boxed{4}" in got[1][1][0].text

    server = fake_server([400])
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                            for i in range(4)))
    args = ["generate", "--engine", "openai", "--base-url", server.url, "--teacher", "m", "--dataset", str(data),
            "--out", str(tmp_path / "t"), "--num-samples", "1", "--verify-workers", "0", "--concurrency", "1",
            "--openai-api", "completions", "--template", "r1-zero"]
    assert main(args) == 0
    assert "refused requests: 1" in capsys.readouterr().out
    run = json.loads((tmp_path / "t" / "run.json").read_text())
    assert run["status"] == "partial" and run["counts"]["failed_requests"] == 1
    shard = tmp_path / "t" / "shard-00000-of-00001.jsonl"
    assert len(shard.read_text().splitlines()) == 3
    assert main(args) == 0
    rows = [json.loads(line) for line in shard.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["q0", "q1", "q2", "q3"] and {r["verdict"] for r in rows} == {"correct"}
    assert json.loads((tmp_path / "t" / "run.json").read_text())["status"] == "complete"
