"""``distill sft --student NAME --dataset DIR``: fine-tune a student on the filtered R1 traces (TRL's SFTTrainer).

The paper distils DeepSeek-R1 into six dense students by SFT alone (no RL stage) on about 800k curated samples.
This stage does that on whatever ``distill filter`` wrote, one process in-process or many through
``accelerate launch`` (``--num-processes``, ``--accelerate-config``; ``scripts/slurm/sft.slurm`` for several
nodes). Departures from the paper and choices it does not specify:

- hyperparameters (learning rate, epochs, batch, schedule) are ours, per student, in ``recipes/students/``;
- the Qwen2.5-Math bases have 4096 positions: their recipes extend the context to 32768 by raising
  ``rope_theta`` to 300000 and ``max_position_embeddings`` to 32768 in the model config (see
  :mod:`distill.stages.sft.context`); the saved student keeps these values;
- the chat template reuses role tokens that exist in each base's vocabulary (:mod:`distill.stages.sft.chat`);
- examples longer than ``max_length`` are dropped by default, never cut silently; packed examples
  (best-fit decreasing) do not attend to each other, and only assistant tokens (trace, answer, EOS) are trained.

Output folder ``OUT``: the student in HF format (weights, tokenizer, ``chat_template.jinja``, a generation
config with the paper's sampling defaults), ``run.json`` (config, data lineage, counts), ``loss.jsonl`` and
``loss.png``; ``OUT/checkpoints`` while training (removed at the end unless ``keep_checkpoints``), and
``OUT/adapter`` for LoRA. A run stopped by Ctrl-C or SIGTERM writes a checkpoint first; rerunning the same command
continues from the last complete checkpoint (``--resume`` does so even when settings changed).
"""

from __future__ import annotations

