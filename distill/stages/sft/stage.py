"""``distill sft --student NAME --dataset DIR``: fine-tune a student on the filtered R1 traces (TRL's SFTTrainer).

The paper distils DeepSeek-R1 into six dense students by SFT alone (no RL stage) on about 800k curated samples.
This stage does that on whatever ``distill filter`` wrote, one process in-process or many through
``accelerate launch`` (``--num-processes``, ``--accelerate-config``; ``scripts/slurm/sft.slurm`` for several
nodes). Departures from the paper and choices it does not specify:

- hyperparameters (learning rate, epochs, batch, schedule) are ours, per student, in ``recipes/students/``;
- the Qwen2.5-Math bases have 4096 positions: their recipes extend the context by raising ``rope_theta`` to
  300000 and ``max_position_embeddings`` to 131072 in the model config (see
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

import logging
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.launch import relaunch_stage, should_relaunch
from distill.memory_plan import format_plan, make_plan
from distill.models import require_folder
from distill.run_start import decide_on_main
from distill.stages.sft.chat import install_chat_template, pick_format
from distill.stages.sft.config import SFTStageConfig
from distill.stages.sft.data import load_sft_dataset, token_lengths
from distill.stages.sft.export import export_student, finish, release_memory
from distill.stages.sft.lora import quantization_config
from distill.stages.sft.output import ADAPTER, prepare_out
from distill.stages.sft.trainer import Setup, build, fit, packing_attention_warning, sft_arguments
from distill.students import Student, get_student

# packing_attention_warning and sft_arguments live in distill.stages.sft.trainer; tests/test_sft_data.py reads them
# from here.
__all__ = ["packing_attention_warning", "print_plan", "resolve_model", "run", "sft_arguments", "train"]

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
    require_folder(model)
    return str(Path(model).expanduser()) if model.startswith("~") else model


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# ------------------------------------------------------------------------------------------------ plan
def print_plan(cfg: SFTStageConfig, student: Student, model_src: str) -> Any:

    lengths, how, total = None, None, None
    if cfg.dataset:

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

        quantization_config()                       # fail before anything else when CUDA/bitsandbytes are missing
    model_src = resolve_model(cfg, student)
    if not cfg.dataset:
        raise DistillError("no dataset: pass --dataset (the folder 'distill filter' wrote, a .jsonl/.parquet file, "
                           "or a hub id)")
    out = Path(cfg.out)
    if should_relaunch(cfg.num_processes, cfg.accelerate_config):
        # train() on num_processes ranks; --overwrite is acted on here, before the launch (see distill.launch)
        return relaunch_stage("sft", cfg, out, finished=lambda: prepare_out(cfg, out).done,
                              cuda=_cuda, bf16=bool(cfg.bf16))
    return train(cfg, student, model_src, out)


def train(cfg: SFTStageConfig, student: Student, model_src: str, out: Path) -> Path:
    """Train on this process (one rank of a launched run), then save the student and run.json (main process)."""
    from datetime import timedelta

    from accelerate import PartialState

    cuda = _cuda()
    # The process group is made here, first, with ddp_timeout. TrainingArguments (SFTConfig, made later in build())
    # would pass its ddp_timeout only when it made the group itself, and on CPU ranks it never passes it
    # (transformers' TrainingArguments._setup_devices); once a group exists nothing changes its timeout. Giving it
    # here keeps one value on every path: GPU and CPU ranks, DeepSpeed (deepspeed.comm takes it too) and FSDP.
    dist = PartialState(cpu=not cuda, timeout=timedelta(seconds=cfg.ddp_timeout))
    main = dist.is_main_process
    state = decide_on_main(lambda: prepare_out(cfg, out), process_index=dist.process_index,
                           world_size=dist.num_processes)
    if state.done:
        return out
    setup = build(cfg, student, model_src, out, dist)
    record = setup.record
    record.extra["resumed_from"] = str(state.checkpoint) if state.checkpoint else None
    if main:
        record.write(out, status="running")
        _print_start(cfg, setup)
    metrics, final_step = fit(setup, out, state.checkpoint, main=main)

    # -------------------------------------------------------------- save the student
    setup.model.config.use_cache = True
    setup.trainer.save_model(str(out / ADAPTER) if cfg.lora else str(out))
    dist.wait_for_everyone()
    if not main:
        return out
    tokenizer = setup.tokenizer
    if cfg.lora and cfg.merge_lora:
        del setup                                   # the trained model goes before the base is loaded to merge
        release_memory()
    export_student(cfg, model_src, out, tokenizer, cuda=cuda)
    finish(cfg, record, out, metrics, final_step=final_step, model_src=model_src,
           resumed=state.checkpoint is not None)
    return out


def _print_start(cfg: SFTStageConfig, setup: Setup) -> None:
    stats = setup.stats
    print(f"sft {cfg.student}: {stats.kept:,} examples ({stats.tokens:,} tokens"
          + (f", {stats.overlong} longer than {cfg.max_length} dropped" if cfg.overlong == "drop"
             and stats.overlong else "")
          + f") in {len(setup.trainer.train_dataset):,} rows; {setup.dist.num_processes} process(es)", flush=True)
