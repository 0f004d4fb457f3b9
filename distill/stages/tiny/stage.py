"""``distill tiny``: make a tiny, real checkpoint offline (see ``distill.stages.tiny.build``)."""

from __future__ import annotations

import logging
from pathlib import Path

from distill.errors import DistillError
from distill.outdir import is_empty, prepare_out
from distill.runinfo import RunRecord
from distill.stages.tiny.build import make_tiny
from distill.stages.tiny.config import TinyConfig

log = logging.getLogger(__name__)


def run(cfg: TinyConfig) -> Path:
    out = Path(cfg.out)
    if not cfg.overwrite and not is_empty(out):
        raise DistillError(f"{out} exists and is not empty; pass --overwrite to replace it, or another --out")
    prepare_out(out, "tiny", overwrite=cfg.overwrite)
    record = RunRecord("tiny", cfg)
    record.counts.update(make_tiny(cfg))
    record.write(out)
    c = record.counts
    print(f"tiny {cfg.arch} model: {c['parameters']:,} parameters, vocab {c['vocab_size']}, "
          f"bos/eos/pad = {c['bos_token_id']}/{c['eos_token_id']}/{c['pad_token_id']} -> {out}")
    return out