import copy
import gc
import importlib.util
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.launch import accelerate_config_file, relaunch, should_relaunch
from distill.runinfo import RunRecord, read_run
from distill.stages.sft.config import SFTStageConfig, train_fingerprint
from distill.stages.sft.output import (
    ADAPTER,
    CACHE,
    CHECKPOINTS,
    GENERATION_DEFAULTS,
    clean_saved,
    prepare_out,
    to_bf16,
    write_generation_config,
)
from distill.students import Student, get_student

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------------------------- helpers
def resolve_model(cfg: SFTStageConfig, student: Student) -> str:
    model = cfg.model or student.base_model
    if not model:
        raise DistillError(f"student {student.name} has no hub base model: make one with 'distill tiny --out DIR' "
                           f"(recipes/tiny/) and pass --model DIR")
    local = Path(model).expanduser()
    if not student.base_model and not local.is_dir():
        raise DistillError(f"model folder not found: {model}; make {student.name}'s base with 'distill tiny --recipe "
                           f"recipes/students/{student.name}.yaml' (or pass --model DIR)")
    if model.startswith((".", "/", "~")) and not local.is_dir():
        raise DistillError(f"model folder not found: {model}")
    return str(Path(model).expanduser()) if model.startswith("~") else model


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


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
        dataset_num_proc=cfg.dataset_num_proc, ddp_find_unused_parameters=False,
        trust_remote_code=cfg.trust_remote_code,
    )
    if has_eval and cfg.eval_steps:
        kw["eval_steps"] = cfg.eval_steps
    if cfg.lr_scheduler_type == "cosine_with_min_lr":
        kw["lr_scheduler_kwargs"] = {"min_lr_rate": cfg.min_lr_rate}
    if cfg.gradient_checkpointing:
        kw["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    return kw


# ------------------------------------------------------------------------------------------------ plan
def print_plan(cfg: SFTStageConfig, student: Student, model_src: str) -> Any:
    from distill.stages.sft.plan import format_plan, make_plan

    lengths, how, total = None, None, None
    if cfg.dataset:
        from distill.stages.sft.data import load_sft_dataset, token_lengths

        data = load_sft_dataset(cfg.dataset, split=cfg.dataset_split)
        tokenizer = _plan_tokenizer(cfg, model_src)
        lengths, how = token_lengths(data.train, tokenizer, seed=cfg.seed)
        total = len(data.train)
    plan = make_plan(
        student, model=model_src, strategy=cfg.strategy, num_gpus=cfg.num_processes, seq_len=cfg.max_length,
        micro_batch=cfg.per_device_train_batch_size, grad_accum=cfg.gradient_accumulation_steps,
        checkpointing=cfg.gradient_checkpointing, lora=cfg.lora, qlora=cfg.qlora, lora_r=cfg.lora_r,
        lora_targets=cfg.lora_target_modules, offloading=cfg.activation_offloading, packing=cfg.packing,
        gpu_memory_gib=cfg.gpu_memory_gib, epochs=cfg.num_train_epochs, max_steps=cfg.max_steps, lengths=lengths,
        total_examples=total, length_source=how)
    if cfg.model and cfg.model != student.base_model:
        plan.notes.append(f"shape taken from the registry row of {student.name} (--model {cfg.model} is not read)")
    print(format_plan(plan))
    return plan


def _plan_tokenizer(cfg: SFTStageConfig, model_src: str) -> Any:
    """The student's tokenizer with its training template, or None when it cannot be had (offline, no cache)."""
    try:
        from transformers import AutoTokenizer

        from distill.stages.sft.chat import install_chat_template, pick_format

        tok = AutoTokenizer.from_pretrained(model_src, trust_remote_code=cfg.trust_remote_code)
        install_chat_template(tok, pick_format(cfg.chat_format, tok))
        return tok
    except Exception as exc:  # noqa: BLE001 - any failure means: count tokens another way
        log.info("no tokenizer for --plan (%s); counting tokens another way", exc)
        return None


# ------------------------------------------------------------------------------------------------- run
def run(cfg: SFTStageConfig) -> Path:
    student = get_student(cfg.student)
    if cfg.plan:                                    # the registry's shape is enough: no folder need exist
        print_plan(cfg, student, cfg.model or student.base_model or f"{student.name} (made by distill tiny)")
        return Path(cfg.out)
    if cfg.qlora:
        from distill.stages.sft.lora import quantization_config

        quantization_config()                       # fail before anything else when CUDA/bitsandbytes are missing
    model_src = resolve_model(cfg, student)
    if not cfg.dataset:
        raise DistillError("no dataset: pass --dataset (the folder 'distill filter' wrote, a .jsonl/.parquet file, "
                           "or a hub id)")
    out = Path(cfg.out)
    if should_relaunch(cfg.num_processes, cfg.accelerate_config):
        return _relaunch(cfg, out)
    return train(cfg, student, model_src, out)


def _relaunch(cfg: SFTStageConfig, out: Path) -> Path:
    state = prepare_out(cfg, out)
    if state.complete:
        print(f"sft {cfg.student}: {out} already holds this student (run.json complete); --overwrite to retrain")
        return out
    config_file = accelerate_config_file(cfg.strategy, cfg.accelerate_config)
    cuda = _cuda()
    # The ranks get the same config (so run.json's fingerprint is this run's) and reach the same decision about
    # OUT: an --overwrite is done here (the ranks do not empty it again), and a resume finds the same checkpoint.
    relaunch("sft", cfg, workdir=out, config_file=config_file, num_processes=cfg.num_processes,
             mixed_precision="bf16" if cfg.bf16 and cuda else "no", cpu=not cuda)
    rec = read_run(out)
    if not rec or rec.get("status") != "complete":
        raise DistillError(f"the launched run ended without a complete {out}/run.json; rerun to resume")
    return out


@dataclass
class Setup:
    """Everything :func:`build` prepared; :func:`train` runs it (tests inspect it)."""

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
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from distill.stages.sft.callbacks import GracefulStop, LossRecorder
    from distill.stages.sft.chat import check_training_format, install_chat_template, pick_format, sync_model_tokens
    from distill.stages.sft.context import apply_context_extension, check_positions
    from distill.stages.sft.data import encode_dataset, load_sft_dataset
    from distill.stages.sft.lora import lora_config, quantization_config

    cuda = torch.cuda.is_available()
    # -------------------------------------------------------------- tokenizer, template, config
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_src, trust_remote_code=cfg.trust_remote_code)
        model_config = AutoConfig.from_pretrained(model_src, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DistillError(f"cannot load the student's base {model_src!r}: {exc}\nPass --model with a local folder "
                           "or a hub id you can reach (gated models need 'hf auth login'; offline needs the hub "
                           "cache)") from None
    extended = apply_context_extension(model_config, rope_theta=cfg.rope_theta,
                                       max_position_embeddings=cfg.max_position_embeddings)
    check_positions(model_config, cfg.max_length, model=model_src)
    installed = install_chat_template(tokenizer, pick_format(cfg.chat_format, tokenizer))
    check_training_format(tokenizer)

    # -------------------------------------------------------------- data
    data = load_sft_dataset(cfg.dataset, split=cfg.dataset_split, eval_split=cfg.eval_split)
    with dist.main_process_first():
        train_ds, stats = encode_dataset(data.train, tokenizer, source=cfg.dataset, max_length=cfg.max_length,
                                         overlong=cfg.overlong, assistant_only=cfg.assistant_only_loss,
                                         num_proc=cfg.dataset_num_proc, cache_dir=out / CACHE)
        eval_ds = eval_stats = None
        if data.eval is not None:
            eval_ds, eval_stats = encode_dataset(data.eval, tokenizer, source=f"{cfg.dataset} [{cfg.eval_split}]",
                                                 max_length=cfg.max_length, overlong="drop",
                                                 assistant_only=cfg.assistant_only_loss,
                                                 num_proc=cfg.dataset_num_proc, cache_dir=out / CACHE,
                                                 desc="tokenizing eval")

    # -------------------------------------------------------------- trainer arguments first (DeepSpeed ZeRO-3
    # builds the model sharded only when they exist), then the model
    liger = resolve_liger(cfg.liger, cuda)
    args = SFTConfig(**sft_arguments(cfg, out=out, cuda=cuda, has_eval=eval_ds is not None, liger=liger))
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
    vocab = tokenizer.get_vocab()
    new_ids = [int(vocab[t]) for t in installed.added_tokens]
    peft_config = (lora_config(r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                               targets=cfg.lora_target_modules, new_token_ids=new_ids) if cfg.lora else None)
    recorder = LossRecorder(out, title=f"{cfg.student} SFT ({Path(model_src).name})")
    stopper = GracefulStop()
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[recorder, stopper])

    # -------------------------------------------------------------- lineage
    local_data = Path(cfg.dataset).exists()
    inputs: dict[str, str | Path] = {"dataset": cfg.dataset} if local_data else {}
    if Path(model_src).exists():
        inputs["model"] = model_src
    record = RunRecord("sft", cfg, inputs=inputs)
    record.extra.update(
        train_fingerprint=train_fingerprint(cfg), base_model=model_src, student=student.to_dict(),
        dataset={"source": cfg.dataset, "hub": not local_data, "splits": data.splits,
                 "columns": data.columns, "train_split": cfg.dataset_split,
                 "eval_split": cfg.eval_split if eval_ds is not None else None},
        chat_format={"format": installed.format, "eos": installed.eos_token, "pad": installed.pad_token,
                     "bos": installed.bos_token, "added_tokens": installed.added_tokens,
                     "embedding_rows_added": rows_added},
        context_extension=extended, world_size=dist.num_processes)
    summary = stats.to_dict()
    trained_model: Any = trainer.model
    rows: Any = trainer.train_dataset
    record.counts.update(
        examples=stats.examples, trained_examples=stats.kept,
        dropped_overlong=stats.overlong if cfg.overlong == "drop" else 0, truncated=stats.truncated,
        tokens=stats.tokens, trained_tokens=stats.trained_tokens, without_think=stats.without_think,
        length_p50=summary.get("length_p50"), length_p95=summary.get("length_p95"), longest=stats.max_tokens,
        train_rows=len(rows), parameters=sum(p.numel() for p in model.parameters()),
        trainable_parameters=sum(p.numel() for p in trained_model.parameters() if p.requires_grad))
    if eval_stats is not None:
        record.counts["eval_examples"] = eval_stats.kept
    return Setup(trainer, model, tokenizer, model_config, record, recorder, stopper, stats, dist, cuda)


