"""The generative judge against a scripted OpenAI-compatible server on 127.0.0.1: it is asked only about the
answers the rules cannot settle, its Yes/No decides them, an unclear reply changes nothing, 429/5xx are
retried, answers are cached (a rerun makes no call), and the API key is never written or printed."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from distill.cli import main
from distill.verify import Verdict
from distill.verify.judge import JUDGE_WHEN, judge_prompt, judge_reason, read_judgement
from distill.verify.judge_cache import JudgeCache

KEY_ENV = "DISTILL_TEST_JUDGE_CREDENTIAL"      # no KEY/TOKEN in the name: only the judge's own scrubbing hides it
SECRET = "judge-secret-5f1c9a0e77d2b3"
B = "\\boxed"
CLEAN = ("First we work through the problem one step at a time and write the partial result down.\n\n"
         "Then we check the result carefully against the original question, and it holds.")


class ScriptedJudge:
    """``/v1/chat/completions`` answering by the answer it is shown; the first responses can be errors."""

    REPLIES = {
        "seven halves": "Seven halves is 7/2, the same number.\nJudgement: Yes",
        "two hundred": "Two hundred is 200.\n\nJudgement: Yes",
        "twelve": "Twelve is not thirteen.\nJudgement: No",
        "maybe thirteen": "I cannot say whether a hedge counts; I was sent {auth}.",
    }

    def __init__(self) -> None:
        self.failures: list[int] = []
        self.hits = 0                          # requests, errors included
        self.answered: Counter[str] = Counter()  # answers replied to, by the answer shown
        self.auth: set[str | None] = set()
        self.lock = threading.Lock()

    def reply(self, prompt: str, auth: str | None) -> str:
        shown = prompt.split("## Student's final answer\n", 1)[1].split("\n\n", 1)[0]
        for needle, text in self.REPLIES.items():
            if needle in shown:
                with self.lock:
                    self.answered[needle] += 1
                return text.format(auth=auth)
        return "Judgement: No"


@pytest.fixture
def judge_server():
    script = ScriptedJudge()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):   # keep the test output quiet
            pass

        def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            auth = self.headers.get("Authorization")
            with script.lock:
                script.hits += 1
                script.auth.add(auth)
                status = script.failures.pop(0) if script.failures else 200
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            if status != 200:   # the error body quotes the header: the client must never pass it on
                return self._send(status, {"error": {"message": f"busy; you sent {auth}"}}, {"Retry-After": "0"})
            text = script.reply(body["messages"][-1]["content"], auth)
            self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 50, "completion_tokens": 9}})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()


def judge_flags(url: str, *extra: str) -> list[str]:
    return ["--judge-base-url", url, "--judge-model", "judge-m", "--judge-api-key-env", KEY_ENV,
            "--judge-backoff", "0.01", "--judge-retries", "3", *extra]


# ------------------------------------------------------------------------------------------------ the rules


def test_only_answers_the_rules_cannot_settle_are_asked():
    assert judge_reason("incorrect", "seven halves", "7/2", JUDGE_WHEN) == "incorrect"
    assert judge_reason("incorrect", r"\text{two hundred}", "200", JUDGE_WHEN) == "incorrect"
    assert judge_reason("incorrect", "199", "200", JUDGE_WHEN) is None          # two plain numbers: settled
    assert judge_reason("incorrect", r"\frac{1}{3}", "0.5", JUDGE_WHEN) is None
    assert judge_reason("no_answer", None, "3", JUDGE_WHEN) == "unparsed"
    assert judge_reason("no_answer", None, "3", ["incorrect"]) is None
    assert judge_reason("unparsable", r"\frac{}{}", "3", JUDGE_WHEN) == "uncomparable"
    assert judge_reason("timeout", "x", "3", JUDGE_WHEN) == "uncomparable"
    assert judge_reason("unfinished", None, "3", JUDGE_WHEN) is None            # never: the trace is cut off
    assert judge_reason("correct", "3", "3", JUDGE_WHEN) is None


def test_the_reply_must_end_with_a_judgement_line():
    assert read_judgement("Same value.\nJudgement: Yes") == "yes"
    assert read_judgement("Judgement: Yes\n...on reflection no.\nJudgement: No") == "no"
    assert read_judgement("**Judgement:** Yes") == "yes"
    assert read_judgement("<think>Judgement: Yes?</think>\nJudgement: No") == "no"
    assert read_judgement("<think>Judgement: Yes, probably") == "unclear"     # never finished thinking
    assert read_judgement("Yes, they are the same.") == "unclear"
    prompt = judge_prompt("What is 7/2?", "7/2", "x" * 5000 + "seven halves")
    assert "seven halves" in prompt and "x" * 2000 not in prompt and prompt.rstrip().endswith('"Judgement: No" if they are not.')


def test_cache_skips_a_torn_line_and_never_glues_onto_it(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = JudgeCache(path)
    cache.put("a", {"decision": "yes", "reply": "Judgement: Yes"})
    cache.close()
    with path.open("a") as fh:
        fh.write('{"key": "b", "decision": "n')
    again = JudgeCache(path)
    assert again.get("a")["decision"] == "yes" and again.get("b") is None and again.skipped == 1
    again.put("c", {"decision": "no", "reply": "Judgement: No"})
    again.close()
    third = JudgeCache(path)
    assert sorted(third.entries) == ["a", "c"] and third.skipped == 1


# ------------------------------------------------------------------------------------------------ filter


def trace(pid: str, sample: int, answer: str, gold: str) -> dict:
    return {"id": pid, "sample": sample, "problem": f"Problem {pid}: compute the value asked for.",
            "prompt": f"Problem {pid}", "completion": f"<think>\n{CLEAN}\nSample {sample}.\n</think>\n\n{answer}",
            "verdict": None, "gold": gold, "completion_tokens": 80, "finish_reason": "stop", "teacher": "t"}


TRACES = [
    trace("p1", 0, f"So ${B}{{\\frac{{7}}{{2}}}}$.", "7/2"),                    # rules: correct
    trace("p1", 1, f"So ${B}{{\\text{{seven halves}}}}$.", "7/2"),              # judge: yes -> kept
    trace("p2", 0, f"So ${B}{{\\text{{two hundred}}}}$.", "200"),               # judge: yes -> kept
    trace("p2", 1, f"So ${B}{{199}}$.", "200"),                                  # rules settle: not asked
    trace("p3", 0, f"So ${B}{{\\text{{twelve}}}}$.", "13"),                     # judge: no
    trace("p3", 1, f"So ${B}{{\\text{{maybe thirteen}}}}$.", "13"),             # judge: unclear -> rules stand
]


def run_filter(root: Path, url: str, out: Path, *extra: str) -> int:
    return main(["filter", "--traces", str(root / "traces"), "--out", str(out), "--no-decontaminate",
                 "--max-tokens", "1000", "--workers", "1", "--verify-workers", "0", *judge_flags(url), *extra])


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def no_secret_anywhere(folder: Path, *texts: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    for text in texts:
        assert SECRET not in text


def test_filter_keeps_what_the_judge_accepts_retries_and_caches(tmp_path, judge_server, monkeypatch, capsys, caplog):
    monkeypatch.setenv(KEY_ENV, SECRET)
    caplog.set_level(logging.DEBUG)
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "shard-00000-of-00001.jsonl").write_text("".join(json.dumps(t) + "\n" for t in TRACES))
    judge_server.failures = [429, 500]        # the first two calls fail: retried
    out = tmp_path / "sft"
    assert run_filter(tmp_path, judge_server.url, out) == 0
    printed = capsys.readouterr()

    assert judge_server.auth == {f"Bearer {SECRET}"}
    assert judge_server.hits == 4 + 2 and sum(judge_server.answered.values()) == 4
    stats = json.loads((out / "filter_stats.json").read_text())
    judge = stats["judge"]
    assert {k: judge[k] for k in ("questions", "calls", "cache_hits", "yes", "no", "unclear", "failures")} == \
        {"questions": 4, "calls": 4, "cache_hits": 0, "yes": 2, "no": 1, "unclear": 1, "failures": 0}
    assert judge["complete"] is True and judge["settings"]["api_key_env"] == KEY_ENV
    assert stats["verdict_sources"] == {"rules": 3, "judge": 3}
    assert "generative judge judge-m: 4 answer(s) asked (4 call(s), 0 from the cache)" in printed.out

    import datasets

    kept = {(r["id"], r["sample"]) for r in datasets.load_from_disk(str(out))}
    assert kept == {("p1", 0), ("p1", 1), ("p2", 0)}
    judged = {(r["id"], r["sample"]): r for r in rows(out / "judged.jsonl")}
    assert set(judged) == {("p1", 1), ("p2", 0), ("p3", 0), ("p3", 1)}
    assert judged["p1", 1]["kept"] and judged["p1", 1]["verdict_source"] == "judge"
    assert judged["p1", 1]["judge"]["decision"] == "yes" and "Judgement: Yes" in judged["p1", 1]["judge"]["reply"]
    dropped = {(r["id"], r["sample"]): r for r in rows(out / "dropped.jsonl")}
    assert dropped["p3", 0]["reason"] == "correctness:incorrect" and dropped["p3", 0]["verdict_source"] == "judge"
    assert dropped["p3", 0]["judge"]["decision"] == "no"
    unclear = dropped["p3", 1]                 # no Judgement line: the rule verdict stands
    assert unclear["verdict_source"] == "rules" and unclear["judge"]["decision"] == "unclear"
    assert "<redacted>" in unclear["judge"]["reply"]      # the server quoted the key back: scrubbed
    assert "judge" not in dropped["p2", 1]                # 199 vs 200: never asked
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["judge_api_key_env"] == KEY_ENV and run["counts"]["judge"]["calls"] == 4
    no_secret_anywhere(out, printed.out, printed.err, caplog.text)

    # A rerun (even with a torn line at the end of the cache) asks nothing.
    with (out / "judge_cache.jsonl").open("a") as fh:
        fh.write('{"key": "0123", "deci')
    hits = judge_server.hits
    assert run_filter(tmp_path, judge_server.url, out, "--overwrite") == 0
    again = json.loads((out / "filter_stats.json").read_text())["judge"]
    assert judge_server.hits == hits and (again["calls"], again["cache_hits"], again["yes"]) == (0, 4, 2)

    # An interrupted run leaves --out holding only the cache: a rerun without --overwrite reuses it.
    leftover = tmp_path / "sft2"
    leftover.mkdir()
    (leftover / "judge_cache.jsonl").write_bytes((out / "judge_cache.jsonl").read_bytes())
    assert run_filter(tmp_path, judge_server.url, leftover) == 0
    assert judge_server.hits == hits and json.loads((leftover / "filter_stats.json").read_text())["judge"]["calls"] == 0
    no_secret_anywhere(tmp_path, capsys.readouterr().out, caplog.text)


def test_rows_other_filters_drop_are_never_sent_to_the_judge(tmp_path, judge_server, monkeypatch):
    """The judge runs after the row filters: a row that is unreadable or too long costs no call, whatever its
    answer; only a row that nothing but its verdict decides is asked."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    code = trace("p1", 0, f"So ${B}{{\\text{{seven halves}}}}$.", "7/2")
    code["completion"] = code["completion"].replace("Sample 0.", "Sample 0.\n```python\nprint(7/2)\n```")
    long = trace("p3", 0, f"So ${B}{{\\text{{twelve}}}}$.", "13")
    long["completion_tokens"] = 5000
    rows_in = [code, long, trace("p2", 0, f"So ${B}{{\\text{{two hundred}}}}$.", "200")]
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "shard-00000-of-00001.jsonl").write_text("".join(json.dumps(t) + "\n" for t in rows_in))
    out = tmp_path / "sft"
    assert run_filter(tmp_path, judge_server.url, out) == 0
    assert dict(judge_server.answered) == {"two hundred": 1} and judge_server.hits == 1
    stats = json.loads((out / "filter_stats.json").read_text())
    assert (stats["judge"]["questions"], stats["judge"]["yes"]) == (1, 1)
    assert {(r["id"], r["sample"]) for r in rows(out / "judged.jsonl")} == {("p2", 0)}
    dropped = {(r["id"], r["sample"]): r for r in rows(out / "dropped.jsonl")}
    assert "readability:code_block" in dropped["p1", 0]["failures"] and "judge" not in dropped["p1", 0]
    assert "length:too_long" in dropped["p3", 0]["failures"] and "judge" not in dropped["p3", 0]
    import datasets

    assert [(r["id"], r["sample"]) for r in datasets.load_from_disk(str(out))] == [("p2", 0)]


