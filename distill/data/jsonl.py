"""Append-only JSONL shards that survive ``kill -9``, and readers that report bad lines instead of hiding them.

Writers append whole lines in one ``write`` per chunk, then flush and fsync. A crash can leave at most one
partial last line (no trailing newline): readers skip it with a warning, and a writer reopening the file
truncates it first, so appended rows never join a fragment.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "shard-00000.jsonl"
>>> with ShardWriter(p) as w:
...     w.write_rows([{"id": "a"}, {"id": "b"}])
2
>>> [row["id"] for _, row in iter_jsonl(p)]
['a', 'b']
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class BadLine:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class ReadReport:
    """What a reader skipped; callers print it so nothing is dropped silently."""

    bad: list[BadLine] = field(default_factory=list)
    rows: int = 0

    def summary(self) -> str:
        if not self.bad:
            return f"{self.rows} rows read, no bad lines"
        shown = "; ".join(str(b) for b in self.bad[:5])
        more = f" (+{len(self.bad) - 5} more)" if len(self.bad) > 5 else ""
        return f"{self.rows} rows read, {len(self.bad)} bad line(s) skipped: {shown}{more}"


def _truncate_partial_tail(path: Path) -> int:
    """Cut a trailing line that has no newline (a write interrupted by a crash). Returns bytes removed."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return 0
        # Walk back to the last newline.
        pos = size
        block = 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                fh.truncate(keep)
                return size - keep
            pos = start
        fh.truncate(0)
        return size


class ShardWriter:
    """Append rows to one JSONL file, durably, a chunk at a time."""

    def __init__(self, path: str | Path, *, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        removed = _truncate_partial_tail(self.path)
        if removed:
            log.warning("%s: removed a partial last line (%d bytes) left by an interrupted write", self.path, removed)
        self._fh = self.path.open("a", encoding="utf-8")
        self._fsync = fsync
        self.rows_written = 0

    def write_rows(self, rows: Iterable[Mapping[str, Any]]) -> int:
        lines = [json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows]
        if not lines:
            return 0
        self._fh.write("".join(lines))
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())
        self.rows_written += len(lines)
        return len(lines)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def iter_jsonl(path: str | Path, report: ReadReport | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, row)`` for each valid JSON object line; bad lines go to ``report`` (and the log).

    Streams the file line by line (shards of long traces can be many GB).
    """
    path = Path(path)
    report = report if report is not None else ReadReport()
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            complete = raw.endswith(b"\n")
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError as exc:
                detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)  # or a UnicodeDecodeError
                reason = "partial last line (interrupted write?)" if not complete else f"not valid JSON ({detail})"
                _bad(report, path, lineno, reason)
                continue
            if not isinstance(row, dict):
                _bad(report, path, lineno, f"expected a JSON object, got {type(row).__name__}")
                continue
            # A last line without its newline that still parses (a file written by hand) is taken as data.
            report.rows += 1
            yield lineno, row


def _bad(report: ReadReport, path: Path, line: int, reason: str) -> None:
    bad = BadLine(str(path), line, reason)
    report.bad.append(bad)
    log.warning("skipping %s", bad)


def read_jsonl(path: str | Path, report: ReadReport | None = None) -> list[dict[str, Any]]:
    return [row for _, row in iter_jsonl(path, report)]
