"""The generative judge's answers on disk: one append-only jsonl file, so a rerun asks nothing twice.

A line is ``{"key": ..., "decision": "yes"|"no"|"unclear", "reply": ..., "model": ..., "at": ...}``; the key is a
hash of the judge model, the prompt version, the problem, the gold answer and the answer shown
(:func:`cache_key`). Failed calls are not stored (a rerun asks them again). Lines are flushed and ``fsync``-ed
every :data:`FSYNC_EVERY` answers and on close; a line torn by a crash (or any line that is not a JSON object
of that shape) is skipped when the file is read, and the next append starts on a fresh line. The file never
holds an API key: only the decision and the reply, which the engine has already scrubbed.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "judge_cache.jsonl"
>>> cache = JudgeCache(path)
>>> cache.put("k1", {"decision": "yes", "reply": "Judgement: Yes", "model": "m"})
>>> cache.close()
>>> _ = path.open("a").write('{"key": "k2", "decis')      # a crash in the middle of a line
>>> again = JudgeCache(path)
>>> again.get("k1")["decision"], again.get("k2"), again.skipped
('yes', None, 1)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import IO, Any

FSYNC_EVERY = 16
DECISIONS_KEPT = ("yes", "no", "unclear")


def cache_key(model: str, version: int, problem: str, gold: str, answer: str) -> str:
    """The cache key of one question: a SHA-256 of its parts (nothing in it can be read back).

    Example:
        >>> cache_key("m", 1, "1+1?", "2", "two") == cache_key("m", 1, "1+1?", "2", "two")
        True
        >>> cache_key("m", 1, "1+1?", "2", "two") == cache_key("other", 1, "1+1?", "2", "two")
        False
    """
    text = json.dumps([model, version, problem, gold, answer], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class JudgeCache:
    """The entries of ``path`` (read once), plus what this run appends to it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        self.skipped = 0
        self._fh: IO[str] | None = None
        self._pending = 0
        self._needs_newline = False
        self._read()

    def _read(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                self.skipped += 1
                continue
            if not (isinstance(entry, dict) and isinstance(entry.get("key"), str)
                    and entry.get("decision") in DECISIONS_KEPT and isinstance(entry.get("reply"), str)):
                self.skipped += 1
                continue
            self.entries[entry["key"]] = entry

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Append one answer (``decision`` in yes/no/unclear, ``reply``); synced every few answers."""
        entry = {"key": key, **entry, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.entries[key] = entry
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
            if self._needs_newline:       # the last line was torn: never glue a new entry onto it
                self._fh.write("\n")
                self._needs_newline = False
        self._fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._pending += 1
        if self._pending >= FSYNC_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._fh is not None and self._pending:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._pending = 0

    def close(self) -> None:
        if self._fh is not None:
            self.flush()
            self._fh.close()
            self._fh = None
