"""Read a completions file for ``distill eval --completions FILE`` (re-scoring without a model).

FILE is jsonl, one row per problem: ``{"id": ..., "answer": gold, "completions": [str, ...]}``. Ids are
compared as strings (``60`` and ``"60"`` are the same problem). Nothing is skipped quietly: a bad line, a
missing key, a non-string completion or a repeated id is an error naming the file and line.

With a data file (``--data-file``) the gold answers come from it, matched by id: every row must name a
problem of the data file, every problem of the data file (its first ``--limit``) must have a row, and a row
that also carries an ``answer`` must agree with the data file (compared in the task's verify mode, so
``"025"`` agrees with ``"25"`` for AIME).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from distill.data.jsonl import ReadReport, iter_jsonl
from distill.errors import DataError
from distill.stages.evaluate.scoring import ProblemCompletions

log = logging.getLogger(__name__)


def _ids(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


def read_rows(path: str | Path, *, mode: str) -> list[tuple[int, str, str | None, list[str]]]:
    """``(line, id, answer or None, completions)`` for every row, validated."""
    from distill.verify.equivalence import check_gold

    path = Path(path)
    if not path.is_file():
        raise DataError(f"completions file not found: {path}")
    report = ReadReport()
    rows = []
    seen: dict[str, int] = {}
    for line, row in iter_jsonl(path, report):
        if row.get("id") is None:
            raise DataError(f"{path}:{line}: no 'id' (keys: {', '.join(sorted(row)) or 'none'}); every row needs "
                            "the problem's id")
        pid = str(row["id"])
        if pid in seen:
            raise DataError(f"{path}:{line}: id {pid!r} already appeared on line {seen[pid]}; put all of a "
                            "problem's completions in one row")
        seen[pid] = line
        completions = row.get("completions")
        if not isinstance(completions, list):
            raise DataError(f"{path}:{line}: 'completions' must be a list of strings, got "
                            f"{type(completions).__name__}")
        for j, c in enumerate(completions):
            if not isinstance(c, str):
                raise DataError(f"{path}:{line}: completions[{j}] is {type(c).__name__}, not a string (use \"\" "
                                "for an empty completion)")
        answer = row.get("answer")
        if answer is not None:
            answer = str(answer)
            try:
                check_gold(answer, mode)
            except ValueError as exc:
                raise DataError(f"{path}:{line}: id {pid!r}: {exc}") from None
        rows.append((line, pid, answer, completions))
    if report.bad:
        raise DataError(f"{path}: {report.summary()}. Fix those lines: a skipped line would change the scores")
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def read_completions(path: str | Path, *, mode: str, data_docs: list[dict[str, Any]] | None = None,
                     limit: int | None = None, skipped: list[str] | None = None) -> list[ProblemCompletions]:
    """The problems to score, in the data file's order (or the completions file's order without one).

    ``skipped``: ids of problems without a gold answer (rows without 'answer', or left out of ``data_docs``):
    they are not scored, and their ids are appended to it."""
    skipped = [] if skipped is None else skipped
    from distill.verify import answers_equivalent

    path = Path(path)
    rows = read_rows(path, mode=mode)
    if data_docs is None:
        if limit is not None and len(rows) > limit:
            log.warning("%s: --limit %d: scoring the first %d rows, %d left out", path, limit, limit,
                        len(rows) - limit)
        out = []
        for _line, pid, answer, completions in rows[:limit]:
            if answer is None:
                skipped.append(pid)
                continue
            out.append(ProblemCompletions(pid, answer, completions))
        if not out:
            raise DataError(f"{path}: every row has no 'answer'; give the rows their gold answers, or pass --data-file "
                            "to take the golds from the problem file by id")
        if skipped:
            log.warning("%s: %d row(s) without an 'answer' left out: %s (pass --data-file to take golds by id)",
                        path, len(skipped), _ids(skipped))
        return out

    docs = data_docs[:limit] if limit else data_docs
    known = {str(d["id"]) for d in data_docs}
    by_id = {pid: (line, answer, completions) for line, pid, answer, completions in rows if pid not in skipped}
    unknown = [pid for pid in by_id if pid not in known]
    if unknown:
        raise DataError(f"{path}: {len(unknown)} row id(s) not in the data file: {_ids(unknown)}. The ids must "
                        f"match the data file's (e.g. {_ids([str(d['id']) for d in data_docs], 3)}); is it the "
                        "right --data-file?")
    absent = [str(d["id"]) for d in docs if str(d["id"]) not in by_id]
    if absent:
        raise DataError(f"{path}: no row for {len(absent)} of the {len(docs)} problems in the data file: "
                        f"{_ids(absent)}. Add them, or pass --limit to score only the first problems")
    left_out = len(by_id) - len(docs)
    if left_out:
        log.warning("%s: --limit %d: scoring the data file's first %d problems, %d row(s) left out", path, limit,
                    len(docs), left_out)
    out = []
    for doc in docs:
        pid = str(doc["id"])
        line, answer, completions = by_id[pid]
        gold = str(doc["answer"])
        if answer is not None and not answers_equivalent(answer, gold, mode=mode):
            raise DataError(f"{path}:{line}: id {pid!r} has answer {answer!r} but the data file says {gold!r}; "
                            "is it the right --data-file?")
        out.append(ProblemCompletions(pid, gold, completions))
    return out
