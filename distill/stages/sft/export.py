"""After ``distill sft`` trained: the student's final files and run.json's final counts (main process only).

:func:`export_student` turns what the trainer saved into the student folder (the LoRA merged into the base, or full
weights as bf16 shards on a GPU; tokenizer, generation config); :func:`finish` records the losses, speed and steps,
draws ``loss.png``, drops the checkpoints and the tokenized-data cache, and marks run.json complete.
"""

from __future__ import annotations

import gc
import shutil
from pathlib import Path
from typing import Any

from distill.runinfo import RunRecord
from distill.stages.sft.chat import check_training_format
from distill.stages.sft.config import SFTStageConfig
from distill.stages.sft.context import apply_context_extension
from distill.stages.sft.lora import merge_adapter
from distill.stages.sft.output import ADAPTER, CACHE, CHECKPOINTS, clean_saved, write_generation_config
from distill.weights import to_bf16


def release_memory() -> None:
    """Give back what the trainer held (the caller has dropped it) before the base is loaded again to merge."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def export_student(cfg: SFTStageConfig, model_src: str, out: Path, tokenizer: Any, *, cuda: bool) -> None:
    """Finish the folder ``trainer.save_model`` wrote: ``out`` (full weights) or ``out/adapter`` (LoRA).

    ``tokenizer`` is the training one (with its template); a merged LoRA takes the adapter folder's copy instead.
    """
    from transformers import AutoTokenizer


    if cfg.lora and cfg.merge_lora:
        import torch

        merge_dtype = torch.bfloat16 if cuda and cfg.bf16 else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(out / ADAPTER)
        model_config = _student_config(cfg, model_src)
        merge_adapter(model_src, out / ADAPTER, out, config=model_config, tokenizer=tokenizer, dtype=merge_dtype,
                      trust_remote_code=cfg.trust_remote_code)
        write_generation_config(out, tokenizer)
    elif not cfg.lora:
        if cuda and cfg.bf16:
            to_bf16(out)
        write_generation_config(out, tokenizer)
    tokenizer.save_pretrained(out if not cfg.lora or cfg.merge_lora else out / ADAPTER)
    for folder in (out, out / ADAPTER):
        clean_saved(folder)
    if not cfg.lora or cfg.merge_lora:
        check_training_format(AutoTokenizer.from_pretrained(out))   # the saved student renders the training format


def _student_config(cfg: SFTStageConfig, model_src: str) -> Any:
    from transformers import AutoConfig


    config = AutoConfig.from_pretrained(model_src, trust_remote_code=cfg.trust_remote_code)
    apply_context_extension(config, rope_theta=cfg.rope_theta, max_position_embeddings=cfg.max_position_embeddings)
    return config


def finish(cfg: SFTStageConfig, record: RunRecord, out: Path, metrics: dict[str, Any], *, final_step: int,
           model_src: str, resumed: bool) -> None:
    """run.json's final counts (steps, losses, eval loss, tokens/s), ``loss.png``, cleanup, status complete."""
    from distill.stages.sft.callbacks import plot_losses, read_losses

    logged = read_losses(out / "loss.jsonl")
    losses = [r["loss"] for r in logged if r.get("loss") is not None]
    tokens_seen = max((r.get("num_tokens", 0) for r in logged), default=0)
    runtime = metrics.get("train_runtime") or 0.0
    record.counts.update(
        steps=final_step, epochs=round(metrics.get("epoch", 0.0), 3),
        train_loss=round(metrics.get("train_loss", float("nan")), 4),
        first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None,
        eval_loss=metrics.get("eval_loss"), train_runtime_s=round(runtime, 1),
        tokens_per_second=round(tokens_seen / runtime, 1) if runtime and tokens_seen and not resumed else None)
    plot_losses(out, f"{cfg.student} SFT ({Path(model_src).name})")
    if not cfg.keep_checkpoints:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    shutil.rmtree(out / CACHE, ignore_errors=True)
    record.write(out, status="complete")
    c = record.counts
    loss = (f", loss {c['first_loss']:.4f} -> {c['last_loss']:.4f}" if losses else "")
    print(f"sft {cfg.student}: {c['steps']} steps{loss}"
          + (f", eval loss {c['eval_loss']:.4f}" if c.get("eval_loss") is not None else "")
          + (f", {c['tokens_per_second']:,.0f} tokens/s" if c.get("tokens_per_second") else "")
          + f" -> {out}" + (" (merged LoRA)" if cfg.lora and cfg.merge_lora else ""))
