"""Check a program against a problem's tests, one run at a time or many at once, always in the sandbox.

Two test forms (:func:`as_tests` also reads the usual dict layouts):

- :class:`FunctionTests`: HumanEval/LeetCode style, a ``test`` source defining ``check(candidate)`` and an
  ``entry_point``; the run is HumanEval's program ``program + "\\n" + test + f"\\ncheck({entry_point})"``
  plus one line that prints a random marker after ``check`` returns, so a program that exits early
  (``sys.exit(0)``, ``os._exit(0)``) is an error, not a pass. It is one test (``total == 1``), as in HumanEval.
- :class:`IOTests`: stdin/stdout pairs (competitive programming); one run per pair, the outputs compared
  token by token (whitespace-separated), so trailing spaces and newlines do not matter.

Every run goes through :func:`distill.verify.sandbox.run_program`; nothing here executes model code itself.
:func:`verify_code_batch` runs many items on a thread pool (each run is its own sandboxed process tree) and
never lets one item's failure or hostility stop the batch.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Union

from distill.verify.sandbox import ExecResult, Limits, SandboxError, run_program

VERDICT_STATUSES = ("correct", "wrong_answer", "error", "timeout", "memory", "output_limit", "killed", "no_code",
                    "sandbox_error")
_DETAIL_CHARS = 300


@dataclass(frozen=True)
class FunctionTests:
    """HumanEval-format tests: ``test`` defines ``check(candidate)``, called on ``entry_point``."""

    test: str
    entry_point: str


@dataclass(frozen=True)
class IOTests:
    """stdin -> expected stdout pairs."""

    pairs: tuple[tuple[str, str], ...]


Tests = Union[FunctionTests, IOTests]  # noqa: UP007 - a runtime alias that Python 3.10 can evaluate


@dataclass(frozen=True)
class CodeVerdict:
    """The outcome for one program: ``status`` is one of :data:`VERDICT_STATUSES` ("correct" only if every
    test passed), ``passed``/``total`` count tests, ``detail`` says what went wrong first (short)."""

    status: str
    passed: int
    total: int
    detail: str = ""

    @property
    def correct(self) -> bool:
        return self.status == "correct"


def as_tests(spec: Any) -> Tests:
    """Tests from a :class:`FunctionTests`/:class:`IOTests`, a HumanEval row (``test`` + ``entry_point``),
    an ``inputs``/``outputs`` dict (APPS/CodeContests style; also under ``input_output`` as JSON text), or a
    list of ``(input, output)`` pairs or ``{"input", "output"}`` dicts."""
    if isinstance(spec, (FunctionTests, IOTests)):
        return spec
    if isinstance(spec, dict):
        if "test" in spec and "entry_point" in spec:
            return FunctionTests(spec["test"], spec["entry_point"])
        if "input_output" in spec:
            io = spec["input_output"]
            return as_tests(json.loads(io) if isinstance(io, str) else io)
        if "inputs" in spec and "outputs" in spec:
            return IOTests(tuple((str(i), str(o)) for i, o in zip(spec["inputs"], spec["outputs"], strict=True)))
    if isinstance(spec, (list, tuple)):
        pairs = [(p["input"], p["output"]) if isinstance(p, dict) else (p[0], p[1]) for p in spec]
        return IOTests(tuple((str(i), str(o)) for i, o in pairs))
    raise TypeError(f"cannot read tests from {type(spec).__name__}: {str(spec)[:80]!r}")


def humaneval_program(program: str, test: str, entry_point: str, marker: str | None = None) -> str:
    """HumanEval's check program; with ``marker``, a last line prints it once ``check`` has returned."""
    source = program + "\n" + test + f"\ncheck({entry_point})"
    if marker is not None:
        source += f"\nimport sys as _sys\n_sys.stdout.flush()\n_sys.stdout.write({marker!r} + '\\n')\n"
    return source


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _DETAIL_CHARS else "..." + text[-_DETAIL_CHARS:]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _failure(result: ExecResult, limits: Limits) -> tuple[str, str]:
    """(verdict status, detail) for a run that did not finish cleanly."""
    if result.status == "timeout":
        return "timeout", f"timeout (wall {limits.wall_s:g} s / CPU {limits.cpu_s:g} s)"
    if result.status == "memory":
        return "memory", f"memory limit ({limits.memory_bytes} bytes)"
    if result.status == "output_limit":
        return "output_limit", f"output limit ({limits.output_bytes} bytes)"
    if result.status == "killed":
        return "killed", f"killed by signal {-(result.returncode or 0)}"
    return "error", f"exit {result.returncode}: {_short(_last_line(result.stderr))}"


def _run_function_tests(program: str, tests: FunctionTests, limits: Limits) -> CodeVerdict:
    marker = "__distill_checked_" + secrets.token_hex(16)
    result = run_program(humaneval_program(program, tests.test, tests.entry_point, marker), limits=limits)
    if result.status == "ok":
        if result.stdout.rstrip().endswith(marker):
            return CodeVerdict("correct", 1, 1)
        return CodeVerdict("error", 0, 1, "exited before check() returned (sys.exit/os._exit?)")
    if result.status == "error" and _last_line(result.stderr).startswith("AssertionError"):
        return CodeVerdict("wrong_answer", 0, 1, "wrong answer: " + _short(_last_line(result.stderr)))
    status, detail = _failure(result, limits)
    return CodeVerdict(status, 0, 1, detail)


