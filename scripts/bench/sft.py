"""Benchmark SFT batching: packed (best-fit decreasing, padding-free) vs padded batches, measured in one run.

CPU (default): a tiny Qwen2 model built from its config trains one pass over synthetic examples whose lengths
follow a long-tailed (log-normal) distribution like R1 traces, scaled down so the pass takes about a minute on
two cores. Three ways of batching the same examples are timed (forward, backward, AdamW step):

- padded: random batches of ``--batch`` examples, each padded to its longest;
- padded, length-grouped: the same, after sorting by length (the usual mitigation);
- packed: TRL's best-fit-decreasing packing into rows of ``--max-length`` tokens, padding-free (what
  ``distill sft`` does), one row per step.

It prints real (non-pad) tokens per second and the share of computed positions that are padding, and the
speed-up of each variant over plain padding. Nothing is hard-coded: every figure is measured in this run.

GPU (``--gpu``): builds a Qwen2.5-1.5B-shaped model from the registry's shape on the card (random weights, no
download) and trains rows of ``--seq-len`` tokens in bf16 with gradient checkpointing, for each attention kernel
in ``--attn`` and each row layout in ``--layouts``: ``packed`` (long-tailed documents packed padding-free, as
``distill sft`` trains) and ``single`` (one causal document per row, the kernel's best case). It reports tokens/s
and model FLOPs utilisation (MFU: 6 x matmul parameters + causal attention within each document, per token, over
the card's dense bf16 peak). It refuses to run without CUDA.

    python scripts/bench/sft.py                       # CPU, about a minute
    python scripts/bench/sft.py --gpu --seq-len 16384 # on a GPU machine
    python scripts/bench/sft.py --gpu --attn sdpa,flex_attention --layouts packed
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Dense bf16 peak FLOP/s by device name (vendor datasheets, without sparsity).
PEAK_BF16 = {"H200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12, "H100": 989e12,
             "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}


def long_tailed_lengths(n: int, median: float, sigma: float, lo: int, hi: int, seed: int) -> list[int]:
    """Log-normal lengths clipped to [lo, hi]: most examples short, a long tail up to the limit."""
    rng = random.Random(seed)
    return [int(min(hi, max(lo, rng.lognormvariate(math.log(median), sigma)))) for _ in range(n)]


# ---------------------------------------------------------------------------------------------------- CPU
def tiny_model(vocab: int, layers: int, hidden: int):  # type: ignore[no-untyped-def]
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model("qwen2", vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=hidden // 64, num_key_value_heads=max(1, hidden // 128),
                                  intermediate_size=2 * hidden, max_position_embeddings=8192, tie_word_embeddings=True,
                                  head_dim=64)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")


def padded_batches(examples: list[list[int]], batch: int, pad_id: int, *, grouped: bool, seed: int):  # type: ignore[no-untyped-def]
    import torch

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    if grouped:
        order.sort(key=lambda i: len(examples[i]))
    chunks = [order[i:i + batch] for i in range(0, len(order), batch)]
    if grouped:
        random.Random(seed).shuffle(chunks)
    out = []
    for chunk in chunks:
        width = max(len(examples[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad_id)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, i in enumerate(chunk):
            ids[r, :len(examples[i])] = torch.tensor(examples[i])
            mask[r, :len(examples[i])] = 1
        labels = ids.masked_fill(mask == 0, -100)
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


def packed_batches(examples: list[list[int]], max_length: int, pad_id: int):  # type: ignore[no-untyped-def]
    from datasets import Dataset
    from trl.data_utils import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    ds = Dataset.from_dict({"input_ids": examples, "labels": examples})
    packed = pack_dataset(ds, max_length, "bfd")
    collate = DataCollatorForLanguageModeling(pad_token_id=pad_id, padding_free=True)
    batches = []
    for row in packed:
        b = collate([row])
        batches.append({k: b[k] for k in ("input_ids", "position_ids", "labels")})
    return batches


def time_pass(model, batches, real_tokens: int) -> dict:  # type: ignore[no-untyped-def]
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    computed = sum(b["input_ids"].numel() for b in batches)
    model.train()
    start = time.perf_counter()
    for b in batches:
        loss = model(**b, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - start
    return {"steps": len(batches), "computed": computed, "padding": 1 - real_tokens / computed,
            "seconds": elapsed, "tokens_per_s": real_tokens / elapsed}


def run_cpu(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    lengths = long_tailed_lengths(args.examples, args.median, args.sigma, 16, args.max_length, args.seed)
    rng = random.Random(args.seed)
    vocab, pad_id = 1024, 0
    examples = [[rng.randrange(1, vocab) for _ in range(n)] for n in lengths]
    real = sum(lengths)
    s = sorted(lengths)
    print(f"{len(lengths)} examples, {real:,} tokens; length median {s[len(s) // 2]}, p95 "
          f"{s[int(0.95 * len(s))]}, max {s[-1]} (log-normal, clipped to {args.max_length}); model: qwen2 "
          f"{args.layers} layers x {args.hidden}, CPU threads {torch.get_num_threads()}")
    variants = {
        f"padded (batch {args.batch})": padded_batches(examples, args.batch, pad_id, grouped=False, seed=args.seed),
        f"padded, length-grouped (batch {args.batch})": padded_batches(examples, args.batch, pad_id, grouped=True,
                                                                        seed=args.seed),
        f"packed bfd ({args.max_length}/row)": packed_batches(examples, args.max_length, pad_id),
    }
    warm = tiny_model(vocab, args.layers, args.hidden)
    time_pass(warm, variants[next(iter(variants))][:2], 1)      # warm-up: first-call allocations
    results = {}
    for name, batches in variants.items():
        results[name] = time_pass(tiny_model(vocab, args.layers, args.hidden), batches, real)
    base = results[next(iter(results))]["tokens_per_s"]
    print(f"\n{'variant':<40} {'steps':>6} {'computed':>10} {'padding':>8} {'seconds':>8} {'real tok/s':>11} "
          f"{'speed-up':>9}")
    for name, r in results.items():
        print(f"{name:<40} {r['steps']:>6} {r['computed']:>10,} {r['padding']:>8.1%} {r['seconds']:>8.1f} "
              f"{r['tokens_per_s']:>11,.0f} {r['tokens_per_s'] / base:>8.2f}x")
    print("\nreal tok/s counts non-pad tokens only. On CPU, SDPA attends over a packed row as one sequence under a "
          "block-diagonal\nmask that transformers builds for each batch, so a row costs more than a batch of "
          "the same short examples\n(attention and mask grow with the square of the row length); on a GPU, "
          "flash-attention's varlen kernels\nattend within each packed example only (see --gpu).")


# ---------------------------------------------------------------------------------------------------- GPU
def matmul_params(s) -> int:  # type: ignore[no-untyped-def]
    """Parameters that take part in a matmul per token: decoder linears and the LM head (not the lookup)."""
    kv = s.kv_heads * s.head_dim
    per_layer = 2 * s.hidden * s.hidden + 2 * s.hidden * kv + 3 * s.hidden * s.intermediate
    return s.layers * per_layer + s.vocab * s.hidden


def gpu_rows(seq_len: int, count: int, seed: int, layout: str) -> list[list[int]]:
    """Document lengths per row: ``packed`` fills each row of ``seq_len`` with whole long-tailed documents (what
    ``distill sft`` trains on); ``single`` is one document of ``seq_len`` per row (plain causal attention, the
    upper bound any kernel reaches)."""
    if layout == "single":
        return [[seq_len] for _ in range(count)]
    docs = long_tailed_lengths(4096, seq_len / 6, 0.9, 64, seq_len, seed)
    rows, row, used = [], [], 0
    for n in docs:
        if used + n > seq_len:
            rows.append(row)
            row, used = [], 0
        row.append(n)
        used += n
    return rows[:count]


def run_gpu(args: argparse.Namespace) -> None:
    import torch

    if not torch.cuda.is_available():
        print("scripts/bench/sft.py --gpu needs a CUDA GPU, and torch.cuda.is_available() is False here. "
              "Run it on a GPU machine, or drop --gpu for the CPU benchmark.", file=sys.stderr)
        sys.exit(2)
    import importlib.util

    from transformers import AutoConfig, AutoModelForCausalLM

    from distill.students import get_student

    s = get_student("qwen-1.5b")
    name = torch.cuda.get_device_name(0)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else next(
        (v for k, v in PEAK_BF16.items() if k in name), None)
    if peak is None:
        print(f"unknown peak bf16 FLOP/s for {name!r}: pass --peak-tflops", file=sys.stderr)
        sys.exit(2)
    auto = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"
    attns = [auto if a == "auto" else a for a in args.attn.split(",")]
    layouts = args.layouts.split(",")
    config = AutoConfig.for_model("qwen2", vocab_size=s.vocab, hidden_size=s.hidden, num_hidden_layers=s.layers,
                                  num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
                                  intermediate_size=s.intermediate, max_position_embeddings=max(32768, args.seq_len),
                                  tie_word_embeddings=s.tied_embeddings, rope_theta=s.rope_theta)
    torch.manual_seed(0)
    with torch.device("cuda"):                      # initialise on the card: seconds, not a minute on the host
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attns[0], dtype=torch.bfloat16)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    gen = torch.Generator(device="cuda").manual_seed(0)
    n_mm = matmul_params(s)

    def batch(parts: list[int]) -> dict:
        ids = torch.randint(0, s.vocab, (1, sum(parts)), device="cuda", generator=gen)
        pos = torch.cat([torch.arange(n, device="cuda") for n in parts])[None]
        return {"input_ids": ids, "position_ids": pos, "labels": ids}

    print(f"{name}: Qwen2.5-1.5B shape ({s.num_parameters() / 1e9:.2f} B params, random weights), bf16 weights, "
          f"gradient checkpointing, fused AdamW, rows of {args.seq_len} tokens, {args.warmup} untimed + "
          f"{args.steps} timed steps per variant")
    print(f"{'attention':<20} {'layout':<8} {'docs/row':>8} {'tokens/s':>10} {'MFU':>6} {'HFU':>6} {'s/step':>7} "
          f"{'peak GiB':>8}")
    results = {}
    for attn in attns:
        try:
            model.set_attn_implementation(attn)
        except Exception as exc:  # noqa: BLE001 - a kernel this machine lacks is a row of the report
            print(f"{attn:<20} unavailable: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        for layout in layouts:
            rows = gpu_rows(args.seq_len, args.steps + args.warmup, args.seed, layout)
            torch.cuda.reset_peak_memory_stats()
            tokens, attn_flops = 0, 0.0
            try:
                for i, parts in enumerate(rows):
                    if i == args.warmup:
                        torch.cuda.synchronize()
                        start = time.perf_counter()
                    loss = model(**batch(parts), use_cache=False).loss
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    if i >= args.warmup:
                        tokens += sum(parts)
                        # causal attention: QK^T and AV, 2 x 2 x n^2/2 x hidden per layer forward, x3 with backward
                        attn_flops += sum(6 * s.layers * s.hidden * n * n for n in parts)
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001
                print(f"{attn:<20} {layout:<8} failed: {type(exc).__name__}: {str(exc)[:160]}")
                opt.zero_grad(set_to_none=True)
                continue
            elapsed = time.perf_counter() - start
            model_flops = 6 * n_mm * tokens + attn_flops
            mfu = model_flops / elapsed / peak
            hfu = (model_flops + 2 * n_mm * tokens + attn_flops / 3) / elapsed / peak
            docs = sum(len(r) for r in rows[args.warmup:]) / max(1, len(rows) - args.warmup)
            results[(attn, layout)] = tokens / elapsed
            print(f"{attn:<20} {layout:<8} {docs:>8.1f} {tokens / elapsed:>10,.0f} {mfu:>6.1%} {hfu:>6.1%} "
                  f"{elapsed / args.steps:>7.2f} {torch.cuda.max_memory_allocated() / 2**30:>8.1f}", flush=True)
    ref = results.get((attns[0], "single"))
    if ref:
        for (attn, layout), tps in results.items():
            if layout == "packed":
                print(f"packed rows with {attn} run at {tps / ref:.2f}x the tokens/s of one causal document per row "
                      f"with {attns[0]}")
    print("MFU counts 6 x matmul parameters per token plus causal attention within each document, over the card's "
          f"dense bf16 peak ({peak / 1e12:.0f} TFLOP/s); HFU adds the recomputed forward.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  python scripts/bench/sft.py\n"
                                       "  python scripts/bench/sft.py --examples 256 --max-length 4096\n"
                                       "  python scripts/bench/sft.py --gpu --seq-len 16384 --steps 20")
    p.add_argument("--gpu", action="store_true", help="the GPU MFU benchmark (needs CUDA)")
    p.add_argument("--examples", type=int, default=160, help="CPU: examples in the synthetic set")
    p.add_argument("--max-length", type=int, default=1024, help="CPU: packed row length and length cap")
    p.add_argument("--median", type=float, default=160, help="CPU: median example length (tokens)")
    p.add_argument("--sigma", type=float, default=0.9, help="CPU: log-normal sigma (tail weight)")
    p.add_argument("--batch", type=int, default=8, help="CPU: examples per padded batch")
    p.add_argument("--layers", type=int, default=2, help="CPU: model layers")
    p.add_argument("--hidden", type=int, default=256, help="CPU: model width")
    p.add_argument("--seq-len", type=int, default=8192, help="GPU: packed row length")
    p.add_argument("--steps", type=int, default=10, help="GPU: timed steps")
    p.add_argument("--warmup", type=int, default=3, help="GPU: untimed first steps")
    p.add_argument("--attn", default="auto", help="GPU: attention kernels to time, comma-separated (auto = "
                   "flash_attention_2 when flash-attn is installed, else sdpa; also sdpa, flex_attention, eager)")
    p.add_argument("--layouts", default="single,packed", help="GPU: row layouts, comma-separated: 'packed' "
                   "(long-tailed documents packed into each row, as distill sft trains) and 'single' (one causal "
                   "document per row)")
    p.add_argument("--peak-tflops", type=float, default=None, help="GPU: dense bf16 peak, when the card is unknown")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    run_gpu(args) if args.gpu else run_cpu(args)


if __name__ == "__main__":
    main()
