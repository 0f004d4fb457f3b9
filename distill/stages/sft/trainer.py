"""The SFTTrainer of one ``distill sft`` run: TRL's arguments, the tokenized data, the model (dtype, attention kernel,
Liger, QLoRA, LoRA), run.json's lineage and counts, and the training loop with its stop and error handling.

:func:`build` prepares everything into a :class:`Setup` (tests inspect it); :func:`fit` runs it. Both run on every
rank of a multi-process run.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.runinfo import RunRecord
from distill.stages.sft.chat import (
    check_training_format,
    install_chat_template,
    parameter_count,
    pick_format,
    sync_model_tokens,
)
from distill.stages.sft.config import SFTStageConfig, dataset_identity, train_fingerprint
from distill.stages.sft.context import apply_context_extension, check_positions
from distill.stages.sft.data import Ranks, encode_dataset, load_sft_dataset
from distill.stages.sft.lora import lora_config, quantization_config
from distill.stages.sft.output import CACHE, CHECKPOINTS, GENERATION_DEFAULTS
from distill.students import Student

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- choices
def resolve_liger(choice: str, cuda: bool) -> bool:
    installed = importlib.util.find_spec("liger_kernel") is not None
    if choice == "on" and not installed:
        raise DistillError("liger: on, but liger-kernel is not installed: pip install 'distill[liger]'")
    if choice == "on" and not cuda:
        raise DistillError("liger: on needs a GPU (Triton kernels); use liger: auto or off on CPU")
    return choice == "on" or (choice == "auto" and installed and cuda)


def resolve_attention(choice: str, cuda: bool) -> str:
    if choice != "auto":
        if choice == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            raise DistillError("attn_implementation flash_attention_2 needs flash-attn: pip install flash-attn")
        return choice
    return "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") is not None else "sdpa"


def packing_attention_warning(cfg: SFTStageConfig, attn: str, cuda: bool) -> str | None:
    """What packing costs on a GPU without flash-attn's varlen kernels, or None when it costs nothing extra.

    Measured with scripts/bench/sft.py --gpu on one H100 (Qwen2.5-1.5B shape, rows of 8,192 tokens): packed rows
    ran at 0.38x the tokens/s of one causal document per row under sdpa (MFU 9.8% vs 28.9%), and at 0.20x under
    flex_attention.
    """
    if not (cuda and cfg.packing) or attn == "flash_attention_2":
        return None
    n = cfg.max_length
    return (f"packing on a GPU with {attn} attention: each row of {n} tokens runs under a {n} x {n} block-diagonal "
            f"mask ({n * n / 2**30:.2f} GiB as booleans) on the kernel's masked path, which ran at 0.38x the tokens/s "
            "of unmasked rows on an H100 (scripts/bench/sft.py --gpu). pip install flash-attn for the varlen kernels "
            "that attend within each example, or set packing: false")


def load_dtype(cfg: SFTStageConfig, cuda: bool) -> Any:
    """float32 on CPU; on a GPU bf16 where the fp32 master copy lives elsewhere (DeepSpeed, a frozen LoRA base)."""
    import torch

    if not cuda or not cfg.bf16:
        return torch.float32
    if cfg.lora or cfg.strategy in ("zero2", "zero3"):
        return torch.bfloat16
    return torch.float32       # ddp / fsdp: fp32 master weights, bf16 autocast


def sft_arguments(cfg: SFTStageConfig, *, out: Path, cuda: bool, has_eval: bool, liger: bool) -> dict[str, Any]:
    """Keyword arguments for TRL's SFTConfig (kept a plain dict so tests can read it)."""
    kw: dict[str, Any] = dict(
        output_dir=str(out / CHECKPOINTS),
        max_steps=cfg.max_steps, num_train_epochs=cfg.num_train_epochs,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        gradient_checkpointing=cfg.gradient_checkpointing,
        bf16=bool(cfg.bf16 and cuda), fp16=False, use_cpu=not cuda,
        # Sequence handling: labels come pre-built from the template's assistant mask (distill.stages.sft.data), so
        # TRL's own assistant/completion masking stays off; max_length is always explicit (TRL's default is 1024).
        max_length=cfg.max_length, packing=cfg.packing, packing_strategy="bfd", padding_free=cfg.packing,
        assistant_only_loss=False, completion_only_loss=False,
        logging_steps=cfg.logging_steps, logging_first_step=True,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if has_eval and cfg.eval_steps else "no",
        seed=cfg.seed, data_seed=cfg.seed,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        use_liger_kernel=liger, activation_offloading=cfg.activation_offloading,
        dataset_num_proc=cfg.dataset_num_proc, ddp_find_unused_parameters=False, ddp_timeout=cfg.ddp_timeout,
        trust_remote_code=cfg.trust_remote_code,
    )
    if has_eval and cfg.eval_steps:
        kw["eval_steps"] = cfg.eval_steps
    if cfg.lr_scheduler_type == "cosine_with_min_lr":
        kw["lr_scheduler_kwargs"] = {"min_lr_rate": cfg.min_lr_rate}
    if cfg.gradient_checkpointing:
        kw["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    return kw


# --------------------------------------------------------------------------------------------- build
@dataclass
class Setup:
    """Everything :func:`build` prepared; :func:`fit` runs it (tests inspect it)."""

    trainer: Any
    model: Any
    tokenizer: Any
    model_config: Any
    record: RunRecord
    recorder: Any
    stopper: Any
    stats: Any
    dist: Any
    cuda: bool


def build(cfg: SFTStageConfig, student: Student, model_src: str, out: Path, dist: Any) -> Setup:
    """Tokenizer + template, context extension, dataset, model, LoRA and the SFTTrainer, ready to train."""
    import torch
    from accelerate.utils import gather_object
    from trl import SFTConfig

    from distill.launch import process_group_timeout, sharding_of
    from distill.stages.sft.callbacks import LossRecorder
    from distill.training_stop import GracefulStop

    cuda = torch.cuda.is_available()
    # -------------------------------------------------------------- tokenizer, template, config
    tokenizer, model_config = _load_base(cfg, model_src)
    extended = apply_context_extension(model_config, rope_theta=cfg.rope_theta,
                                       max_position_embeddings=cfg.max_position_embeddings)
    check_positions(model_config, cfg.max_length, model=model_src)
    installed = install_chat_template(tokenizer, pick_format(cfg.chat_format, tokenizer))
    check_training_format(tokenizer)

    # -------------------------------------------------------------- data
    data = load_sft_dataset(cfg.dataset, split=cfg.dataset_split, eval_split=cfg.eval_split)
    train_ds, stats, eval_ds, eval_stats = _encode(cfg, data, tokenizer, out, dist)

    # -------------------------------------------------------------- trainer arguments first (DeepSpeed ZeRO-3
    # builds the model sharded only when they exist), then the model
    liger = resolve_liger(cfg.liger, cuda)
    args = SFTConfig(**sft_arguments(cfg, out=out, cuda=cuda, has_eval=eval_ds is not None, liger=liger))
    model, rows_added = _load_model(cfg, model_src, model_config, tokenizer, dist, cuda)
    vocab = tokenizer.get_vocab()
    new_ids = [int(vocab[t]) for t in installed.added_tokens]
    peft_config = (lora_config(r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                               targets=cfg.lora_target_modules, new_token_ids=new_ids) if cfg.lora else None)
    recorder = LossRecorder(out, title=f"{cfg.student} SFT ({Path(model_src).name})")
    stopper = GracefulStop()
    trainer = _trainer_class()(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                               processing_class=tokenizer, peft_config=peft_config, callbacks=[recorder, stopper])

    # -------------------------------------------------------------- lineage
    local_data = Path(cfg.dataset).exists()
    inputs: dict[str, str | Path] = {"dataset": cfg.dataset} if local_data else {}
    if Path(model_src).exists():
        inputs["model"] = model_src
    record = RunRecord("sft", cfg, inputs=inputs)
    record.extra.update(
        train_fingerprint=train_fingerprint(cfg), dataset_identity=dataset_identity(cfg.dataset),
        base_model=model_src, student=student.to_dict(),
        dataset={"source": cfg.dataset, "hub": not local_data, "splits": data.splits,
                 "columns": data.columns, "train_split": cfg.dataset_split,
                 "eval_split": cfg.eval_split if eval_ds is not None else None},
        chat_format={"format": installed.format, "eos": installed.eos_token, "pad": installed.pad_token,
                     "bos": installed.bos_token, "added_tokens": installed.added_tokens,
                     "embedding_rows_added": rows_added},
        context_extension=extended, world_size=dist.num_processes, sharding=sharding_of(trainer.accelerator),
        process_group_timeout_s=process_group_timeout(),
        tokenize_shares=gather_object([stats.share_rows]))
    _count(cfg, record, stats, eval_stats, trainer, model)
    return Setup(trainer, model, tokenizer, model_config, record, recorder, stopper, stats, dist, cuda)


def _trainer_class() -> Any:
    """TRL's SFTTrainer, whose accelerator also shards CPU ranks launched with an FSDP or DeepSpeed config
    (:func:`distill.launch.adopt_cpu_sharding`: accelerate alone trains them as DDP); GPU ranks are left to
    accelerate."""
    from trl import SFTTrainer

    from distill.launch import ShardsCpuRanks

    class DistillSFTTrainer(ShardsCpuRanks, SFTTrainer):  # type: ignore[misc]
        pass

    return DistillSFTTrainer


def _load_base(cfg: SFTStageConfig, model_src: str) -> tuple[Any, Any]:
    """The base's tokenizer and model config (not yet extended, no template yet)."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_src, trust_remote_code=cfg.trust_remote_code)
        model_config = AutoConfig.from_pretrained(model_src, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DistillError(f"cannot load the student's base {model_src!r}: {exc}\nPass --model with a local folder "
                           "or a hub id you can reach (gated models need 'hf auth login'; offline needs the hub "
                           "cache)") from None
    return tokenizer, model_config


def _encode(cfg: SFTStageConfig, data: Any, tokenizer: Any, out: Path, dist: Any) -> tuple[Any, Any, Any, Any]:
    """``(train_ds, stats, eval_ds, eval_stats)``: the splits tokenized (eval ones None without an eval split).

    Every rank tokenizes its own share of the rows into ``OUT/.cache`` and reads the others' shares from there
    (:func:`distill.stages.sft.data.tokenize_shared`), rather than rank 0 tokenizing it all while the other ranks wait
    at a barrier: on 800k long traces that wait outlasted the collective timeout. The barrier now waits for one
    share, and ``dataset_num_proc`` processes per rank split that share again. Why this and not the alternatives:
    every rank tokenizing everything on its own would cost world-size times the CPU on each node, and a longer
    ``ddp_timeout`` alone would keep all but one rank idle (and hide real hangs for as long).
    """
    ranks = Ranks(dist.process_index, dist.num_processes, dist.wait_for_everyone)
    train_ds, stats = encode_dataset(data.train, tokenizer, source=cfg.dataset, max_length=cfg.max_length,
                                     overlong=cfg.overlong, assistant_only=cfg.assistant_only_loss,
                                     num_proc=cfg.dataset_num_proc, cache_dir=out / CACHE, ranks=ranks)
    eval_ds = eval_stats = None
    if data.eval is not None:
        eval_ds, eval_stats = encode_dataset(data.eval, tokenizer, source=f"{cfg.dataset} [{cfg.eval_split}]",
                                             max_length=cfg.max_length, overlong="drop",
                                             assistant_only=cfg.assistant_only_loss,
                                             num_proc=cfg.dataset_num_proc, cache_dir=out / CACHE,
                                             desc="tokenizing eval", ranks=ranks)
    return train_ds, stats, eval_ds, eval_stats


def _load_model(cfg: SFTStageConfig, model_src: str, model_config: Any, tokenizer: Any, dist: Any,
                cuda: bool) -> tuple[Any, int]:
    """The student's model in its training dtype and attention kernel, its embeddings matched to the tokenizer;
    ``(model, embedding rows added)``."""
    from transformers import AutoModelForCausalLM


    load_kwargs: dict[str, Any] = dict(config=copy.deepcopy(model_config), dtype=load_dtype(cfg, cuda),
                                       attn_implementation=resolve_attention(cfg.attn_implementation, cuda),
                                       trust_remote_code=cfg.trust_remote_code)
    slow = packing_attention_warning(cfg, load_kwargs["attn_implementation"], cuda)
    if slow:
        log.warning(slow)
    if cfg.qlora:
        load_kwargs["quantization_config"] = quantization_config()
        load_kwargs["device_map"] = {"": dist.local_process_index}
    model = AutoModelForCausalLM.from_pretrained(model_src, **load_kwargs)
    rows_added = sync_model_tokens(model, tokenizer)
    for key, value in GENERATION_DEFAULTS.items():
        setattr(model.generation_config, key, value)
    model.config.use_cache = False
    return model, rows_added


def _count(cfg: SFTStageConfig, record: RunRecord, stats: Any, eval_stats: Any, trainer: Any, model: Any) -> None:
    """run.json's counts of what is trained: examples, tokens, lengths, rows and parameters."""
    summary = stats.to_dict()
    trained_model: Any = trainer.model
    rows: Any = trainer.train_dataset
    record.counts.update(
        examples=stats.examples, trained_examples=stats.kept,
        dropped_overlong=stats.overlong if cfg.overlong == "drop" else 0, truncated=stats.truncated,
        tokens=stats.tokens, trained_tokens=stats.trained_tokens, without_think=stats.without_think,
        length_p50=summary.get("length_p50"), length_p95=summary.get("length_p95"), longest=stats.max_tokens,
        train_rows=len(rows), parameters=parameter_count(model),
        trainable_parameters=parameter_count(trained_model, trainable_only=True))
    if eval_stats is not None:
        record.counts["eval_examples"] = eval_stats.kept


# ----------------------------------------------------------------------------------------------- fit
def fit(setup: Setup, out: Path, resume_from: Path | None, *, main: bool) -> tuple[dict[str, Any], int]:
    """Train (from ``resume_from`` when given); ``(metrics, final step)``, the eval split's loss included.

    A failure, Ctrl-C or SIGTERM leaves run.json ``partial`` with the step it stopped at (the main process writes
    it) and re-raises; out of GPU memory becomes a :class:`DistillError` saying what to change.
    """
    import torch

    from distill.stages.sft.callbacks import plot_losses

    trainer, record = setup.trainer, setup.record
    try:
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except BaseException as exc:
        if main:
            record.counts["stopped_at_step"] = trainer.state.global_step
            if not isinstance(exc, KeyboardInterrupt):
                record.extra["error"] = repr(exc)[:1000]
            record.write(out, status="partial")
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            raise DistillError(
                f"out of GPU memory at step {trainer.state.global_step}: check 'distill sft ... --plan', then lower "
                "max_length or per_device_train_batch_size, shard more (strategy zero3 / fsdp, more GPUs), or turn on "
                "gradient_checkpointing / activation_offloading; rerun to resume from the last checkpoint") from exc
        raise
    if setup.stopper.stopped_at is not None:
        if main:
            record.counts["stopped_at_step"] = setup.stopper.stopped_at
            record.write(out, status="partial")
            plot_losses(out, setup.recorder.title)
        raise KeyboardInterrupt
    metrics = dict(result.metrics)
    final_step = trainer.state.global_step
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    return metrics, final_step
