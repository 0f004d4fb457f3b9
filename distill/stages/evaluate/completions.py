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
from dataclasses import dataclass, field
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
        pid, completions = _checked_row(path, line, row, seen)
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


# ---------------------------------------------------------------------------------------------------- code tasks
# A code problem carries tests instead of a gold answer: HumanEval style (``test`` + ``entry_point``) or
# stdin/stdout pairs (``inputs``/``outputs``, or ``input_output`` as JSON text), or either of these in one
# ``tests`` column (an object or JSON text: the nano code task's layout). Its ``prompt`` (optional) is what the
# model continued: HumanEval's signature + docstring.

CODE_TEST_KEYS = ("tests", "test", "entry_point", "inputs", "outputs", "input_output")


def code_tests_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """The tests a row carries, as a dict :func:`distill.verify.code_tests.as_tests` reads; None without."""
    tests = row.get("tests")
    if isinstance(tests, str) and tests.strip():
        import json

        try:
            tests = json.loads(tests)
        except ValueError:
            raise DataError(f"id {row.get('task_id', row.get('id'))!r}: 'tests' is not valid JSON") from None
    if isinstance(tests, dict) and tests:
        return tests
    if row.get("test") and row.get("entry_point"):
        return {"test": str(row["test"]), "entry_point": str(row["entry_point"])}
    if row.get("input_output"):
        return {"input_output": row["input_output"]}
    if isinstance(row.get("inputs"), list) and isinstance(row.get("outputs"), list):
        return {"inputs": row["inputs"], "outputs": row["outputs"]}
    return None


def _raw_rows(path: Path) -> list[dict[str, Any]]:
    import gzip
    import json

    from distill.data.problems import _read_local

    if path.name.endswith(".jsonl.gz"):
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return [json.loads(line) for line in fh if line.strip()]
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable gzipped jsonl file ({exc})") from None
    return _read_local(path)


def has_code_tests(path: str | Path) -> bool:
    """Whether the first row of a problem or completions file carries code tests (then it is scored as code)."""
    path = Path(path)
    if not path.is_file():
        return False
    rows = _raw_rows(path)
    return bool(rows) and code_tests_of(rows[0]) is not None


def load_code_docs(path: str | Path) -> list[dict[str, Any]]:
    """Code problems ``{id, prompt, tests, problem}`` from a jsonl(.gz)/json/parquet/csv file; every row must have
    an id (``task_id`` or ``id``) and tests. ``prompt`` is the code the model continues (HumanEval's stub; empty
    when the row has none), ``problem`` the text a model is asked (the ``problem`` column, else the prompt)."""
    from distill.data.problems import LINE_KEY

    path = Path(path)
    rows = _raw_rows(path)
    docs, seen = [], set()
    for i, row in enumerate(rows, start=1):
        where = f"{path}:{row.get(LINE_KEY, i)}"
        pid = row.get("task_id", row.get("id"))
        if pid is None:
            raise DataError(f"{where}: no 'task_id' or 'id'; every code problem needs an id")
        pid = str(pid)
        if pid in seen:
            raise DataError(f"{where}: id {pid!r} appears twice")
        seen.add(pid)
        tests = code_tests_of(row)
        if tests is None:
            raise DataError(f"{where}: id {pid!r} has no tests: give it 'test' + 'entry_point' (HumanEval style) "
                            "or 'inputs' + 'outputs' (stdin/stdout pairs)")
        prompt = str(row.get("prompt") or "")
        docs.append({"id": pid, "prompt": prompt, "tests": tests, "problem": str(row.get("problem") or prompt)})
    if not docs:
        raise DataError(f"{path}: no problems")
    return docs


@dataclass
class CodeProblem:
    """One code problem: its tests, the prompt the model continued, and the completions in sample order."""

    id: str
    tests: dict[str, Any]
    prompt: str = ""
    completions: list[str] = field(default_factory=list)


def read_code_completions(path: str | Path, *, data_docs: list[dict[str, Any]] | None = None,
                          limit: int | None = None) -> list[CodeProblem]:
    """Code problems to score. With ``data_docs`` the tests and prompts come from them by id (every row must
    name a problem, every problem of the first ``limit`` must have a row); without, each row carries its own
    tests (and ``prompt``)."""
    from distill.data.jsonl import ReadReport, iter_jsonl

    path = Path(path)
    if not path.is_file():
        raise DataError(f"completions file not found: {path}")
    report = ReadReport()
    rows: list[tuple[int, str, list[str], dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for line, row in iter_jsonl(path, report):
        pid, completions = _checked_row(path, line, row, seen)
        rows.append((line, pid, completions, row))
    if report.bad:
        raise DataError(f"{path}: {report.summary()}. Fix those lines: a skipped line would change the scores")
    if not rows:
        raise DataError(f"{path}: no rows")
    if data_docs is None:
        out = []
        for line, pid, completions, row in rows[:limit]:
            tests = code_tests_of(row)
            if tests is None:
                raise DataError(f"{path}:{line}: id {pid!r} has no tests; give the rows 'test' + 'entry_point' "
                                "or 'inputs' + 'outputs', or pass --data-file (--task humaneval: its problems)")
            out.append(CodeProblem(pid, tests, str(row.get("prompt") or ""), completions))
        return out
    docs = data_docs[:limit] if limit else data_docs
    known = {d["id"] for d in data_docs}
    by_id = {pid: completions for _line, pid, completions, _row in rows}
    unknown = [pid for pid in by_id if pid not in known]
    if unknown:
        raise DataError(f"{path}: {len(unknown)} row id(s) not in the problems: {_ids(unknown)} (ids look like "
                        f"{_ids([d['id'] for d in data_docs], 3)})")
    absent = [d["id"] for d in docs if d["id"] not in by_id]
    if absent:
        raise DataError(f"{path}: no row for {len(absent)} of the {len(docs)} problems: {_ids(absent)}. Add them, "
                        "or pass --limit to score only the first problems")
    return [CodeProblem(d["id"], d["tests"], d["prompt"], by_id[d["id"]]) for d in docs]


def _checked_row(path: Path, line: int, row: dict[str, Any], seen: dict[str, int]) -> tuple[str, list[str]]:
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
        raise DataError(f"{path}:{line}: 'completions' must be a list of strings, got {type(completions).__name__}")
    for j, c in enumerate(completions):
        if not isinstance(c, str):
            raise DataError(f"{path}:{line}: completions[{j}] is {type(c).__name__}, not a string (use \"\" "
                            "for an empty completion)")
    return pid, completions


def sample_code_completions(cfg: Any, task: Any, out: Path, *, n: int,
                            docs: list[dict[str, Any]]) -> tuple[list[CodeProblem], Any]:
    """``--model`` on a code set: n completions per problem sampled by lm-eval (``eval/humaneval.yaml`` or
    ``eval/custom_code.yaml``), paired by id with each problem's tests and prompt (``docs``: the same file's
    :func:`load_code_docs`). Returns the problems and the harness run (for results.json and run.json)."""
    from distill.stages.evaluate.harness import run_harness
    from distill.stages.evaluate.tasks import code_sampling_task

    code_task, yaml_path = code_sampling_task(task)
    harness = run_harness(cfg, code_task, out, n=n, verify_mode="code", yaml_path=yaml_path)
    by_id = {d["id"]: d for d in docs}
    problems = [CodeProblem(p.id, by_id[p.id]["tests"], by_id[p.id]["prompt"], list(p.completions))
                for p in harness.problems]
    return problems, harness
