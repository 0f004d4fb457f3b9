"""The output folder of ``distill sft``: what it may hold, when a run resumes, and the student's final files.

``OUT`` holds the student (HF format) and ``run.json``, ``loss.jsonl``, ``loss.png``; while training also
``checkpoints/`` (Trainer checkpoints), ``.cache/`` (the tokenized dataset) and, for multi-process runs,
``launch-sft.yaml`` (the resolved config the ranks read).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill import outdir
from distill.errors import DistillError
from distill.launch import launch_recipe, started_by_relaunch
from distill.runinfo import read_run
from distill.stages.sft.config import SFTStageConfig, dataset_identity, train_fingerprint

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
CACHE = ".cache"
LAUNCH_RECIPE = launch_recipe("sft")     # written by distill.launch.relaunch before the ranks start
# The paper's sampling settings, written into the student's generation_config.json (vLLM and lm-eval read them).
GENERATION_DEFAULTS = {"do_sample": True, "temperature": 0.6, "top_p": 0.95}


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The highest ``checkpoint-N`` holding ``trainer_state.json`` (the Trainer writes it last).

    A checkpoint cut short by a kill lacks it and is skipped; the step it stood for is trained again.
    """
    if not folder.is_dir():
        return None
    found = []
    for p in folder.glob("checkpoint-*"):
        suffix = p.name.rsplit("-", 1)[-1]
        if p.is_dir() and suffix.isdigit():
            if (p / "trainer_state.json").is_file():
                found.append((int(suffix), p))
            else:
                log.warning("%s is incomplete (interrupted while saving); it is skipped", p)
    return max(found)[1] if found else None


@dataclass
class OutState:
    resume_from: Path | None
    complete: bool


def prepare_out(cfg: SFTStageConfig, out: Path, *, is_main: bool = True) -> OutState:
    """Decide between a fresh start, a resume and 'already done'; refuse to mix runs of different settings."""
    fp = train_fingerprint(cfg)
    if is_main and not started_by_relaunch():
        # Only the launching process acts on --overwrite, and only on a folder 'distill sft' made.
        outdir.prepare_out(out, "sft", overwrite=cfg.overwrite)
    rec = read_run(out)
    if rec is not None and rec.get("stage") != "sft":
        raise DistillError(f"{out} holds the output of 'distill {rec.get('stage')}': choose another --out")
    same = bool(rec and rec.get("train_fingerprint") == fp)
    ckpt = last_complete_checkpoint(out / CHECKPOINTS)
    if rec and rec.get("status") == "complete":
        if same:
            return OutState(None, True)
        if rec.get("dataset_identity") not in (None, dataset_identity(cfg.dataset)):
            raise DistillError(f"{out} holds a student trained on an earlier version of {cfg.dataset} (it changed "
                               "since): pass --overwrite to retrain on the new data, or choose another --out")
        raise DistillError(f"{out} holds a student trained with other settings: pass --overwrite to retrain, "
                           "or choose another --out")
    if ckpt is not None:
        if cfg.resume or same:
            return OutState(ckpt, False)
        raise DistillError(f"{out} holds checkpoints (last: {ckpt.name}) of a run with other settings: pass "
                           "--resume to continue from it anyway, or --overwrite to start over")
    if rec is None and out.is_dir() and any(p.name not in (CACHE, CHECKPOINTS, LAUNCH_RECIPE, outdir.MARKER) for p in out.iterdir()):
        raise DistillError(f"{out} exists and holds other files: choose another --out, or pass --overwrite")
    if cfg.resume:
        log.warning("--resume: no complete checkpoint in %s; starting from the beginning", out / CHECKPOINTS)
    return OutState(None, False)


def write_generation_config(out: Path, tokenizer: Any) -> None:
    from transformers import GenerationConfig

    gen = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id, **GENERATION_DEFAULTS)
    gen.save_pretrained(out)


def clean_saved(folder: Path) -> None:
    """Drop what the save leaves that a student folder should not carry (trainer args, loader-only flags)."""
    (folder / "training_args.bin").unlink(missing_ok=True)
    path = folder / "tokenizer_config.json"
    if path.is_file():
        data = json.loads(path.read_text())
        if any(k in data for k in ("is_local", "local_files_only")):
            for key in ("is_local", "local_files_only"):
                data.pop(key, None)
            path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
