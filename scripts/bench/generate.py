"""How much does `distill generate` cost on top of the engine, and how do vLLM and transformers compare?

    python scripts/bench/generate.py                      # a tiny model made on the fly, CPU settings
    python scripts/bench/generate.py --teacher DIR --problems 64 --samples 4 --max-tokens 128 --dtype bfloat16

In one run, on the same model and prompts, with the same per-problem seeds (so both paths sample the same
tokens and their token counts match):

- vllm bare:    ``LLM.generate(prompts, [SamplingParams(n, seed) ...])``, vLLM's own batch call;
- vllm distill: the generate stage's ``execute()`` on the same ``LLM``: the streaming window, rows, answer
  extraction and verdicts, fsync'd shard appends and run.json;
- hf bare:      ``model.generate`` on the same batches the hf engine forms, seeded the same way;
- hf distill:   ``execute()`` with the hf engine.

Each path runs ``--rounds`` times, alternating which goes first, and its best round counts (the machine is
shared and noisy: every round is printed too). Prints completion tokens/s per path, distill/bare per engine
(target >= 0.9x), whether both paths sampled identical completions, and vLLM/HF.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def setup_env(cache: Path) -> None:
    for key, value in {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(cache),
                       "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"), "OMP_NUM_THREADS": "1",
                       "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
                       "TOKENIZERS_PARALLELISM": "false"}.items():
        os.environ.setdefault(key, value)


def write_problems(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"b{i}", "problem": f"What is {17 * i} + {3 * i + 1}? Show the carries.",
                                        "answer": str(20 * i + 1)}) + "\n" for i in range(n)))
    return path


def make_config(args: argparse.Namespace, data: Path, out: Path, engine: str) -> Any:
    from distill.stages.generate.config import GenerateConfig

    return GenerateConfig(teacher=str(args.teacher), dataset=str(data), out=str(out), engine=engine,
                          num_samples=args.samples, max_tokens=args.max_tokens, dtype=args.dtype,
                          chunk_size=args.chunk_size, batch_size=args.batch_size, verify_workers=0,
                          max_model_len=args.max_model_len, overwrite=True)


def distill_round(cfg: Any, engine: Any) -> tuple[float, int, dict[tuple[str, int], str]]:
    """Time the stage's engine path (prepare, the setup before any engine call, is not timed)."""
    from distill.stages.generate import stage

    plan = stage.prepare(cfg)
    with contextlib.redirect_stdout(io.StringIO()):  # the stage's closing summary, once per round
        start = time.perf_counter()
        stage.execute(plan, engine, progress=False)
        seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in plan.shard_path.read_text().splitlines()]
    return seconds, sum(r["completion_tokens"] for r in rows), {(r["id"], r["sample"]): r["completion"] for r in rows}


def vllm_bare_round(engine: Any, plan: Any, args: argparse.Namespace) -> tuple[float, int, dict[tuple[str, int], str]]:
    from vllm import SamplingParams

    tok = engine._tokenizer
    start = time.perf_counter()                        # tokenizing is part of the call, as in the stage
    prompts = [{"prompt_token_ids": tok(r.prompt, add_special_tokens=r.add_special_tokens)["input_ids"]}
               for r in plan.requests]
    params = [SamplingParams(n=r.n, seed=r.seed, temperature=0.6, top_p=0.95, max_tokens=args.max_tokens)
              for r in plan.requests]
    outputs = engine._llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    texts = {(job.problem.id, job.start + o.index): o.text for job, out in zip(plan.jobs, outputs) for o in out.outputs}
    return seconds, sum(len(o.token_ids) for out in outputs for o in out.outputs), texts


