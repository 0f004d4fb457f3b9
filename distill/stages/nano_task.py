"""``distill nano-task``: write the nano arithmetic task (train and held-out problems, a warm-up SFT set).

Held-out pairs are drawn first and excluded from every other split, so no training set contains them
(neither ``a + b`` nor ``b + a``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from distill.configs.nano_task import NanoTaskConfig
from distill.runinfo import RunRecord


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def run(cfg: NanoTaskConfig) -> Path:
    import datasets

    from distill.data.prompts import user_content
    from distill.nano import gold_trace, problem_text, sample_pairs

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)
    used: set[tuple[int, int]] = set()
    heldout = sample_pairs(cfg.heldout_problems, cfg.min_value, cfg.max_value, rng, used)
    used |= {(b, a) for a, b in heldout}
    train = sample_pairs(cfg.train_problems, cfg.min_value, cfg.max_value, rng, used)
    warmup = sample_pairs(cfg.warmup_examples, cfg.min_value, cfg.max_value, rng, used)

    def rows(pairs: list[tuple[int, int]], split: str) -> list[dict]:
        return [{"id": f"{split}-{i:05d}", "problem": problem_text(a, b), "answer": str(a + b), "source": "nano"}
                for i, (a, b) in enumerate(pairs)]

    _write_jsonl(out / "train.jsonl", rows(train, "train"))
    _write_jsonl(out / "heldout.jsonl", rows(heldout, "heldout"))
    warm = [{"id": f"warmup-{i:05d}", "source": "nano-gold", "teacher": "gold",
             "messages": [{"role": "user", "content": user_content(problem_text(a, b))},
                          {"role": "assistant", "content": gold_trace(a, b)}]}
            for i, (a, b) in enumerate(warmup)]
    datasets.Dataset.from_list(warm).save_to_disk(str(out / "warmup"))
    record = RunRecord("nano-task", cfg)
    record.counts.update(train=len(train), heldout=len(heldout), warmup=len(warm))
    record.write(out)
    print(f"nano task: {len(train)} train, {len(heldout)} held-out problems, {len(warm)} warm-up traces -> {out}")
    return out
