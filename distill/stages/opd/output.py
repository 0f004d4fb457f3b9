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

from distill.launch import launch_recipe
from distill.run_start import Start, decide_start
from distill.stages.opd.args import CHECKPOINTS
from distill.stages.opd.config import OPDConfig
from distill.weights import to_bf16

log = logging.getLogger(__name__)

LAUNCH_RECIPE = launch_recipe("opd")
GENERATION_DEFAULTS = {"do_sample": True, "temperature": 0.6, "top_p": 0.95}   # the paper's sampling settings


def train_fingerprint(cfg: OPDConfig) -> str:
    """A hash of the options that decide what is trained (how the run is driven or watched left out)."""
    return hashlib.sha256(json.dumps(cfg.trains(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_out(cfg: OPDConfig, out: Path) -> Start:
    """Done, resume or start fresh (:func:`distill.run_start.decide_start`); a folder holding anything else is
    refused with the way out, never reused silently."""
    fp = train_fingerprint(cfg)
    return decide_start("opd", out, checkpoints=CHECKPOINTS, overwrite=cfg.overwrite, resume=cfg.resume,
                        same=lambda previous: previous.get("train_fingerprint") == fp, ours=(LAUNCH_RECIPE,))


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