def hf_bare_round(engine: Any, plan: Any, args: argparse.Namespace) -> tuple[float, int, dict[tuple[str, int], str]]:
    import torch
    from transformers import GenerationConfig

    tok, model = engine.tokenizer, engine.model
    config = GenerationConfig(max_new_tokens=args.max_tokens, do_sample=True, temperature=0.6, top_p=0.95, top_k=0,
                              num_return_sequences=args.samples, eos_token_id=sorted(engine.eos_ids),
                              pad_token_id=tok.pad_token_id)
    eos = engine.eos_ids
    tokens, texts = 0, {}
    start = time.perf_counter()
    for b in range(0, len(plan.requests), args.batch_size):
        reqs = plan.requests[b:b + args.batch_size]
        enc = tok([r.prompt for r in reqs], add_special_tokens=False, padding=True, return_tensors="pt")
        torch.manual_seed(reqs[0].seed)
        with torch.inference_mode():
            out = model.generate(**enc, generation_config=config)
        for j, ids in enumerate(out[:, enc["input_ids"].shape[1]:].tolist()):
            stop = next((k for k, t in enumerate(ids) if t in eos), None)
            kept = ids if stop is None else ids[:stop]
            tokens += len(ids) if stop is None else stop + 1
            job = plan.jobs[b + j // args.samples]
            texts[(job.problem.id, job.start + j % args.samples)] = tok.decode(kept, skip_special_tokens=True)
    return time.perf_counter() - start, tokens, texts


def bench_engine(name: str, args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    from distill.stages.generate import stage

    cfg = make_config(args, data, work / f"traces-{name}", name)
    t0 = time.perf_counter()
    engine = stage.build_engine(cfg, name)
    startup = time.perf_counter() - t0
    plan = stage.prepare(cfg)
    bare_fn = vllm_bare_round if name == "vllm" else hf_bare_round
    best = {"bare": (0.0, 0, 0.0), "distill": (0.0, 0, 0.0)}
    rates: dict[str, list[float]] = {"bare": [], "distill": []}
    texts: dict[str, dict[tuple[str, int], str]] = {}
    try:
        bare_fn(engine, plan, args)                      # warm-up both paths (allocations, lazy imports)
        distill_round(cfg, engine)
        for r in range(args.rounds):
            for path in (("bare", "distill") if r % 2 == 0 else ("distill", "bare")):   # alternate the order
                seconds, tokens, got = bare_fn(engine, plan, args) if path == "bare" else distill_round(cfg, engine)
                texts[path] = got
                rates[path].append(tokens / seconds)
                if tokens / seconds > best[path][0]:
                    best[path] = (tokens / seconds, tokens, seconds)
    finally:
        engine.close()
    same = sum(texts["bare"].get(k) == v for k, v in texts["distill"].items())
    return {"startup_s": startup, **best, "rates": rates, "same": same, "total": len(texts["distill"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", type=Path, help="model folder (default: a tiny Qwen2 made on the fly)")
    ap.add_argument("--problems", type=int, default=48)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--chunk-size", type=int, default=16, help="the stage's write chunk (smaller than a real "
                    "run's 64, so the bench pays for more flushes than real runs do)")
    ap.add_argument("--batch-size", type=int, default=8, help="hf: prompts per generate() call")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--max-model-len", type=int, default=1024)
    ap.add_argument("--engines", nargs="+", default=["vllm", "hf"], choices=["vllm", "hf"])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/distill-vllm-cache"))
    args = ap.parse_args()
    setup_env(args.cache)
    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        work = Path(tmp)
        if args.teacher is None:
            from distill.stages.tiny.build import make_tiny
            from distill.stages.tiny.config import TinyConfig

            args.teacher = work / "tiny"
            make_tiny(TinyConfig(out=str(args.teacher)))
        data = write_problems(work / "problems.jsonl", args.problems)
        results = {name: bench_engine(name, args, data, work) for name in args.engines}

    print(f"\n{args.problems} prompts x {args.samples} samples x <= {args.max_tokens} tokens, {args.dtype}, "
          f"best of {args.rounds} rounds, teacher {args.teacher.name}")
    print(f"{'engine':<7} {'path':<8} {'tokens':>7} {'seconds':>8} {'tok/s':>9}   all rounds (tok/s)")
    for name, r in results.items():
        for path in ("bare", "distill"):
            rate, tokens, seconds = r[path]
            spread = " ".join(f"{x:,.0f}" for x in r["rates"][path])
            print(f"{name:<7} {path:<8} {tokens:>7} {seconds:>8.2f} {rate:>9,.0f}   {spread}")
    print()
    for name, r in results.items():
        ratio = r["distill"][0] / r["bare"][0]
        print(f"{name}: distill / bare = {ratio:.2f}x ({'meets' if ratio >= 0.9 else 'BELOW'} the 0.9x target); "
              f"identical completions {r['same']}/{r['total']}; engine start {r['startup_s']:.1f} s")
    if "vllm" in results and "hf" in results:
        v, h = results["vllm"], results["hf"]
        print(f"vllm / hf: bare {v['bare'][0] / h['bare'][0]:.2f}x, distill {v['distill'][0] / h['distill'][0]:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