def test_an_unreachable_judge_keeps_the_rule_verdicts_and_says_so(tmp_path, monkeypatch, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # closed again: nothing listens there
    monkeypatch.setenv(KEY_ENV, SECRET)
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "shard-00000-of-00001.jsonl").write_text("".join(json.dumps(t) + "\n" for t in TRACES))
    out = tmp_path / "sft"
    assert run_filter(tmp_path, f"http://127.0.0.1:{port}/v1", out, "--judge-retries", "1",
                      "--judge-concurrency", "1") == 0
    printed = capsys.readouterr()
    judge = json.loads((out / "filter_stats.json").read_text())["judge"]
    assert (judge["questions"], judge["failures"], judge["yes"], judge["complete"]) == (4, 4, 0, False)
    assert judge["calls"] == 3                     # the rest were not asked once it failed three times in a row
    assert "not asked" in judge["last_error"]
    assert "JUDGE FAILED on 4" in printed.out
    import datasets

    assert {(r["id"], r["sample"]) for r in datasets.load_from_disk(str(out))} == {("p1", 0)}
    assert all(r["judge"]["decision"] == "failed" and r["verdict_source"] == "rules"
               for r in rows(out / "judged.jsonl"))
    assert not (out / "judge_cache.jsonl").exists() or not rows(out / "judge_cache.jsonl")   # failures not cached


