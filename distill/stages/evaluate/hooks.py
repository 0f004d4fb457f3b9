"""What the lm-eval task files in ``eval/`` call: dataset loading, the prompt, the filter and the metrics.

``eval/distill_tasks.py`` re-exports these functions so the YAMLs can name them with ``!function``; the
logic lives here, inside the package, where it is imported and tested like any other module.

- :func:`load_dataset` (``custom_dataset``): problems from the hub (the task's default) or a local file,
  through :func:`distill.data.problems.load_problems`, as canonical docs ``{id, problem, answer}`` plus the
  verification settings of the run (``verify_*`` fields), so the per-document metrics agree with the
  re-scoring that writes ``results.json``.
- :func:`doc_to_text`: the paper's user turn, the problem + "Please reason step by step, and put your final
  answer within \\boxed{}."; lm-eval applies the model's chat template (no system prompt).
- :func:`keep_all_samples` (a ``custom`` filter): keeps all n responses of a document, so
  :func:`process_results` sees every sample (lm-eval's default ``take_first`` would keep one).
- :func:`process_results`: pass@1, cons@n and pass@k of one problem via :mod:`distill.stages.evaluate.scoring`.

Code sets (``verify_mode: code`` in the task's ``dataset_kwargs``: ``eval/humaneval.yaml``,
``eval/custom_code.yaml``): :func:`load_code_dataset` gives docs ``{id, problem, prompt, tests, answer: ""}``
(tests as JSON text), and :func:`process_results` runs each sample's program against them in the sandbox
(pass@1 and pass@k, no cons@n).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from distill.data.prompts import user_content
from distill.errors import DataError
from distill.stages.evaluate.scoring import problem_metrics
from distill.stages.evaluate.tasks import get_task
from distill.verify import VerifySettings

log = logging.getLogger(__name__)


def load_docs(task: str, data_file: str | None = None, *, verify_mode: str | None = None, think: str = "auto",
              prompt_has_think: bool = False, fallback: bool = False, verify_timeout: float = 5.0,
              verify_workers: int | None = None, trust_remote_code: bool = False,
              skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """The task's problems as lm-eval docs; every gold answer is checked before any sampling starts.

    A problem without a gold answer is left out (it cannot be scored) and reported; its id goes to ``skipped``."""
    from distill.data.problems import load_problems
    from distill.verify.equivalence import check_gold

    spec = get_task(task)
    if data_file is None and spec.hub_id is None:
        raise DataError(f"task {task!r} has no default data set: pass --data-file FILE (jsonl/json/parquet/csv "
                        "with 'problem' and 'answer' columns)")
    source = data_file or spec.hub_id
    assert source is not None
    try:
        problems = load_problems(source, split=None if data_file else spec.hub_split,
                                 id_column=None if data_file else spec.id_column,
                                 trust_remote_code=trust_remote_code)
    except DataError as exc:
        if data_file:
            raise
        raise DataError(f"{exc} (task {task!r} reads {source} from the hub by default; pass --data-file FILE "
                        "for a local copy)") from None
    mode = verify_mode or spec.mode
    docs = []
    missing: list[str] = []
    for p in problems:
        if p.answer is None or not str(p.answer).strip():
            missing.append(p.id)
            continue
        try:
            check_gold(p.answer, mode)
        except ValueError as exc:
            raise DataError(f"{source}: problem {p.id!r}: {exc} (or pass --verify-mode math)") from None
        docs.append({"id": p.id, "problem": p.problem, "answer": p.answer, "verify_mode": mode,
                     "verify_think": think, "verify_prompt_has_think": bool(prompt_has_think),
                     "verify_fallback": bool(fallback), "verify_timeout": float(verify_timeout),
                     "verify_workers": -1 if verify_workers is None else int(verify_workers)})
    if missing:
        if not docs:
            raise DataError(f"{source}: no gold answer in any of its {len(missing)} problems; an eval needs golds")
        log.warning("%s: %d problem(s) without a gold answer left out of the eval: %s", source, len(missing),
                    ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
        if skipped is not None:
            skipped.extend(missing)
    return docs


def load_dataset(task: str = "aime24", data_file: str | None = None, verify_mode: str | None = None,
                 think: str = "auto", prompt_has_think: bool = False, fallback: bool = False,
                 verify_timeout: float = 5.0, verify_workers: int | None = None, trust_remote_code: bool = False,
                 **_metadata: Any) -> Any:
    """lm-eval ``custom_dataset``: called with the task's ``dataset_kwargs`` and ``metadata`` as keywords."""
    import datasets

    if verify_mode == "code":
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(
            load_code_dataset(task, data_file, prompt_has_think=prompt_has_think, verify_workers=verify_workers))})
    docs = load_docs(task, data_file, verify_mode=verify_mode, think=think, prompt_has_think=prompt_has_think,
                     fallback=fallback, verify_timeout=verify_timeout, verify_workers=verify_workers,
                     trust_remote_code=trust_remote_code)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def doc_to_text(doc: dict[str, Any]) -> str:
    return user_content(doc["problem"], code=doc.get("verify_mode") == "code")