def train(cfg: SFTStageConfig, student: Student, model_src: str, out: Path) -> Path:
    import torch
    from accelerate import PartialState
    from transformers import AutoTokenizer

    from distill.stages.sft.callbacks import plot_losses, read_losses
    from distill.stages.sft.chat import check_training_format
    from distill.stages.sft.lora import merge_adapter

    dist = PartialState(cpu=not _cuda())
    main = dist.is_main_process
    with dist.main_process_first():
        state = prepare_out(cfg, out, is_main=main)
    if state.complete:
        if main:
            print(f"sft {cfg.student}: {out} already holds this student (run.json complete); --overwrite to retrain")
        return out
    setup = build(cfg, student, model_src, out, dist)
    trainer, record, stats = setup.trainer, setup.record, setup.stats
    record.extra["resumed_from"] = str(state.resume_from) if state.resume_from else None
    if main:
        record.write(out, status="running")
        print(f"sft {cfg.student}: {stats.kept:,} examples ({stats.tokens:,} tokens"
              + (f", {stats.overlong} longer than {cfg.max_length} dropped" if cfg.overlong == "drop"
                 and stats.overlong else "")
              + f") in {len(trainer.train_dataset):,} rows; {dist.num_processes} process(es)"
              + (f"; resuming from {state.resume_from.name}" if state.resume_from else ""), flush=True)

    # -------------------------------------------------------------- train
    try:
        result = trainer.train(resume_from_checkpoint=str(state.resume_from) if state.resume_from else None)
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

    # -------------------------------------------------------------- save the student
    setup.model.config.use_cache = True
    trainer.save_model(str(out / ADAPTER) if cfg.lora else str(out))
    dist.wait_for_everyone()
    if not main:
        return out
    if cfg.lora and cfg.merge_lora:
        del trainer, setup
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        merge_dtype = torch.bfloat16 if _cuda() and cfg.bf16 else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(out / ADAPTER)
        model_config = _student_config(cfg, model_src)
        merge_adapter(model_src, out / ADAPTER, out, config=model_config, tokenizer=tokenizer, dtype=merge_dtype,
                      trust_remote_code=cfg.trust_remote_code)
        write_generation_config(out, tokenizer)
    elif not cfg.lora:
        tokenizer = setup.tokenizer
        if _cuda() and cfg.bf16:
            to_bf16(out)
        write_generation_config(out, tokenizer)
    else:
        tokenizer = setup.tokenizer
    tokenizer.save_pretrained(out if not cfg.lora or cfg.merge_lora else out / ADAPTER)
    for folder in (out, out / ADAPTER):
        clean_saved(folder)
    if not cfg.lora or cfg.merge_lora:
        check_training_format(AutoTokenizer.from_pretrained(out))   # the saved student renders the training format

    # -------------------------------------------------------------- record
    logged = read_losses(out / "loss.jsonl")
    losses = [r["loss"] for r in logged if r.get("loss") is not None]
    tokens_seen = max((r.get("num_tokens", 0) for r in logged), default=0)
    runtime = metrics.get("train_runtime") or 0.0
    record.counts.update(
        steps=final_step, epochs=round(metrics.get("epoch", 0.0), 3),
        train_loss=round(metrics.get("train_loss", float("nan")), 4),
        first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None,
        eval_loss=metrics.get("eval_loss"), train_runtime_s=round(runtime, 1),
        tokens_per_second=round(tokens_seen / runtime, 1) if runtime and tokens_seen and not state.resume_from
        else None)
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
    return out


def _student_config(cfg: SFTStageConfig, model_src: str) -> Any:
    from transformers import AutoConfig

    from distill.stages.sft.context import apply_context_extension

    config = AutoConfig.from_pretrained(model_src, trust_remote_code=cfg.trust_remote_code)
    apply_context_extension(config, rope_theta=cfg.rope_theta, max_position_embeddings=cfg.max_position_embeddings)
    return config


