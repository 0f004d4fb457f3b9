"""The SFT dataset ``distill filter`` writes: each kept trace becomes one SFT row, whose layout (``messages`` +
id, sample, source, teacher, num_tokens) is the contract in :mod:`distill.data.sft_rows`.

Without a validation split the folder holds one ``datasets.Dataset`` (``load_from_disk`` gives it back
ready for ``SFTTrainer(train_dataset=...)``); with one, a ``DatasetDict`` of ``train`` and ``validation``,
split by problem so that no problem sits in both.

>>> from distill.stages.filter.trace import prepare
>>> t = prepare({"id": "p", "sample": 0, "problem": "1+1?", "completion": "<think>easy</think>$\\\\boxed{2}$"},
...             index=0, folder="traces")
>>> [m["role"] for m in example(t)["messages"]]
['user', 'assistant']
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from distill.data import sft_rows
from distill.data.sft_rows import SFTRow
from distill.stages.filter.trace import Trace


def example(t: Trace) -> SFTRow:
    """One training row (the trace must be closed: the filters guarantee it)."""
    if t.user is None:
        raise ValueError(f"trace {t.id!r} sample {t.sample} has no user turn")
    return sft_rows.sft_row(user=t.user, assistant=t.assistant_text, id=t.id, sample=t.sample,
                            source=t.source or t.folder, teacher=t.teacher, num_tokens=t.num_tokens)


def split_by_problem(rows: Sequence[SFTRow], fraction: float, seed: int) -> dict[str, list[SFTRow]]:
    """``{"train": rows}``, or train + validation with ``fraction`` of the problems (at least one) held out."""
    if fraction <= 0:
        return {"train": list(rows)}
    ids = sorted({r["id"] for r in rows})
    if len(ids) < 2:
        return {"train": list(rows)}
    held = set(random.Random(seed).sample(ids, min(len(ids) - 1, max(1, math.ceil(fraction * len(ids))))))
    return {"train": [r for r in rows if r["id"] not in held], "validation": [r for r in rows if r["id"] in held]}


def to_datasets(splits: Mapping[str, Sequence[SFTRow]]) -> Any:
    """A ``Dataset`` (one split) or ``DatasetDict`` (several) with the SFT row's fixed features."""
    return sft_rows.to_datasets(splits)


def save(ds: Any, out: Path, *, parquet: bool = True) -> list[Path]:
    """``save_to_disk`` into ``out``, plus ``parquet/<split>.parquet`` copies; returns the parquet files."""
    return sft_rows.save_sft_dataset(ds, out, parquet=parquet)
