"""Problems -> the rows GRPO trains on, and the held-out rows it is watched with.

A row is ``{"prompt", "answer", "id", "problem"}``, plus ``tests`` (JSON text, None for a row without) when
any problem is a code problem. TRL hands every column but ``prompt`` to each reward function as a keyword
argument (one value per completion), so the gold ``answer`` reaches the accuracy reward and a code problem's
``tests`` the ``code`` reward. The prompt is a plain string for the R1-Zero template (completions come back as strings) or a chat
list for the chat prompt (TRL applies the tokenizer's chat template; completions come back as chat lists).

>>> row = to_rows([Problem("p1", "What is 2 + 3?", "5", "demo")], template="r1-zero")[0]
>>> row["prompt"].endswith("User: What is 2 + 3?. Assistant:"), row["answer"]
(True, '5')
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from distill.data.problems import Problem, load_problems
from distill.data.prompts import R1_ZERO_TEMPLATE, chat_messages, r1_zero_prompt
from distill.errors import DataError

log = logging.getLogger(__name__)

Prompt = str | list[dict[str, str]]


def prompt_for(problem: str, *, template: str, system: str | None = None, code: bool = False) -> Prompt:
    """The R1-Zero text prompt, or the chat prompt as a list of messages (the code suffix for a code problem)."""
    if template == "r1-zero":
        return r1_zero_prompt(problem)
    if template == "chat":
        return chat_messages(problem, system=system, code=code)
    raise ValueError(f"unknown template {template!r}; valid: r1-zero, chat")


def to_rows(problems: Sequence[Problem], *, template: str, system: str | None = None) -> list[dict[str, Any]]:
    rows = [{"prompt": prompt_for(p.problem, template=template, system=system, code=p.tests is not None),
             "answer": p.answer, "id": p.id, "problem": p.problem} for p in problems]
    if any(p.tests is not None for p in problems):   # JSON text: one column type, whatever the tests' layout
        for row, p in zip(rows, problems, strict=True):
            row["tests"] = None if p.tests is None else json.dumps(p.tests)
    return rows


def prompt_ids(tokenizer: Any, prompt: Prompt) -> list[int]:
    """The token ids TRL will feed the model for this prompt (same tokenization as GRPOTrainer)."""
    if isinstance(prompt, str):
        return list(tokenizer(prompt)["input_ids"])
    out = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(out["input_ids"])


@dataclass
class Prepared:
    """Training and held-out rows, and what was left out on the way (for run.json and the summary)."""

    train: list[dict[str, Any]]
    heldout: list[dict[str, Any]]
    dropped: dict[str, list[str]] = field(default_factory=dict)   # reason -> problem ids

    def counts(self) -> dict[str, int]:
        return {"train_problems": len(self.train), "heldout_problems": len(self.heldout),
                **{f"dropped_{reason}": len(ids) for reason, ids in self.dropped.items()}}


def prepare(cfg: Any, tokenizer: Any) -> Prepared:
    """Load ``cfg.dataset`` (and ``cfg.eval_dataset``), split off the held-out set, build prompt rows.

    Problems without a gold answer and prompts over ``cfg.max_prompt_tokens`` are dropped with a warning
    that says how many; an empty result is a DataError naming the file and the fix.
    """
    columns = dict(problem_column=cfg.problem_column, answer_column=cfg.answer_column, id_column=cfg.id_column,
                   trust_remote_code=cfg.trust_remote_code, tests_column=cfg.tests_column or None)
    problems = load_problems(cfg.dataset, split=cfg.dataset_split, subset=cfg.dataset_subset, **columns)
    dropped: dict[str, list[str]] = {}
    problems = _with_answers(problems, cfg.dataset, dropped, "no_answer")
    if cfg.eval_dataset:
        heldout = load_problems(cfg.eval_dataset, split=cfg.eval_split, **columns)
        heldout = _with_answers(heldout, cfg.eval_dataset, dropped, "heldout_no_answer")[: cfg.eval_problems]
        seen = {" ".join(p.problem.split()) for p in heldout}
        overlap = [p.id for p in problems if " ".join(p.problem.split()) in seen]
        if overlap:
            log.warning("%d training problems also appear in the held-out set: left out of training", len(overlap))
            dropped["in_heldout"] = overlap
            left_out = set(overlap)
            problems = [p for p in problems if p.id not in left_out]
    else:
        order = list(problems)
        random.Random(cfg.seed).shuffle(order)
        n_eval = min(cfg.eval_problems, len(order) // 2)
        heldout, held_ids = order[:n_eval], {p.id for p in order[:n_eval]}
        problems = [p for p in problems if p.id not in held_ids]
    if cfg.limit is not None:
        problems = problems[: cfg.limit]

    train = to_rows(problems, template=cfg.template, system=cfg.system)
    train, long_ids = drop_long_prompts(train, tokenizer, cfg.max_prompt_tokens)
    if long_ids:
        log.warning("%d of %d problems have prompts over max_prompt_tokens=%d tokens: left out (raise "
                    "max_prompt_tokens to keep them)", len(long_ids), len(long_ids) + len(train), cfg.max_prompt_tokens)
        dropped["long_prompt"] = long_ids
    if not train:
        raise DataError(f"{cfg.dataset}: no training problems left (with a gold answer in column "
                        f"{cfg.answer_column!r} and a prompt under max_prompt_tokens={cfg.max_prompt_tokens})")
    rows_heldout = to_rows(heldout, template=cfg.template, system=cfg.system)
    return Prepared(train=train, heldout=rows_heldout, dropped=dropped)


def _with_answers(problems: list[Problem], source: str, dropped: dict[str, list[str]], reason: str) -> list[Problem]:
    missing = [p.id for p in problems if p.tests is None and (p.answer is None or not str(p.answer).strip())]
    if missing:
        if len(missing) == len(problems):
            raise DataError(f"{source}: no problem has a gold answer or code tests; GRPO's rewards need one. Pass "
                            "--answer-column (or --tests-column) with the column that holds it")
        log.warning("%s: %d of %d problems have no gold answer: left out (first: %s)", source, len(missing),
                    len(problems), ", ".join(missing[:3]))
        dropped[reason] = missing
    left_out = set(missing)
    return [p for p in problems if p.id not in left_out]


def drop_long_prompts(rows: list[dict[str, Any]], tokenizer: Any,
                      max_tokens: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows whose prompt fits in ``max_tokens`` tokens, and the ids of those that do not."""
    kept: list[dict[str, Any]] = []
    long_ids: list[str] = []
    for row in rows:
        if len(prompt_ids(tokenizer, row["prompt"])) <= max_tokens:
            kept.append(row)
        else:
            long_ids.append(row["id"])
    return kept, long_ids


def r1_zero_chat_template() -> str:
    """A chat template that renders a user turn as the R1-Zero prompt, token for token.

    With it, a model trained on R1-Zero prompts can be driven through chat APIs (``distill generate``,
    vLLM's chat endpoint) and still see its training format. A system turn, if any, is ignored: the
    template's preamble plays that role.
    """
    preamble, rest = R1_ZERO_TEMPLATE.split("User: {problem}", 1)
    assert rest == ". Assistant:", rest
    return (
        "{{- '" + _jinja_str(preamble) + "' }}"
        "{%- for message in messages %}"
        "{%- if message['role'] == 'user' %}{{- 'User: ' + message['content'] | trim + '. Assistant:' }}"
        "{%- elif message['role'] == 'assistant' %}{{- ' ' }}{% generation %}{{- message['content'] + eos_token }}"
        "{% endgeneration %}{{- ' ' }}"
        "{%- endif %}"
        "{%- endfor %}"
    )


def _jinja_str(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