def keep_all_samples(resps: Iterable[list[str]], docs: list[dict[str, Any]]) -> list[list[str]]:
    return [list(r) for r in resps]


def settings_from_doc(doc: dict[str, Any]) -> VerifySettings:
    """The run's verification settings, from the ``verify_*`` fields :func:`load_docs` wrote into each doc."""
    return VerifySettings(mode=doc.get("verify_mode") or get_task("custom").mode,
                          think=doc.get("verify_think") or "auto",
                          fallback=bool(doc.get("verify_fallback")),
                          timeout=float(doc.get("verify_timeout") or 5.0),
                          workers=None if doc.get("verify_workers", -1) in (-1, None) else int(doc["verify_workers"]))


def code_data_file(task: str, data_file: str | None) -> str:
    """The code problems of a task: ``data_file``, else HumanEval's bundled file (``--task humaneval``)."""
    from distill.stages.evaluate.tasks import humaneval_data_file

    if data_file:
        return data_file
    if task == "humaneval":
        return str(humaneval_data_file())
    raise DataError(f"task {task!r} has no default data set: pass --data-file FILE (rows with an id and tests)")


def load_code_dataset(task: str, data_file: str | None, *, prompt_has_think: bool = False,
                      verify_workers: int | None = None) -> list[dict[str, Any]]:
    """Code problems as lm-eval docs: ``{id, problem, prompt, tests (JSON text), answer: ""}`` + run settings."""
    import json

    from distill.stages.evaluate.completions import load_code_docs

    return [{"id": d["id"], "problem": d["problem"], "prompt": d["prompt"], "tests": json.dumps(d["tests"]),
             "answer": "", "verify_mode": "code", "verify_prompt_has_think": bool(prompt_has_think),
             "verify_workers": -1 if verify_workers is None else int(verify_workers)}
            for d in load_code_docs(code_data_file(task, data_file))]


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, float]:
    """lm-eval passes one entry per request; with ``keep_all_samples`` the entry is the list of n samples."""
    completions = results[0] if len(results) == 1 and isinstance(results[0], (list, tuple)) else results
    if doc.get("verify_mode") == "code":
        return code_problem_metrics(doc, [c if isinstance(c, str) else "" for c in completions])
    return problem_metrics(list(completions), str(doc["answer"]), settings_from_doc(doc),
                           prompt_has_think=bool(doc.get("verify_prompt_has_think")))


def code_problem_metrics(doc: dict[str, Any], completions: list[str]) -> dict[str, float]:
    """pass@1 and pass@k of one code problem: each program run against the doc's tests in the sandbox."""
    import json

    from distill.stages.evaluate.completions import CodeProblem
    from distill.stages.evaluate.scoring import score_code_problems, verify_code_problems

    problem = CodeProblem(str(doc["id"]), json.loads(doc["tests"]), str(doc.get("prompt") or ""), completions)
    workers = doc.get("verify_workers", -1)
    verdicts = verify_code_problems([problem], workers=None if workers in (-1, None, 0) else int(workers),
                                    prompt_has_think=bool(doc.get("verify_prompt_has_think")))
    scored = score_code_problems([problem], verdicts, n=len(completions))
    return {k: float(v) for k, v in scored.results.items()
            if k.startswith("pass@") and not isinstance(v, list) and "_" not in k}
