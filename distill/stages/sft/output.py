"""The output folder of ``distill sft``: what it may hold, when a run resumes, and the student's final files.

``OUT`` holds the student (HF format) and ``run.json``, ``loss.jsonl``, ``loss.png``; while training also
``checkpoints/`` (Trainer checkpoints), ``.cache/`` (the tokenized dataset) and, for multi-process runs,
``launch-sft.yaml`` (the resolved config the ranks read).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from distill.launch import launch_recipe
from distill.run_start import Start, decide_start
from distill.stages.sft.config import SFTStageConfig, dataset_identity, train_fingerprint

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
CACHE = ".cache"
LAUNCH_RECIPE = launch_recipe("sft")     # written by distill.launch.relaunch before the ranks start
# The paper's sampling settings, written into the student's generation_config.json (vLLM and lm-eval read them).
GENERATION_DEFAULTS = {"do_sample": True, "temperature": 0.6, "top_p": 0.95}


def prepare_out(cfg: SFTStageConfig, out: Path) -> Start:
    """Decide between a fresh start, a resume and 'already done' (:func:`distill.run_start.decide_start`); a
    finished student of other settings is never continued, and one trained on an earlier version of the dataset is
    refused naming it."""
    fp = train_fingerprint(cfg)

    def other_finished(previous: dict[str, Any]) -> str:
        if previous.get("dataset_identity") not in (None, dataset_identity(cfg.dataset)):
            return (f"{out} holds a student trained on an earlier version of {cfg.dataset} (it changed since): pass "
                    "--overwrite to retrain on the new data, or choose another --out")
        return f"{out} holds a student trained with other settings: pass --overwrite to retrain, or choose another --out"

    return decide_start("sft", out, checkpoints=CHECKPOINTS, overwrite=cfg.overwrite, resume=cfg.resume,
                        same=lambda previous: previous.get("train_fingerprint") == fp,
                        ours=(CACHE, LAUNCH_RECIPE), resume_finished=False, other_finished=other_finished)


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
