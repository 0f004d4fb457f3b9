"""The SFT row: one training conversation, the hand-over from ``distill filter`` to ``distill sft``.

``distill filter`` builds each kept trace's row with :func:`sft_row` and writes the dataset folder with
:func:`to_datasets` + :func:`save_sft_dataset`; ``distill sft`` reads it with :func:`read_sft_folder`, checks the
columns with :func:`check_columns` and every row's conversation with :func:`message_problem`.

Columns (``SFT_COLUMNS``)::

    messages    [{"role": "user", "content": <problem + chat suffix>},
                 {"role": "assistant", "content": "<think>\\n...\\n</think>\\n\\n" + answer}]
    id          the problem id (str)            sample      the sample index (int)
    source      where the trace came from: its 'source' field, else its traces folder (str)
    teacher     the teacher that wrote it (str or None)
    num_tokens  tokens of the assistant turn (the student's tokenizer, or the teacher's count; int or None)

``messages`` is what TRL's SFTTrainer takes as it is: a non-empty list of ``{role, content}`` with roles in
``ROLES``, text contents, at least one user turn and a non-empty assistant turn last. Only ``messages`` is
needed to train (datasets from elsewhere may lack the other columns; they serve error messages and --plan).

The folder is a ``datasets.save_to_disk`` folder: one ``Dataset`` without a validation split, else a
``DatasetDict`` of ``train`` and ``validation``; ``parquet/<split>.parquet`` copies sit beside it.

>>> row = sft_row(user="1+1?", assistant="<think>\\neasy\\n</think>\\n\\n2", id="p", sample=0, source="traces",
...               teacher=None, num_tokens=7)
>>> list(row) == list(SFT_COLUMNS), message_problem(row["messages"]) is None
(True, True)
>>> message_problem([{"role": "user", "content": "1+1?"}])
'the last message must be the assistant turn (got user)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from distill.errors import DataError

ROLES = ("system", "user", "assistant")
# The files a datasets.save_to_disk folder holds (a DatasetDict, a Dataset, or its state).
SAVE_TO_DISK_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")


class Message(TypedDict):
    role: str
    content: str


class SFTRow(TypedDict):
    """One row of the SFT dataset (column order = ``SFT_COLUMNS``)."""

    messages: list[Message]
    id: str
    sample: int
    source: str
    teacher: str | None
    num_tokens: int | None


SFT_COLUMNS: tuple[str, ...] = tuple(SFTRow.__annotations__)


# ---------------------------------------------------------------------------------------------- writing
def sft_row(*, user: str, assistant: str, id: str, sample: int, source: str, teacher: str | None,
            num_tokens: int | None) -> SFTRow:
    """One training row: the user turn and the assistant turn, with the trace's key and provenance."""
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
            "id": id, "sample": sample, "source": source, "teacher": teacher, "num_tokens": num_tokens}


def features() -> Any:
    """The columns' ``datasets.Features`` (fixed, so an empty split still has them)."""
    import datasets

    return datasets.Features({
        "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
        "id": datasets.Value("string"),
        "sample": datasets.Value("int64"),
        "source": datasets.Value("string"),
        "teacher": datasets.Value("string"),
        "num_tokens": datasets.Value("int64"),
    })


def to_datasets(splits: Mapping[str, Sequence[Mapping[str, Any]]]) -> Any:
    """A ``Dataset`` (one split) or ``DatasetDict`` (several) with fixed features, empty splits included."""
    import datasets

    feats = features()
    built = {name: datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in SFT_COLUMNS}, features=feats)
             for name, rows in splits.items()}
    if list(built) == ["train"]:
        return built["train"]
    return datasets.DatasetDict(built)


def save_sft_dataset(ds: Any, out: Path, *, parquet: bool = True) -> list[Path]:
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


# ---------------------------------------------------------------------------------------------- reading
def read_sft_folder(path: Path, *, split: str = "train", eval_split: str = "") -> tuple[Any, Any | None, list[str]]:
    """``(train, eval or None, split names)`` of a ``save_to_disk`` folder (what ``distill filter`` writes).

    A ``Dataset`` is the ``split`` split; a ``DatasetDict`` must hold ``split`` (``eval_split`` is taken when
    present). The columns are not checked here: :func:`check_columns`.
    """
    import datasets

    if not any((path / marker).exists() for marker in SAVE_TO_DISK_MARKERS):
        raise DataError(f"{path} is not a datasets.save_to_disk folder (no dataset_dict.json or "
                        "dataset_info.json): pass the folder 'distill filter' wrote, or a .jsonl/.parquet file")
    record = _run_record(path)
    if record.get("stage") == "filter" and record.get("status") != "complete":
        kept = (record.get("counts") or {}).get("rows_kept")
        raise DataError(f"{path}: the 'distill filter' run there did not finish with data (run.json status "
                        f"{record.get('status')!r}{f', {kept} rows kept' if kept is not None else ''}): nothing to "
                        "train on; see its filter_stats.json, loosen the filters or add traces, and filter again")
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises many types for a damaged or empty folder
        raise DataError(f"{path}: cannot read the dataset saved there ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200] or 'no data files'}); rerun 'distill filter' to write it "
                        "again") from None
    if not isinstance(loaded, datasets.DatasetDict):
        return loaded, None, [split]
    splits = list(loaded)
    if split not in loaded:
        raise DataError(f"{path}: no split {split!r}; it has {', '.join(splits)} (set dataset_split)")
    evalset = loaded[eval_split] if eval_split and eval_split in loaded else None
    return loaded[split], evalset, splits


def _run_record(path: Path) -> dict[str, Any]:
    """The folder's ``run.json`` as a mapping (empty when it has none or it is unreadable)."""
    import json

    try:
        record = json.loads((path / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def check_columns(ds: Any, source: str) -> None:
    """An SFT dataset needs a ``messages`` column; the error names the columns it has."""
    if "messages" not in ds.column_names:
        raise DataError(f"{source}: no 'messages' column; the columns are {', '.join(ds.column_names)}. "
                        "SFT rows need messages = [{role: user, ...}, {role: assistant, ...}] (what 'distill filter' "
                        "writes)")


def message_problem(messages: Any) -> str | None:
    """Why ``messages`` is not a usable training conversation, or None when it is.

    >>> message_problem([{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]) is None
    True
    """
    if not isinstance(messages, list) or not messages:
        return f"messages must be a non-empty list of {{role, content}} (got {type(messages).__name__})"
    for j, msg in enumerate(messages):
        if not isinstance(msg, dict):
            return f"message {j} is a {type(msg).__name__}, not a {{role, content}} mapping"
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            return f"message {j} has role {role!r}; valid roles: {', '.join(ROLES)}"
        if not isinstance(content, str):
            return f"message {j} ({role}) has content of type {type(content).__name__}, not text"
        if role == "assistant" and not content.strip():
            return f"message {j} (assistant) is empty"
    if messages[-1].get("role") != "assistant":
        return f"the last message must be the assistant turn (got {messages[-1].get('role')})"
    if not any(m.get("role") == "user" for m in messages):
        return "no user turn"
    return None


def row_name(row: dict[str, Any], index: int) -> str:
    """How an error names a row: its index, and its id when it has one (``row 3 (id 'p7')``)."""
    rid = row.get("id")
    return f"row {index}" + (f" (id {rid!r})" if rid is not None else "")
