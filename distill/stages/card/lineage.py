"""Follow ``run.json`` files upstream and find eval results: the facts a model card is built from.

Every stage records its inputs in ``run.json`` (``inputs: {name: {path, ...}}``). Starting from a folder (the
student's ``distill sft`` run, or the model an eval ran on), :func:`trace_lineage` follows each input whose
folder holds a ``run.json`` of its own: sft -> its dataset (``distill filter``) -> its traces
(``distill generate``) -> ... It does not need to know the key names, so new stages join the chain freely.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import DataError
from distill.runinfo import RUN_FILE, read_run


@dataclass
class RunNode:
    """One stage run and the upstream runs it read."""

    folder: Path
    record: dict[str, Any]
    upstream: dict[str, RunNode] = field(default_factory=dict)   # input name -> run
    unresolved: dict[str, str] = field(default_factory=dict)     # input name -> path without a run.json

    @property
    def stage(self) -> str:
        return str(self.record.get("stage", "?"))

    def flatten(self) -> list[tuple[str, RunNode]]:
        """``(how it was reached, node)`` depth first, this node first (reached as "start")."""
        out: list[tuple[str, RunNode]] = [("start", self)]
        stack = [(name, node) for name, node in reversed(list(self.upstream.items()))]
        seen = {self.folder}
        while stack:
            name, node = stack.pop()
            if node.folder in seen:
                continue
            seen.add(node.folder)
            out.append((name, node))
            stack.extend((f"{node.stage}.{k}", v) for k, v in reversed(list(node.upstream.items())))
        return out


def _input_path(value: Any) -> str | None:
    if isinstance(value, dict):
        path = value.get("path")
        return str(path) if path else None
    if isinstance(value, str):
        return value
    return None


def run_folders(path: Path) -> list[Path]:
    """The run folders a stage input stands for: the folder itself when it holds a run.json, or else, for the
    output of a sharded ``distill generate`` (``--num-shards N``: each job records its run in
    ``runs/shard-XXXXX-of-N/``), every shard's run folder."""
    if (path / RUN_FILE).is_file():
        return [path]
    runs = path / "runs"
    return sorted(r.parent for r in runs.glob(f"*/{RUN_FILE}")) if runs.is_dir() else []


def trace_lineage(folder: str | Path, *, _seen: frozenset[Path] = frozenset()) -> RunNode | None:
    """The run in ``folder`` and, recursively, the runs of its inputs; None if ``folder`` has no run.json."""
    folder = Path(folder)
    record = read_run(folder)
    if record is None:
        return None
    node = RunNode(folder, record)
    key = folder.resolve()
    for name, value in (record.get("inputs") or {}).items():
        path = _input_path(value)
        if path is None:
            continue
        p = Path(path)
        candidates = [p] if p.is_absolute() else [p, folder / p, folder.parent / p]
        runs = next((r for r in (run_folders(c) for c in candidates) if r), [])
        if not runs:
            node.unresolved[name] = path
            continue
        for run in runs:
            if run.resolve() in _seen | {key}:
                continue
            child = trace_lineage(run, _seen=_seen | {key})
            if child is not None:
                node.upstream[name if len(runs) == 1 else f"{name}[{run.name}]"] = child
    return node


@dataclass
class EvalRun:
    """One ``distill eval`` output folder: its results.json and run.json."""

    folder: Path
    results: dict[str, Any]
    record: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.results.get("task", "?"))

    @property
    def started(self) -> str:
        return str(self.record.get("started", ""))


def load_eval(folder: str | Path) -> EvalRun | None:
    folder = Path(folder)
    path = folder / "results.json"
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc}); rerun 'distill eval' there or leave that folder out") from None
    value = results.get("pass@1") if isinstance(results, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{path}: not a 'distill eval' result (no numeric pass@1); rerun 'distill eval' there or "
                        "leave that folder out")
    return EvalRun(folder, results, read_run(folder) or {})


def find_evals(dirs: Sequence[str | Path]) -> list[EvalRun]:
    """Eval runs in ``dirs``: each a results folder, or a folder of them (``out/eval/<model>/``)."""
    runs: list[EvalRun] = []
    seen: set[Path] = set()
    for d in dirs:
        d = Path(d)
        for folder in [d, *sorted(p.parent for p in d.glob("*/results.json"))]:
            run = load_eval(folder)
            if run is not None and folder.resolve() not in seen:
                seen.add(folder.resolve())
                runs.append(run)
    return runs
