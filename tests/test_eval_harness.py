"""distill eval through lm-eval end to end on a tiny model (hf backend): 3 local problems, n = 4, 32 tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.cli import main
from distill.data.prompts import user_content
from distill.verify import verify_completion

PROBLEMS = [{"id": 60 + i, "problem": p, "answer": a} for i, (p, a) in enumerate([
    ("What is $3 + 4$?", "007"), ("Compute $12 \\times 12$.", "144"), ("Find $2^{10} \\bmod 1000$.", "24")])]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "three.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return path


def run_eval(model: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["eval", "--task", "aime24", "--model", str(model), "--backend", "hf", "--data-file", str(data),
                 "--samples", "4", "--max-tokens", "32", "--out", str(out), "--verify-workers", "0", *extra])


@pytest.fixture(scope="module")
def hf_run(tiny_qwen, data_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "hf"
    assert run_eval(tiny_qwen, data_file, out) == 0
    return out


def test_hf_backend_end_to_end_writes_every_output(hf_run):
    results = json.loads((hf_run / "results.json").read_text())
    assert (results["n"], results["num_problems"], results["samples_scored"]) == (4, 3, 12)
    assert results["complete"] is True and results["backend"] == "hf"
    for key in ("pass@1", "pass@1_stderr", "pass@1_ci95", "cons@4", "pass@2", "pass@4"):
        assert key in results
    assert sum(results["status_counts"].values()) == 12
    samples = read_jsonl(hf_run / "samples.jsonl")
    assert [(s["id"], s["sample"]) for s in samples] == [(str(p["id"]), j) for p in PROBLEMS for j in range(4)]
    assert results["pass@1"] == pytest.approx(sum(s["correct"] for s in samples) / 12)
    run = json.loads((hf_run / "run.json").read_text())
    assert run["status"] == "complete" and run["inputs"]["model"]["stage"] == "tiny"
    assert run["counts"]["problems"] == 3 and "lm_eval" in run["versions"]
    assert "| metric | value (%) |" in (hf_run / "summary.md").read_text()


def test_lm_eval_saw_the_papers_prompt_and_sampling(hf_run, tiny_qwen):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    lm_samples = read_jsonl(hf_run / "lm_eval" / "samples.jsonl")
    assert [s["doc"]["id"] for s in lm_samples] == [str(p["id"]) for p in PROBLEMS]
    for s, problem in zip(lm_samples, PROBLEMS, strict=True):
        prompt, gen_kwargs = s["arguments"][0]
        expected = tok.apply_chat_template([{"role": "user", "content": user_content(problem["problem"])}],
                                           tokenize=False, add_generation_prompt=True)
        assert prompt == expected                      # one user turn, no system prompt
        assert prompt.rstrip().endswith("Please reason step by step, and put your final answer within "
                                        "\\boxed{}.\n<|assistant|>".rstrip())
        assert gen_kwargs == {"until": [], "do_sample": True, "temperature": 0.6, "top_p": 0.95, "max_gen_toks": 32}
        (completions,) = s["resps"]
        assert len(completions) == 4 and len(set(completions)) > 1      # 4 sampled, not 1 repeated
        assert s["filtered_resps"] == s["resps"]        # the filter kept every sample
    results = json.loads((hf_run / "lm_eval" / "results.json").read_text())
    assert set(results["results"]["distill_aime24"]) >= {"pass@1,all_samples", "cons@4,all_samples"}


def test_scores_come_from_distill_verify_and_agree_with_lm_eval(hf_run):
    lm_samples = read_jsonl(hf_run / "lm_eval" / "samples.jsonl")
    ours = read_jsonl(hf_run / "samples.jsonl")
    rescored = [verify_completion(c, s["doc"]["answer"], mode="aime") for s in lm_samples for c in s["resps"][0]]
    assert [v.correct for v in rescored] == [s["correct"] for s in ours]
    assert [v.status for v in rescored] == [s["status"] for s in ours]
    problems = read_jsonl(hf_run / "problems.jsonl")
    for s, p in zip(lm_samples, problems, strict=True):   # lm-eval's per-document metrics are ours
        assert s["pass@1"] == pytest.approx(p["pass@1"]) and s["cons@4"] == float(p["cons"])
    results = json.loads((hf_run / "results.json").read_text())
    assert results["lm_eval"]["metrics"]["pass@1"] == pytest.approx(results["pass@1"])


def test_lm_eval_samples_rescore_to_the_same_results(hf_run, tmp_path):
    lm_samples = read_jsonl(hf_run / "lm_eval" / "samples.jsonl")
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps({"id": s["doc"]["id"], "answer": s["doc"]["answer"],
                                     "completions": s["resps"][0]}) + "\n" for s in lm_samples))
    assert main(["eval", "--task", "aime24", "--completions", str(f), "--out", str(tmp_path / "r"),
                 "--verify-workers", "0"]) == 0
    a = json.loads((hf_run / "results.json").read_text())
    b = json.loads((tmp_path / "r" / "results.json").read_text())
    for key in ("pass@1", "cons@4", "pass@2", "pass@4", "status_counts", "num_problems", "n"):
        assert a[key] == b[key], key


def test_force_think_chunks_resume_and_settings_guard(tiny_qwen, data_file, tmp_path, capsys):
    out = tmp_path / "ft"
    # chunks of 4 completions = 1 problem each -> 3 lm-eval calls, each saved
    assert run_eval(tiny_qwen, data_file, out, "--force-think", "--chunk-completions", "4") == 0
    chunks = sorted((out / "lm_eval").glob("chunk-*.samples.jsonl"))
    assert len(chunks) == 3
    lm_samples = read_jsonl(out / "lm_eval" / "samples.jsonl")
    for s in lm_samples:
        assert s["arguments"][0][0].endswith("<|assistant|><think>\n")     # the prefill, newline kept
    results = json.loads((out / "results.json").read_text())
    assert results["prompt_has_think"] is True and results["lm_eval"]["chunks"] == 3
    ours = read_jsonl(out / "samples.jsonl")
    completions = [c for s in lm_samples for c in s["resps"][0]]
    for c, s in zip(completions, ours, strict=True):    # prefilled <think>: no </think> means unfinished
        if "</think>" not in c:
            assert s["status"] == "unfinished"
    capsys.readouterr()

    # a crash after two chunks: the rerun reuses them and generates only the third
    kept = [p.read_bytes() for p in chunks[:2]]
    for p in (out / "lm_eval").glob("chunk-00002.*"):
        p.unlink()
    assert run_eval(tiny_qwen, data_file, out, "--force-think", "--chunk-completions", "4") == 0
    assert "resuming: 2 of 3 chunk(s)" in capsys.readouterr().out
    assert [p.read_bytes() for p in chunks[:2]] == kept
    assert json.loads((out / "results.json").read_text())["lm_eval"]["chunks_reused"] == 2
    assert json.loads((out / "run.json").read_text())["status"] == "complete"

    # other sampling settings never mix with the saved chunks
    assert run_eval(tiny_qwen, data_file, out, "--force-think", "--chunk-completions", "4",
                    "--temperature", "0.7") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert run_eval(tiny_qwen, data_file, out, "--chunk-completions", "4", "--temperature", "0.7",
                    "--overwrite") == 0
    assert json.loads((out / "results.json").read_text())["lm_eval"]["chunks_reused"] == 0


def test_context_that_cannot_hold_prompt_and_completion_is_refused(tiny_qwen, data_file, tmp_path, capsys):
    assert run_eval(tiny_qwen, data_file, tmp_path / "o", "--max-tokens", "5000") == 2
    err = capsys.readouterr().err
    assert "4096 positions" in err and "--max-tokens" in err
    assert run_eval(tiny_qwen, data_file, tmp_path / "o", "--max-model-len", "40") == 2
    assert "shorter than the longest prompt" in capsys.readouterr().err