def outputs_match(actual: str, expected: str) -> bool:
    """Token-wise equality: the same whitespace-separated tokens in the same order."""
    return actual.split() == expected.split()


def _run_io_tests(program: str, tests: IOTests, limits: Limits, fail_fast: bool) -> CodeVerdict:
    total, passed, first = len(tests.pairs), 0, None
    for index, (stdin, expected) in enumerate(tests.pairs):
        result = run_program(program, stdin=stdin, limits=limits)
        if result.status == "ok" and outputs_match(result.stdout, expected):
            passed += 1
            continue
        if result.status == "ok":
            failure = ("wrong_answer", f"wrong answer on test {index}: expected {_short(expected)!r}, "
                                       f"got {_short(result.stdout)!r}")
        else:
            status, detail = _failure(result, limits)
            failure = (status, f"test {index}: {detail}")
        first = first or failure
        if fail_fast or result.status == "timeout":  # a timeout stops the rest: each would cost wall_s again
            break
    if first is None:
        return CodeVerdict("correct", passed, total)
    return CodeVerdict(first[0], passed, total, first[1])


def run_tests(program: str | None, tests: Any, limits: Limits | None = None, *,
              fail_fast: bool = False) -> CodeVerdict:
    """Run ``program`` (Python source; None means no code was found) against ``tests`` in the sandbox.

    Function tests are one run; I/O tests one run per pair, stopping at the first failure when ``fail_fast``
    and always after a timeout. Each run is bounded by ``limits``. Raises
    :class:`~distill.verify.sandbox.SandboxError` only when the sandbox cannot be set up.
    """
    limits = limits or Limits()
    spec = as_tests(tests)
    total = 1 if isinstance(spec, FunctionTests) else len(spec.pairs)
    if program is None or not program.strip():
        return CodeVerdict("no_code", 0, total, "no code block found")
    if isinstance(spec, FunctionTests):
        return _run_function_tests(program, spec, limits)
    return _run_io_tests(program, spec, limits, fail_fast)


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def verify_code_batch(programs: Sequence[str | None], tests_list: Sequence[Any], limits: Limits | None = None,
                      workers: int | None = None, progress: bool = False, *,
                      fail_fast: bool = False) -> list[CodeVerdict]:
    """:func:`run_tests` for every (program, tests) pair, ``workers`` at a time (default: usable CPUs).

    Verdicts come back in input order. Each item has its own sandboxed runs with the same per-run limits as
    :func:`run_tests`; an item whose sandbox fails to start gets status ``sandbox_error`` instead of stopping
    the batch.
    """
    if len(programs) != len(tests_list):
        raise ValueError(f"{len(programs)} programs but {len(tests_list)} test sets")
    limits = limits or Limits()
    specs = [as_tests(tests) for tests in tests_list]  # malformed tests fail here, before anything runs

    def one(item: tuple[str | None, Any]) -> CodeVerdict:
        program, tests = item
        try:
            return run_tests(program, tests, limits, fail_fast=fail_fast)
        except (SandboxError, OSError) as exc:
            return CodeVerdict("sandbox_error", 0, 0, f"{type(exc).__name__}: {_short(str(exc))}")

    items = list(zip(programs, specs))
    with ThreadPoolExecutor(max_workers=workers or _default_workers()) as pool:
        results = pool.map(one, items)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(items), desc="code", unit="prog")
        return list(results)


# Columns a row's code tests may come in (the first found wins): ``tests`` (a HumanEval row, an
# ``{inputs, outputs}`` dict, a list of pairs, or any of these as JSON text), ``test`` + ``entry_point``
# (HumanEval's own columns), ``input_output`` (APPS, JSON text), ``inputs`` + ``outputs``.
CODE_TEST_COLUMNS = ("tests", "test", "entry_point", "input_output", "inputs", "outputs")


def code_tests_of_row(kwargs: dict[str, Any], i: int, tests_column: str | None = None) -> Any:
    """Row ``i``'s tests from a batch of dataset columns (``{column: [value per row]}``, as TRL hands a
    reward), or None when the row has none; a ``tests`` value may be JSON text."""

    def col(name: str) -> Any:
        values = kwargs.get(name)
        return None if values is None else values[i]

    names = [tests_column] if tests_column else ["tests"]
    for name in names:
        value = col(name)
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else None
        if value:
            return value
    if tests_column:
        return None
    if col("test") and col("entry_point"):
        return {"test": col("test"), "entry_point": col("entry_point")}
    if col("input_output"):
        return {"input_output": col("input_output")}
    if col("inputs") is not None and col("outputs") is not None:
        return {"inputs": col("inputs"), "outputs": col("outputs")}
    return None
