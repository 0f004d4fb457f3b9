"""One trace row made ready for filtering: the completion split once into reasoning and answer.

A row of a traces folder (``distill.data.traces.TRACE_FIELDS``) becomes a :class:`Trace`. The split follows
the truth layer (:func:`distill.verify.split_reasoning`): reasoning is what precedes the first ``</think>`` (or
Sky-T1's, s1's or a custom closing delimiter; "auto" recognises each row's format and records it); a
prompt ending in ``<think>`` (the row's ``prompt_has_think``, worked out from its prompt for older shards:
:func:`distill.data.traces.trace_prompt_has_think`) means the completion opens inside the reasoning. When
the completion holds no ``</think>`` but the generator stored its own split (``reasoning`` / ``answer_text``,
e.g. from vLLM's reasoning parser), that split is used.

>>> t = prepare({"id": "p1", "sample": 0, "problem": "1+1?", "completion": "<think>1+1=2</think> $\\\\boxed{2}$",
...              "finish_reason": "stop", "gold": "2"}, index=0, folder="traces")
>>> t.reasoning, t.answer, t.closed
('1+1=2', '$\\\\boxed{2}$', True)
>>> t.assistant_text.splitlines()[0]
'<think>'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill.chat_template import THINK_CLOSE, assistant_content
from distill.data.prompts import user_content
from distill.data.traces import trace_prompt_has_think
from distill.errors import DataError
from distill.verify import split_reasoning


@dataclass
class Trace:
    index: int                 # position in the input (folders in the order given, shards sorted, lines in order)
    id: str                    # problem id
    sample: int
    folder: str                # the traces folder it came from
    problem: str | None        # the problem text (decontamination; the 'chat' user turn)
    user: str | None           # the user turn of the training example
    completion: str
    reasoning: str | None      # None when the reasoning never closed with </think>
    answer: str                # the text after </think>
    finish_reason: str | None
    gold: str | None
    verdict: str | None        # the truth layer's status, from the trace or re-verified
    prompt_has_think: bool
    teacher: str | None
    source: str | None
    completion_tokens: int | None
    num_tokens: int | None = None   # tokens of the assistant turn (student tokenizer) or completion_tokens
    reasoning_format: str | None = None   # the delimiters found (think, sky-t1, s1, custom, reasoning_content)
    gold_source: str = "given"            # "majority": labelled by the teacher's majority answer (--gold majority)
    tests: Any = None                     # code problems: the tests the answer's program must pass (see code_tests)
    verdict_source: str = "rules"         # "judge": the generative judge settled the verdict (--judge-base-url)
    judge: dict[str, Any] | None = None   # what the judge was asked about and replied (judging.judge_traces)

    @property
    def closed(self) -> bool:
        """Whether the reasoning closed with ``</think>``."""
        return self.reasoning is not None

    @property
    def assistant_text(self) -> str:
        """The assistant turn as trained: ``<think>\\n...\\n</think>\\n\\n`` + answer (the raw completion if unclosed)."""
        if self.reasoning is None:
            return self.completion
        return assistant_content(self.reasoning, self.answer)

    @property
    def readable_text(self) -> str:
        """What the readability checks read: the reasoning and the answer (the raw completion if unclosed)."""
        if self.reasoning is None:
            return self.completion
        return f"{self.reasoning}\n\n{self.answer}"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def _verdict(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("status")
    return _text(value)


def _prompt_user(prompt: Any) -> str | None:
    """The user content of a prompt: the last user message of a chat prompt, or a text prompt as it is."""
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return _text(users[-1]) if users else None
    return _text(prompt)


def code_tests(row: dict[str, Any]) -> Any:
    """A code problem's tests from a trace row, or None: the optional ``tests`` field (anything
    :func:`distill.verify.code_tests.as_tests` reads, or that as JSON text), else HumanEval's ``test`` +
    ``entry_point`` or ``inputs`` + ``outputs``. A trace with tests is judged by running its program."""
    import json

    tests = row.get("tests")
    if isinstance(tests, str):
        try:
            tests = json.loads(tests) if tests.strip() else None
        except ValueError:
            raise DataError(f"trace {row.get('id')!r}: 'tests' is not valid JSON") from None
    if tests:
        return tests
    if row.get("test") and row.get("entry_point"):
        return {"test": row["test"], "entry_point": row["entry_point"]}
    if isinstance(row.get("inputs"), list) and isinstance(row.get("outputs"), list):
        return {"inputs": row["inputs"], "outputs": row["outputs"]}
    return None


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def prepare(row: dict[str, Any], *, index: int, folder: str, user_turn: str = "chat",
            reasoning_format: str = "auto", delimiters: tuple[str, str] | None = None) -> Trace:
    """Turn a trace row into a :class:`Trace` (``user_turn``: "chat" or "prompt", see ``FilterConfig``).

    ``reasoning_format`` (auto, think, sky-t1, s1, custom with ``delimiters``) says how the completion marks
    its reasoning (:func:`distill.verify.split_reasoning`); the format found is recorded on the trace."""
    completion = row.get("completion") or ""
    prompt = row.get("prompt")
    prompt_has_think = trace_prompt_has_think(row)
    parts = split_reasoning(completion, reasoning_format, prompt_has_think=prompt_has_think, custom=delimiters)
    found = parts.format
    if parts.has_think and parts.finished:
        reasoning: str | None = parts.reasoning or ""
        answer = parts.answer
    elif THINK_CLOSE not in completion and row.get("reasoning") is not None and row.get("answer_text") is not None:
        reasoning, answer = str(row["reasoning"]).strip(), str(row["answer_text"]).strip()
        found = found or "reasoning_content"
    else:
        reasoning, answer = None, parts.answer
    problem = _text(row.get("problem"))
    if user_turn == "chat":
        user = user_content(problem, code=code_tests(row) is not None) if problem else None
    elif user_turn == "prompt":
        user = _prompt_user(prompt)
    else:
        raise ValueError(f"user_turn must be 'chat' or 'prompt', got {user_turn!r}")
    return Trace(
        index=index,
        id=str(row["id"]),
        sample=_int(row.get("sample")) or 0,
        folder=folder,
        problem=problem or (_prompt_user(prompt) if user_turn == "prompt" else None),
        user=user,
        completion=completion,
        reasoning=reasoning,
        answer=answer,
        finish_reason=_text(row.get("finish_reason")),
        gold=_text(row.get("gold")),
        verdict=_verdict(row.get("verdict")),
        prompt_has_think=prompt_has_think,
        teacher=_text(row.get("teacher")),
        source=_text(row.get("source")),
        completion_tokens=_int(row.get("completion_tokens")),
        reasoning_format=found,
        tests=code_tests(row),
    )