@pytest.mark.parametrize("command", ["filter", "eval"])
def test_a_missing_key_variable_is_one_line_and_exit_2(tmp_path, command, monkeypatch, capsys):
    monkeypatch.delenv("DISTILL_TEST_UNSET_VARIABLE", raising=False)
    flags = ["--judge-base-url", "http://127.0.0.1:9/v1", "--judge-model", "m",
             "--judge-api-key-env", "DISTILL_TEST_UNSET_VARIABLE"]
    (tmp_path / "traces").mkdir()
    comps = tmp_path / "c.jsonl"
    comps.write_text(json.dumps({"id": "a", "answer": "2", "completions": [f"{B}{{2}}"]}) + "\n")
    args = (["filter", "--traces", str(tmp_path / "traces"), "--out", str(tmp_path / "o"), *flags]
            if command == "filter" else
            ["eval", "--task", "custom", "--data-file", str(comps), "--completions", str(comps), "--out",
             str(tmp_path / "o"), *flags])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "DISTILL_TEST_UNSET_VARIABLE is not set" in err
    assert not (tmp_path / "o" / "results.json").exists()


# ------------------------------------------------------------------------------------------------ eval


def test_eval_rescoring_counts_the_judge_and_a_rerun_asks_nothing(tmp_path, judge_server, monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, SECRET)
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"id": "a", "problem": "Halve seven.", "answer": "7/2"}) + "\n"
                    + json.dumps({"id": "b", "problem": "Ten times twenty?", "answer": "200"}) + "\n")
    comps = tmp_path / "comps.jsonl"
    comps.write_text(json.dumps({"id": "a", "completions": [f"{B}{{\\frac{{7}}{{2}}}}",
                                                            f"{B}{{\\text{{seven halves}}}}"]}) + "\n"
                     + json.dumps({"id": "b", "completions": ["No box, but it comes to two hundred.",
                                                            f"{B}{{\\text{{maybe thirteen}}}}"]}) + "\n")
    out = tmp_path / "eval"
    args = ["eval", "--task", "custom", "--data-file", str(data), "--completions", str(comps), "--out", str(out),
            "--verify-workers", "0", *judge_flags(judge_server.url)]
    judge_server.failures = [503]
    assert main(args) == 0
    printed = capsys.readouterr()
    res = json.loads((out / "results.json").read_text())
    judge = res["judge"]
    assert {k: judge[k] for k in ("questions", "calls", "cache_hits", "yes", "no", "unclear", "failures")} == \
        {"questions": 3, "calls": 3, "cache_hits": 0, "yes": 2, "no": 0, "unclear": 1, "failures": 0}
    assert judge["by_reason"] == {"incorrect": 2, "unparsed": 1}
    assert res["pass@1"] == pytest.approx((2 / 2 + 1 / 2) / 2)     # rules alone: (1/2 + 0/2) / 2
    assert res["verdict_sources"] == {"judge": 2, "rules": 2}
    assert "generative judge" in res["protocol"]
    samples = {(s["id"], s["sample"]): s for s in rows(out / "samples.jsonl")}
    assert samples["a", 1]["correct"] and samples["a", 1]["verdict_source"] == "judge"
    assert samples["b", 0]["correct"] and samples["b", 0]["judge"]["reason"] == "unparsed"
    assert samples["b", 1]["status"] == "incorrect" and samples["b", 1]["judge"]["decision"] == "unclear"
    assert "verdict_source" in samples["a", 0] and "judge" not in samples["a", 0]
    assert "generative judge judge-m: 3 answer(s) asked" in printed.out
    assert judge_server.hits == 4 and judge_server.auth == {f"Bearer {SECRET}"}
    no_secret_anywhere(out, printed.out, printed.err)

    assert main(args) == 0 and main([*args, "--overwrite"]) == 0     # the cache survives --overwrite too
    again = json.loads((out / "results.json").read_text())
    assert judge_server.hits == 4 and (again["judge"]["calls"], again["judge"]["cache_hits"]) == (0, 3)
    assert again["pass@1"] == res["pass@1"]
    no_secret_anywhere(out, *capsys.readouterr())


