"""Problem sets: local files (jsonl, json, parquet, csv, a ``save_to_disk`` folder) or a hub dataset id.

Every source becomes a list of canonical rows ``Problem(id, problem, answer, source, extra)``. Ids come from
``id_column`` when given (or an ``id``/``unique_id`` column when present), else a stable hash of the problem
text, so reruns and shards agree on identities. Duplicate ids are an error. The network is used only when
``source`` is a hub id, never for local files.

>>> import json, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "p.jsonl"
>>> _ = p.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\\n")
>>> [(x.problem, x.answer) for x in load_problems(str(p))]
[('1+1?', '2')]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import DataError

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
# Tried in order when no id column is named.
DEFAULT_ID_COLUMNS = ("id", "unique_id", "problem_id", "idx")


@dataclass(frozen=True)
class Problem:
    id: str
    problem: str
    answer: str | None
    source: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "problem": self.problem, "answer": self.answer, "source": self.source}


def content_id(text: str) -> str:
    """A stable id from the problem text (whitespace-normalised)."""
    return "p-" + hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:12]


def is_local(source: str) -> bool:
    p = Path(source)
    return p.exists() or source.endswith(LOCAL_SUFFIXES) or source.startswith((".", "/", "~"))


def _read_local(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise DataError(f"problem file not found: {path}")
    if path.is_dir():
        import datasets

        try:
            ds = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as exc:
            raise DataError(f"{path}: not a dataset folder saved with save_to_disk ({exc})") from None
        if isinstance(ds, datasets.DatasetDict):
            split = "test" if "test" in ds else next(iter(ds))
            ds = ds[split]
        return ds.to_list()
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({exc}); fix or remove that line") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object per line")
                rows.append(row)
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataError(f"{path}: expected a list of objects (or one key holding such a list)")
            data = lists[0]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"{path}: expected a list of objects")
        return data
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix == ".csv":
        import csv

        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    raise DataError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(LOCAL_SUFFIXES)} "
                    "or a save_to_disk folder")


def _read_hub(source: str, split: str | None, subset: str | None, trust_remote_code: bool) -> list[dict[str, Any]]:
    import datasets

    try:
        ds = datasets.load_dataset(source, subset, split=split or "train",
                                   **({"trust_remote_code": True} if trust_remote_code else {}))
    except Exception as exc:  # datasets raises many types; all mean "could not load this id"
        raise DataError(f"could not load hub dataset {source!r} (subset={subset}, split={split or 'train'}): {exc}. "
                        "Offline? Pass a local file instead (jsonl/json/parquet/csv).") from None
    return ds.to_list()


def load_problems(source: str, *, split: str | None = None, subset: str | None = None,
                  problem_column: str = "problem", answer_column: str | None = "answer",
                  id_column: str | None = None, limit: int | None = None,
                  trust_remote_code: bool = False) -> list[Problem]:
    """Load problems as canonical rows; errors name the file and the columns that do exist."""
    rows = _read_local(Path(source).expanduser()) if is_local(source) else _read_hub(
        source, split, subset, trust_remote_code)
    if not rows:
        raise DataError(f"{source}: no rows")
    columns = list(rows[0].keys())
    for col, flag in ((problem_column, "--problem-column"), (answer_column, "--answer-column"),
                      (id_column, "--id-column")):
        if col and col not in columns:
            raise DataError(f"{source}: no column {col!r} (pass {flag}). Columns: {', '.join(columns)}")
    if id_column is None:
        id_column = next((c for c in DEFAULT_ID_COLUMNS if c in columns), None)
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        text = row.get(problem_column)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{source}: row {i}: column {problem_column!r} is empty or not text")
        pid = str(row[id_column]) if id_column and row.get(id_column) is not None else content_id(text)
        if pid in seen:
            raise DataError(f"{source}: duplicate id {pid!r} in rows {seen[pid]} and {i}"
                            + ("" if id_column else " (identical problem text)")
                            + "; ids must be unique: fix the data or pass another --id-column")
        seen[pid] = i
        answer = row.get(answer_column) if answer_column else None
        extra = {k: v for k, v in row.items() if k not in (problem_column, answer_column, id_column)}
        problems.append(Problem(pid, text, None if answer is None else str(answer), str(source), extra))
        if limit is not None and len(problems) >= limit:
            break
    return problems
