"""The output folder of ``distill opd``: when a run starts, resumes or is already done, and the student's files.

``OUT`` ends as a model folder ``distill eval --model OUT`` and ``distill generate --teacher OUT`` load: weights,
``config.json``, the student's tokenizer and chat template, a ``generation_config.json`` (the student's own, or the
paper's sampling defaults), plus ``run.json``, ``metrics.jsonl`` and ``plots/``. While training it also holds
``checkpoints/`` (removed at the end unless ``keep_checkpoints``) and, for multi-process runs, ``launch-opd.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from distill import outdir
from distill.errors import DistillError
from distill.launch import launch_recipe, started_by_relaunch
from distill.runinfo import read_run
from distill.stages.opd.args import CHECKPOINTS
from distill.stages.opd.config import OPDConfig
from distill.weights import to_bf16

log = logging.getLogger(__name__)

LAUNCH_RECIPE = launch_recipe("opd")
GENERATION_DEFAULTS = {"do_sample": True, "temperature": 0.6, "top_p": 0.95}   # the paper's sampling settings


def train_fingerprint(cfg: OPDConfig) -> str:
    """A hash of the options that decide what is trained (how the run is driven or watched left out)."""
    return hashlib.sha256(json.dumps(cfg.trains(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def last_checkpoint(folder: Path) -> Path | None:
    """The highest ``checkpoint-N`` holding ``trainer_state.json`` (written last); one cut short by a kill is
    skipped, and the steps it stood for are trained again."""
    found = []
    for p in folder.glob("checkpoint-*") if folder.is_dir() else []:
        suffix = p.name.rsplit("-", 1)[-1]
        if p.is_dir() and suffix.isdigit():
            if (p / "trainer_state.json").is_file():
                found.append((int(suffix), p))
            else:
                log.warning("%s is incomplete (interrupted while saving); it is skipped", p)
    return max(found)[1] if found else None


def decide_start(cfg: OPDConfig, out: Path) -> tuple[bool, Path | None]:
    """``(done, checkpoint)``: done when ``out`` already holds this finished run; else the checkpoint to resume from
    (None: a fresh start). A folder holding anything else is refused with the way out, never reused silently."""
    if not started_by_relaunch():       # only the launching process acts on --overwrite
        outdir.prepare_out(out, "opd", overwrite=cfg.overwrite)
    previous = read_run(out)
    if previous is not None and previous.get("stage") != "opd":
        raise DistillError(f"{out} holds the output of 'distill {previous.get('stage')}': choose another --out")
    same = previous is not None and previous.get("train_fingerprint") == train_fingerprint(cfg)
    last = last_checkpoint(out / CHECKPOINTS)
    if previous is not None and previous.get("status") == "complete":
        if same:
            print(f"opd: {out} already holds a finished run of this config; nothing to do (--overwrite to redo it)")
            return True, None
        if cfg.resume and last is not None:
            return False, last
        raise DistillError(f"{out} holds a finished run with other settings: pass --overwrite to start over, or "
                           "another --out")
    if last is not None:
        if cfg.resume or same:
            print(f"opd: resuming from {last.name}")
            return False, last
        raise DistillError(f"{out} holds checkpoints (last: {last.name}) of a run with other settings: pass --resume "
                           "to continue from it anyway, --overwrite to start over, or another --out")
    ours = (CHECKPOINTS, LAUNCH_RECIPE, outdir.MARKER, "run.json", "metrics.jsonl", "plots")
    if out.is_dir() and any(p.name not in ours for p in out.iterdir()):
        raise DistillError(f"{out} exists and holds other files: choose another --out, or pass --overwrite")
    if cfg.resume:
        log.warning("--resume: no checkpoint in %s yet; starting from step 0", out / CHECKPOINTS)
    return False, None


def save_student(trainer: Any, tokenizer: Any, student: str, out: Path, *, main_process: bool, bf16: bool) -> None:
    """The trained student as a model folder: weights (bf16 when trained in bf16), tokenizer, generation config."""
    trainer.save_model(str(out))                   # every process: gathers sharded weights where needed
    if not main_process:
        return
    tokenizer.save_pretrained(str(out))
    _generation_config(student, tokenizer).save_pretrained(str(out))
    (out / "training_args.bin").unlink(missing_ok=True)
    if bf16:
        to_bf16(out)


def _generation_config(student: str, tokenizer: Any) -> Any:
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(student)
    except (OSError, ValueError):
        return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                pad_token_id=tokenizer.pad_token_id, **GENERATION_DEFAULTS)


def remove_checkpoints(out: Path) -> None:
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
