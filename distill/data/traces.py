"""Trace records: one row per teacher completion, in a folder of shards (``shard-*.jsonl`` or ``*.parquet``).

``distill generate`` writes them; ``distill filter`` reads them (from one or many folders, several teachers
mixed). A reader never takes a half-written line for data: it skips it and reports file and line.

Row fields (``TRACE_FIELDS``)::

    id, sample            the problem id and the sample index (0..n-1): together the row's key
    prompt, completion    the exact prompt text and the raw completion
    reasoning, answer_text  the text inside <think>...</think> and the text after it (None when unfinished)
    final_answer, verdict the extracted answer and the truth layer's verdict status (None without a gold)
    gold                  the reference answer, when the problem set has one
    prompt_tokens, completion_tokens, finish_reason ("stop" | "length" | ...)
    teacher, engine, sampling (dict), seed
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from distill.data.jsonl import ReadReport, iter_jsonl
from distill.errors import DataError

TRACE_FIELDS = ("id", "sample", "problem", "prompt", "completion", "reasoning", "answer_text", "final_answer",
                "verdict", "gold", "prompt_tokens", "completion_tokens", "finish_reason", "teacher", "engine",
                "sampling", "seed")
REQUIRED_FIELDS = ("id", "sample", "completion")


def shard_name(shard_index: int, num_shards: int, suffix: str = "jsonl") -> str:
    return f"shard-{shard_index:05d}-of-{num_shards:05d}.{suffix}"


def shard_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"traces folder not found: {folder}")
    files = sorted(list(folder.glob("shard-*.jsonl")) + list(folder.glob("*.parquet")))
    return files


def iter_traces(folders: str | Path | Iterable[str | Path], report: ReadReport | None = None) -> Iterator[dict[str, Any]]:
    """Yield trace rows from every shard of one or more folders (sorted, deterministic order).

    Rows missing a required field are reported with file and line and skipped.
    """
    if isinstance(folders, (str, Path)):
        folders = [folders]
    report = report if report is not None else ReadReport()
    for folder in folders:
        files = shard_files(folder)
        if not files:
            raise DataError(f"{folder}: no trace shards (shard-*.jsonl or *.parquet) — is this a traces folder?")
        for path in files:
            if path.suffix == ".parquet":
                import pyarrow.parquet as pq

                for i, row in enumerate(pq.read_table(path).to_pylist(), start=1):
                    if _check(row, path, i, report):
                        report.rows += 1
                        yield row
                continue
            for lineno, row in iter_jsonl(path, report):
                if _check(row, path, lineno, report):
                    yield row
                else:
                    report.rows -= 1


def _check(row: dict[str, Any], path: Path, line: int, report: ReadReport) -> bool:
    from distill.data.jsonl import _bad

    missing = [f for f in REQUIRED_FIELDS if f not in row]
    if missing:
        _bad(report, path, line, f"missing field(s) {', '.join(missing)}")
        return False
    return True


def trace_keys(folder: str | Path) -> set[tuple[str, int]]:
    """The (id, sample) pairs already written in a folder (for resuming)."""
    folder = Path(folder)
    if not folder.is_dir() or not shard_files(folder):
        return set()
    return {(str(r["id"]), int(r["sample"])) for r in iter_traces(folder)}
