"""Problem sets: local files (jsonl, json, parquet, csv, a ``save_to_disk`` folder) or a hub dataset id.

Every source becomes a list of canonical rows ``Problem(id, problem, answer, source, extra, tests)``. Ids come from
``id_column`` when given (or an ``id``/``unique_id`` column when present), else a stable hash of the problem
text, so reruns and shards agree on identities. Duplicate ids are an error. The network is used only when
``source`` is a hub id, never for local files.

Code problems carry tests instead of (or beside) a gold answer: with ``tests_column="auto"`` a ``tests`` column
(an object or JSON text), HumanEval's ``test`` + ``entry_point``, APPS' ``input_output`` or ``inputs`` +
``outputs`` become ``Problem.tests`` (anything :func:`distill.verify.code_tests.as_tests` reads; checked when
loading); a named column must hold such an object itself. A code problem set needs no answer column.

>>> import json, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "p.jsonl"
>>> _ = p.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\\n")
>>> [(x.problem, x.answer) for x in load_problems(str(p))]
[('1+1?', '2')]
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import DataError

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
LINE_KEY = "__line__"   # a jsonl row's line number, kept while loading so messages can say file:line
# Tried in order when no id column is named.
DEFAULT_ID_COLUMNS = ("id", "unique_id", "problem_id", "idx")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    id: str
    problem: str
    answer: str | None
    source: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    tests: Any = field(default=None, compare=False)   # a code problem's tests (JSON-able), else None

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
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                line = _decode(raw, path, lineno)
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({exc}); fix or remove that line") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object per line")
                row[LINE_KEY] = lineno
                rows.append(row)
        return rows
    if suffix == ".json":
        try:
            data = json.loads(_decode(path.read_bytes(), path, None))
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
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: not a readable parquet file ({exc}); check the file or convert it to jsonl") \
                from None
    if suffix == ".csv":
        import csv
        import io

        return list(csv.DictReader(io.StringIO(_decode(path.read_bytes(), path, None), newline="")))
    raise DataError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(LOCAL_SUFFIXES)} "
                    "or a save_to_disk folder")


def _decode(raw: bytes, path: Path, lineno: int | None) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"{path}:{lineno}" if lineno else f"{path} (byte {exc.start})"
        raise DataError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start} of that "
                        f"{'line' if lineno else 'file'}); re-save the file as UTF-8") from None


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
                  trust_remote_code: bool = False, tests_column: str | None = None) -> list[Problem]:
    """Load problems as canonical rows; errors name the file and the columns that do exist.

    ``tests_column``: None reads no code tests; "auto" the usual columns (see the module docstring); a name,
    that column."""
    rows = _read_local(Path(source).expanduser()) if is_local(source) else _read_hub(
        source, split, subset, trust_remote_code)
    if not rows:
        raise DataError(f"{source}: no rows")
    columns = [c for c in rows[0] if c != LINE_KEY]
    if answer_column and answer_column not in columns and has_test_columns(columns, tests_column):
        answer_column = None            # a code problem set: the tests are the reference, not an answer
    for col, flag in ((problem_column, "--problem-column"), (answer_column, "--answer-column"),
                      (id_column, "--id-column"), (tests_column if tests_column != "auto" else None,
                                                   "--tests-column")):
        if col and col not in columns:
            raise DataError(f"{source}: no column {col!r} (pass {flag}). Columns: {', '.join(columns)}")
    if id_column is None:
        id_column = next((c for c in DEFAULT_ID_COLUMNS if c in columns), None)
    problems = ProblemSet()
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        where = f"{source}:{row.pop(LINE_KEY)}" if LINE_KEY in row else f"{source}: row {i}"
        text = row.get(problem_column)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: column {problem_column!r} is empty or not text")
        pid = str(row[id_column]) if id_column and row.get(id_column) is not None else content_id(text)
        if pid in seen:
            raise DataError(f"{source}: duplicate id {pid!r} in rows {seen[pid]} and {i}"
                            + ("" if id_column else " (identical problem text)")
                            + "; ids must be unique: fix the data or pass another --id-column")
        seen[pid] = i
        answer = _answer(row.get(answer_column), where, answer_column) if answer_column else None
        tests = _tests(row, tests_column, where) if tests_column else None
        if answer_column and answer is None and tests is None:
            problems.missing_answers.append(where)
        extra = {k: v for k, v in row.items() if k not in (problem_column, answer_column, id_column)}
        problems.append(Problem(pid, text, answer, str(source), extra, tests))
        if limit is not None and len(problems) >= limit:
            break
    if problems.missing_answers:
        shown = ", ".join(problems.missing_answers[:5])
        more = len(problems.missing_answers) - 5
        log.warning("%d of %d problems have no %r: %s%s; they get no verdicts", len(problems.missing_answers),
                    len(problems), answer_column, shown, f" and {more} more" if more > 0 else "")
    return problems


class ProblemSet(list):
    """The loaded problems, and the rows (``file:line`` or ``file: row i``) whose answer was missing or empty."""

    def __init__(self) -> None:
        super().__init__()
        self.missing_answers: list[str] = []


def _answer(value: Any, where: str, column: str) -> str | None:
    """A gold answer as text: strings as they are, numbers written out; a list, mapping or bool is refused."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{where}: column {column!r} holds a {type(value).__name__} ({str(value)[:60]!r}), not an "
                        "answer; write the gold answer as text (e.g. \"1, 2\" or \"\\{1,2\\}\"), or fix that row")
    return value if isinstance(value, str) else str(value)


# ---------------------------------------------------------------------------------------------- code tests
def has_test_columns(columns: list[str], tests_column: str | None) -> bool:
    """Whether rows with these columns carry code tests read by ``tests_column`` (None: tests are not read)."""
    if tests_column is None:
        return False
    if tests_column != "auto":
        return tests_column in columns
    have = set(columns)
    return bool({"tests", "input_output"} & have) or {"test", "entry_point"} <= have or {"inputs", "outputs"} <= have


def _tests(row: dict[str, Any], tests_column: str, where: str) -> Any:
    """A row's code tests (checked by :func:`distill.verify.code_tests.as_tests`), or None when it has none."""
    from distill.verify.code_tests import as_tests, code_tests_of_row

    column = None if tests_column == "auto" else tests_column
    try:
        spec = code_tests_of_row({k: [v] for k, v in row.items()}, 0, column)
        if spec is not None:
            as_tests(spec)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        name = f"column {column!r}" if column else "its tests"
        raise DataError(f"{where}: {name} cannot be read as code tests ({str(exc)[:120]}); give a HumanEval "
                        "check ('test' + 'entry_point') or stdin/stdout pairs ('inputs' + 'outputs')") from None
    return spec
