"""The trace row: one teacher completion, the hand-over from ``distill generate`` to ``distill filter``.

``distill generate`` builds every row with :func:`trace_row` and appends it to a shard of a traces folder
(``distill.data.shards``); ``distill filter`` reads folders back with :func:`iter_traces` (one or many folders,
several teachers mixed). A reader never takes a half-written line for data: it skips it and reports file and
line.

Row fields (``TRACE_FIELDS``, in this order: the resume scan relies on ``id`` and ``sample`` coming first)::

    id, sample            the problem id and the sample index (0..n-1): together the row's key
    problem               the problem text
    prompt                the exact prompt: the rendered text, or the chat messages (openai chat API)
    prompt_has_think      whether the prompt ends inside an open <think> (``prompt_opens_think``), so the
                          completion starts in the reasoning
    completion            the raw completion
    reasoning, answer_text  the text inside <think>...</think> and the text after it (None when unfinished)
    final_answer, verdict the extracted answer and the truth layer's verdict status (None without a gold);
                          for a code problem, the program (the last fenced block of the answer) and its
                          sandboxed run's status (correct, wrong_answer, error, timeout, no_code ...)
    gold                  the reference answer, when the problem set has one
    tests                 a code problem's tests (a HumanEval check ``{test, entry_point}``, stdin/stdout pairs
                          ``{inputs, outputs}`` ...: anything ``distill.verify.code_tests.as_tests`` reads), else None
    prompt_tokens, completion_tokens, finish_reason ("stop" | "length" | ...)
    teacher, engine, sampling (dict), seed

A row needs ``id``, ``sample`` and ``completion`` (``REQUIRED_FIELDS``) to be read; the others may be missing
in rows written by other tools. Shards written before ``prompt_has_think`` existed lack it: readers take
:func:`trace_prompt_has_think`, which falls back to ``prompt_opens_think(row["prompt"])`` for them. Shards
written before ``tests`` existed lack it too: :func:`iter_traces` gives such rows ``tests: None`` (a row from
another tool may carry its tests in HumanEval's own ``test`` + ``entry_point`` columns instead).

>>> row = trace_row(id="p1", sample=0, problem="1+1?", prompt="<|assistant|><think>\\n", prompt_has_think=True,
...                 completion="2</think> 2", reasoning="2", answer_text="2", final_answer="2", verdict="correct",
...                 gold="2", tests=None, prompt_tokens=5, completion_tokens=3, finish_reason="stop", teacher="t", engine="hf",
...                 sampling={"temperature": 0.6}, seed=1)
>>> list(row)[:5]
['id', 'sample', 'problem', 'prompt', 'prompt_has_think']
>>> trace_prompt_has_think({"id": "old", "sample": 0, "prompt": "...<think>\\n", "completion": "x"})
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypedDict, cast

from distill.data.jsonl import ReadReport, iter_jsonl
from distill.data.prompts import prompt_opens_think
from distill.data.shards import shard_files
from distill.errors import DataError


class TraceRow(TypedDict):
    """One trace row as ``distill generate`` writes it (field order = ``TRACE_FIELDS``)."""

    id: str
    sample: int
    problem: str
    prompt: str | list[dict[str, str]]
    prompt_has_think: bool
    completion: str
    reasoning: str | None
    answer_text: str | None
    final_answer: str | None
    verdict: str | None
    gold: str | None
    tests: Any
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    teacher: str
    engine: str
    sampling: dict[str, Any]
    seed: int | None


TRACE_FIELDS: tuple[str, ...] = tuple(TraceRow.__annotations__)
REQUIRED_FIELDS = ("id", "sample", "completion")


# ---------------------------------------------------------------------------------------------- writing
def trace_row(**fields: Any) -> TraceRow:
    """A row with exactly ``TRACE_FIELDS``, in order; a missing or unknown field is a bug in the writer."""
    missing = [f for f in TRACE_FIELDS if f not in fields]
    unknown = [f for f in fields if f not in TRACE_FIELDS]
    if missing or unknown:
        raise ValueError(f"a trace row needs exactly TRACE_FIELDS: missing {missing}, unknown {unknown}")
    return cast(TraceRow, {k: fields[k] for k in TRACE_FIELDS})


# ---------------------------------------------------------------------------------------------- reading
def trace_prompt_has_think(row: dict[str, Any]) -> bool:
    """The row's ``prompt_has_think``; for rows without it (older shards), ``prompt_opens_think`` of its prompt."""
    stored = row.get("prompt_has_think")
    if stored is None:
        return prompt_opens_think(row.get("prompt"))
    return bool(stored)


def iter_traces(folders: str | Path | Iterable[str | Path], report: ReadReport | None = None) -> Iterator[dict[str, Any]]:
    """Yield trace rows from every shard of one or more folders (sorted, deterministic order).

    Rows missing a required field are reported with file and line and skipped. Every row yielded has
    ``prompt_has_think`` (filled by :func:`trace_prompt_has_think` for older shards) and ``tests`` (None when
    absent).
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
                        yield _complete(row)
                continue
            for lineno, row in iter_jsonl(path, report):
                if _check(row, path, lineno, report):
                    yield _complete(row)
                else:
                    report.rows -= 1


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    row["prompt_has_think"] = trace_prompt_has_think(row)
    row.setdefault("tests", None)
    return row


def _check(row: dict[str, Any], path: Path, line: int, report: ReadReport) -> bool:
    from distill.data.jsonl import _bad

    missing = [f for f in REQUIRED_FIELDS if f not in row]
    if missing:
        _bad(report, path, line, f"missing field(s) {', '.join(missing)}")
        return False
    return True
