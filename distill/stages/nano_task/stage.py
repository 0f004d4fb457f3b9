"""``distill nano-task``: write the nano arithmetic task (train and held-out problems, a warm-up SFT set).

Held-out pairs are drawn first and excluded from every other split, so no training set contains them
(neither ``a + b`` nor ``b + a``); validation pairs (for choosing checkpoints) are drawn next and kept out
of the training splits the same way, so selecting on them never touches the held-out score.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from distill.data.prompts import user_content
from distill.outdir import check_ours, prepare_out
from distill.runinfo import RunRecord
from distill.stages.nano_task.config import NanoTaskConfig
from distill.stages.nano_task.task import problem_text, sample_pairs, slipped_trace


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def run(cfg: NanoTaskConfig) -> Path:
    import datasets


    check_ours(cfg.out, "nano-task")        # a rerun rewrites its own files; nobody else's
    out = prepare_out(cfg.out, "nano-task", overwrite=False)
    rng = random.Random(cfg.seed)
    used: set[tuple[int, int]] = set()

    def draw(n: int) -> list[tuple[int, int]]:
        return sample_pairs(n, cfg.min_value, cfg.max_value, rng, used, by_digits=cfg.operand_sampling == "digits")

    heldout = draw(cfg.heldout_problems)
    used |= {(b, a) for a, b in heldout}
    validation = draw(cfg.validation_problems)
    used |= {(b, a) for a, b in validation}
    train = draw(cfg.train_problems)
    warmup = draw(cfg.warmup_examples)

    def rows(pairs: list[tuple[int, int]], split: str) -> list[dict]:
        return [{"id": f"{split}-{i:05d}", "problem": problem_text(a, b), "answer": str(a + b), "source": "nano"}
                for i, (a, b) in enumerate(pairs)]

    _write_jsonl(out / "train.jsonl", rows(train, "train"))
    _write_jsonl(out / "heldout.jsonl", rows(heldout, "heldout"))
    validation_file = out / "validation.jsonl"
    if validation:
        _write_jsonl(validation_file, rows(validation, "validation"))
    elif validation_file.exists():
        validation_file.unlink()  # from an earlier run with a validation split
    slip_rng = random.Random(f"{cfg.seed}-slips")
    warm, slipped = [], 0
    for i, (a, b) in enumerate(warmup):
        trace, correct = slipped_trace(a, b, slip_rng, cfg.warmup_slip_rate)
        slipped += not correct
        warm.append({"id": f"warmup-{i:05d}", "source": "nano-gold", "teacher": "gold", "correct": correct,
                     "messages": [{"role": "user", "content": user_content(problem_text(a, b))},
                                  {"role": "assistant", "content": trace}]})
    datasets.Dataset.from_list(warm).save_to_disk(str(out / "warmup"))
    record = RunRecord("nano-task", cfg)
    record.counts.update(train=len(train), heldout=len(heldout), validation=len(validation), warmup=len(warm),
                         warmup_wrong=slipped)
    record.write(out)
    extra = f", {len(validation)} validation" if validation else ""
    wrong = f" ({slipped} with a slip in the working)" if slipped else ""
    print(f"nano task: {len(train)} train, {len(heldout)} held-out{extra} problems, "
          f"{len(warm)} warm-up traces{wrong} -> {out}")
    return out
