"""The SFT dataset: conversational rows that TRL's SFTTrainer takes as they are.

Each kept trace becomes::

    messages    [{"role": "user", "content": <problem + chat suffix>},
                 {"role": "assistant", "content": "<think>\\n...\\n</think>\\n\\n" + answer}]
    id, sample, source, teacher, num_tokens

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distill.stages.filter.trace import Trace

COLUMNS = ("messages", "id", "sample", "source", "teacher", "num_tokens")


def example(t: Trace) -> dict[str, Any]:
    """One training row (the trace must be closed: the filters guarantee it)."""
    if t.user is None:
        raise ValueError(f"trace {t.id!r} sample {t.sample} has no user turn")
    return {
        "messages": [{"role": "user", "content": t.user}, {"role": "assistant", "content": t.assistant_text}],
        "id": t.id,
        "sample": t.sample,
        "source": t.source or t.folder,
        "teacher": t.teacher,
        "num_tokens": t.num_tokens,
    }


def split_by_problem(rows: Sequence[dict[str, Any]], fraction: float, seed: int) -> dict[str, list[dict[str, Any]]]:
    """``{"train": rows}``, or train + validation with ``fraction`` of the problems (at least one) held out."""
    if fraction <= 0:
        return {"train": list(rows)}
    ids = sorted({r["id"] for r in rows})
    if len(ids) < 2:
        return {"train": list(rows)}
    held = set(random.Random(seed).sample(ids, min(len(ids) - 1, max(1, math.ceil(fraction * len(ids))))))
    return {"train": [r for r in rows if r["id"] not in held], "validation": [r for r in rows if r["id"] in held]}


def features() -> Any:
    import datasets

    return datasets.Features({
        "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
        "id": datasets.Value("string"),
        "sample": datasets.Value("int64"),
        "source": datasets.Value("string"),
        "teacher": datasets.Value("string"),
        "num_tokens": datasets.Value("int64"),
    })


def to_datasets(splits: dict[str, list[dict[str, Any]]]) -> Any:
    """A ``Dataset`` (one split) or ``DatasetDict`` (several) with fixed features, empty splits included."""
    import datasets

    feats = features()
    built = {name: datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in COLUMNS}, features=feats)
             for name, rows in splits.items()}
    if list(built) == ["train"]:
        return built["train"]
    return datasets.DatasetDict(built)


def save(ds: Any, out: Path, *, parquet: bool = True) -> list[Path]:
    """``save_to_disk`` into ``out``, plus ``parquet/<split>.parquet`` copies; returns the parquet files."""
    import datasets

    ds.save_to_disk(str(out))
    written: list[Path] = []
    if parquet:
        (out / "parquet").mkdir(parents=True, exist_ok=True)
        splits = ds.items() if isinstance(ds, datasets.DatasetDict) else [("train", ds)]
        for name, part in splits:
            path = out / "parquet" / f"{name}.parquet"
            part.to_parquet(str(path))
            written.append(path)
    return written
