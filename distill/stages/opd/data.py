"""Problems -> the conversations ``distill opd`` trains on, and the gold answers its samples are scored against.

A training row is ``{"messages": [user]}`` (the paper's chat prompt: the problem + "Please reason step by step
...") or, when ``lmbda < 1``, ``{"messages": [user, assistant]}`` with a teacher trace from ``offpolicy_dataset``
as the assistant turn: TRL's trainer samples a fresh completion from the student for an on-policy slice and trains
on the stored trace for an off-policy one (its collator splits the last assistant turn off as the completion).

Gold answers are keyed by the prompt as the trainer sees it (:func:`prompt_key`): TRL hands back each on-policy
slice's prompts as decoded text, and the same token ids decode to the same text, so the key finds the problem.

>>> from distill.data.problems import Problem
>>> rows = to_rows([Problem("p1", "What is 2 + 3?", "5", "demo")], traces={})
>>> rows[0]["messages"][0]["content"].startswith("What is 2 + 3?"), len(rows[0]["messages"])
(True, 1)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.data.problems import Problem, load_problems
from distill.data.prompts import chat_messages
from distill.data.sft_rows import message_problem
from distill.errors import DataError

log = logging.getLogger(__name__)


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The prompt's token ids exactly as TRL's IW-OPD collator makes them (chat template, no extra specials)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_key(text: str) -> str:
    """A decoded prompt with its whitespace removed (TRL decodes with or without clean-up depending on the engine).

    >>> prompt_key("<|user|>What is 1 + 2?\\n") == prompt_key("<|user|>What is 1 +2?")
    True
    """
    return "".join(text.split())


def to_rows(problems: Sequence[Problem], *, traces: dict[str, str]) -> list[dict[str, Any]]:
    """One conversation per problem: the prompt, plus its off-policy trace when ``traces`` has one."""
    rows = []
    for p in problems:
        messages = chat_messages(p.problem, code=p.tests is not None)
        if p.id in traces:
            messages = [*messages, {"role": "assistant", "content": traces[p.id]}]
        rows.append({"messages": messages})
    return rows


@dataclass
class Prepared:
    """The training rows, the gold answer of each prompt, and what was left out (for run.json)."""

    rows: list[dict[str, Any]]
    golds: dict[str, str]
    problems_digest: str
    offpolicy_rows: int = 0
    dropped: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        return {"train_problems": len(self.rows), "problems_with_gold": len(self.golds),
                "offpolicy_traces": self.offpolicy_rows,
                **{f"dropped_{reason}": len(ids) for reason, ids in self.dropped.items()}}


def prepare(cfg: Any, tokenizer: Any) -> Prepared:
    """Load the problems (and the off-policy traces), drop prompts over ``max_prompt_tokens``, key the golds."""
    problems = load_problems(cfg.dataset, split=cfg.dataset_split, subset=cfg.dataset_subset,
                             problem_column=cfg.problem_column, answer_column=cfg.answer_column or None,
                             id_column=cfg.id_column, limit=cfg.limit, trust_remote_code=cfg.trust_remote_code)
    dropped: dict[str, list[str]] = {}
    traces: dict[str, str] = {}
    if cfg.lmbda < 1.0:
        traces = read_traces(cfg.offpolicy_dataset)
        missing = [p.id for p in problems if p.id not in traces]
        if len(missing) == len(problems):
            raise DataError(f"{cfg.offpolicy_dataset}: no trace has the id of a problem in {cfg.dataset} (its 'id' "
                            "column must hold the problem ids, as 'distill filter' writes them): nothing to train "
                            "off-policy on")
        if missing:
            log.warning("%d of %d problems have no off-policy trace: left out (lmbda < 1 needs one per problem)",
                        len(missing), len(problems))
            dropped["no_offpolicy_trace"] = missing
            problems = [p for p in problems if p.id in traces]
    elif cfg.offpolicy_dataset:
        log.warning("lmbda is 1.0: every batch is sampled from the student, so offpolicy_dataset is not read")
    rows, golds, kept = [], {}, []
    for p, row in zip(problems, to_rows(problems, traces=traces), strict=True):
        ids = prompt_ids(tokenizer, row["messages"][:1])
        if len(ids) > cfg.max_prompt_tokens:
            dropped.setdefault("long_prompt", []).append(p.id)
            continue
        rows.append(row)
        kept.append(p)
        if p.answer is not None and str(p.answer).strip():
            golds[prompt_key(tokenizer.decode(ids, skip_special_tokens=False))] = str(p.answer)
    if dropped.get("long_prompt"):
        log.warning("%d problems have prompts over max_prompt_tokens=%d: left out (raise it to keep them)",
                    len(dropped["long_prompt"]), cfg.max_prompt_tokens)
    if not rows:
        raise DataError(f"{cfg.dataset}: no problems left to train on (prompts over max_prompt_tokens="
                        f"{cfg.max_prompt_tokens}, or without an off-policy trace)")
    digest = hashlib.sha256(json.dumps([[p.id, p.problem, p.answer] for p in kept]).encode()).hexdigest()[:16]
    return Prepared(rows, golds, digest, offpolicy_rows=sum(len(r["messages"]) > 1 for r in rows), dropped=dropped)


def read_traces(source: str | None) -> dict[str, str]:
    """``{problem id: assistant turn}`` of an SFT dataset (the first trace of each problem id)."""
    if not source:
        raise DataError("lmbda < 1 needs offpolicy_dataset: the teacher traces to train off-policy on")
    rows = _read_rows(Path(source))
    if rows and "id" not in rows[0]:
        raise DataError(f"{source}: no 'id' column; off-policy traces are matched to problems by id (the columns "
                        f"are {', '.join(rows[0])})")
    traces: dict[str, str] = {}
    for i, row in enumerate(rows):
        why = message_problem(row.get("messages"))
        if why is not None:
            raise DataError(f"{source}: row {i} (id {row.get('id')!r}): {why}")
        traces.setdefault(str(row["id"]), row["messages"][-1]["content"])
    if not traces:
        raise DataError(f"{source}: no rows")
    return traces


def _read_rows(path: Path) -> list[dict[str, Any]]:
    import datasets

    from distill.data.sft_rows import read_sft_folder

    if not path.exists():
        raise DataError(f"offpolicy_dataset not found: {path}")
    if path.is_dir():
        return read_sft_folder(path)[0].to_list()
    if path.suffix == ".parquet":
        return datasets.Dataset.from_parquet(str(path)).to_list()
    if path.suffix in (".jsonl", ".json"):
        from distill.data.jsonl import read_jsonl

        return read_jsonl(path)
    raise DataError(f"{path}: offpolicy_dataset must be a 'distill filter' folder, a .jsonl or a .parquet file")