def test_eval_with_a_model_asks_the_judge_about_its_own_samples(tmp_path, tiny_qwen, judge_server, monkeypatch,
                                                               capsys):
    """The --model path: lm-eval samples a tiny model, and the samples the rules cannot settle go to the judge with
    their problem's text from the data file; a rerun with --overwrite samples again and asks only the cache."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    prompts: list[str] = []
    reply = judge_server.reply
    judge_server.reply = lambda prompt, auth: prompts.append(prompt) or reply(prompt, auth)
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"id": "a", "problem": "Halve seven.", "answer": "7/2"}) + "\n"
                    + json.dumps({"id": "b", "problem": "Ten times twenty?", "answer": "200"}) + "\n")
    out = tmp_path / "eval"
    args = ["eval", "--task", "custom", "--data-file", str(data), "--model", str(tiny_qwen), "--backend", "hf",
            "--samples", "2", "--max-tokens", "8", "--out", str(out), "--verify-workers", "0",
            *judge_flags(judge_server.url)]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    samples = rows(out / "samples.jsonl")
    asked = [s for s in samples if "judge" in s]
    assert len(samples) == 4 and asked, "a tiny model's 8 tokens hold no boxed answer: the judge is asked"
    assert res["judge"]["questions"] == res["judge"]["calls"] == len(asked) == len(prompts)
    assert set(res["judge"]["by_reason"]) <= {"unparsed", "uncomparable", "incorrect"}
    assert all(s["judge"]["decision"] == "no" and not s["correct"] for s in asked)     # the script says No
    texts = {"a": "Halve seven.", "b": "Ten times twenty?"}
    assert all(any(t in prompt for t in texts.values()) for prompt in prompts)
    assert all(texts[s["id"]] in "".join(prompts) for s in asked)
    no_secret_anywhere(out, *capsys.readouterr())

    hits = judge_server.hits
    assert main([*args, "--overwrite"]) == 0
    again = json.loads((out / "results.json").read_text())["judge"]
    assert judge_server.hits == hits and again["calls"] == 0 and again["cache_hits"] == len(asked)


def test_judged_verdict_keeps_the_answer_and_says_who_decided():
    from distill.verify.judge import Judgement, apply_judgement

    v = Verdict("no_answer", None, "3", "no boxed answer")
    after = apply_judgement(v, Judgement("no", "Judgement: No", "unparsed", "no_answer"))
    assert after.status == "incorrect" and after.detail.startswith("judge: no") and after.extracted is None
    assert apply_judgement(v, Judgement("failed", None, "unparsed", "no_answer", error="x")) == v


def test_a_refused_key_fails_the_judge_not_the_eval(tmp_path, judge_server, monkeypatch, capsys):
    """A 401 is not retried; after three in a row the rest are not asked; the rules' verdicts are reported."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    comps = tmp_path / "comps.jsonl"
    comps.write_text(json.dumps({"id": "a", "answer": "7/2", "problem": "Halve seven.",
                                 "completions": [f"{B}{{\\frac{{7}}{{2}}}}", f"{B}{{\\text{{seven halves}}}}",
                                                 f"{B}{{\\text{{two hundred}}}}", f"{B}{{\\text{{twelve}}}}",
                                                 "no box here"]}) + "\n")
    out = tmp_path / "eval"
    judge_server.failures = [401] * 10
    assert main(["eval", "--task", "custom", "--data-file", str(comps), "--completions", str(comps), "--out", str(out),
                 "--verify-workers", "0", *judge_flags(judge_server.url, "--judge-concurrency", "1")]) == 0
    printed = capsys.readouterr()
    res = json.loads((out / "results.json").read_text())
    judge = res["judge"]
    assert (judge["questions"], judge["calls"], judge["failures"], judge["complete"]) == (4, 3, 4, False)
    assert judge_server.hits == 3 and res["pass@1"] == pytest.approx(1 / 5)
    assert "JUDGE FAILED on 4" in printed.out and "JUDGE FAILED" in (out / "summary.md").read_text()
    samples = rows(out / "samples.jsonl")
    assert [s["verdict_source"] for s in samples] == ["rules"] * 5
    errors = [s["judge"]["error"] for s in samples if "judge" in s]
    assert len(errors) == 4 and sum("not asked" in e for e in errors) == 1
    assert all("HTTP 401" in e and "Bearer <redacted>" in e and "--judge-api-key-env" in e for e in errors[:3])
    no_secret_anywhere(out, printed.out, printed.err)
