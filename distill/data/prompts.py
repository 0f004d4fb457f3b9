"""Prompt templates: the paper's chat prompt and the R1-Zero template.

The DeepSeek-R1 evaluation and distillation prompt is a single user turn, the problem followed by
``CHAT_SUFFIX``, with no system prompt; a code problem (one with tests) ends with ``CODE_SUFFIX`` instead,
which asks for the program in a fenced block, where :func:`distill.verify.extract_program` looks for it. R1-Zero was trained on a plain-text template (the paper's Table 1)
that asks for ``<think>`` reasoning and an ``<answer>`` block.

>>> chat_messages("What is 1+1?")[0]["content"].endswith("within \\\\boxed{}.")
True
>>> user_content("def add(a, b):", code=True).endswith("code block.")
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from distill.chat_template import THINK_OPEN

CHAT_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
CODE_SUFFIX = "Please reason step by step, and put your complete program in one fenced ```python code block."

# DeepSeek-R1 paper, Table 1 ("prompt" is replaced with the problem during training).
R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: {problem}. Assistant:"
)

TEMPLATES = ("chat", "r1-zero")


def user_content(problem: str, *, code: bool = False) -> str:
    """The user turn: the problem, then the math suffix, or the code suffix for a problem with tests."""
    return f"{problem.strip()}\n{CODE_SUFFIX if code else CHAT_SUFFIX}"


def chat_messages(problem: str, *, system: str | None = None, code: bool = False) -> list[dict[str, str]]:
    """The conversational prompt: optional system turn, then the user turn."""
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": user_content(problem, code=code)})
    return msgs


def prompt_opens_think(prompt: str | Sequence[Mapping[str, Any]] | None) -> bool:
    """Whether a prompt ends inside an open ``<think>``, so the completion starts in the reasoning.

    The one answer to "does the prompt end with ``<think>``" (trailing whitespace ignored). A text prompt is
    read as it is; a chat prompt (a list of ``{role, content}`` messages) opens ``<think>`` when its last
    message is a prefilled assistant turn that does. Anything else (``None``, an empty list) does not.

    >>> prompt_opens_think("<|assistant|><think>\\n"), prompt_opens_think("... Assistant:"), prompt_opens_think(None)
    (True, False, False)
    >>> prompt_opens_think([{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "<think>\\n"}])
    True
    """
    if isinstance(prompt, Sequence) and not isinstance(prompt, str):
        last = prompt[-1] if prompt else None
        if not isinstance(last, Mapping) or last.get("role") != "assistant":
            return False
        prompt = last.get("content")
    return isinstance(prompt, str) and prompt.rstrip().endswith(THINK_OPEN)


def r1_zero_prompt(problem: str) -> str:
    return R1_ZERO_TEMPLATE.format(problem=problem.strip())


def render_prompt(tokenizer: Any, problem: str, *, template: str = "chat", system: str | None = None,
                  force_think: bool = False, code: bool = False) -> str:
    """The exact prompt text a model sees.

    ``chat``: the tokenizer's chat template with a generation prompt (``force_think`` appends ``<think>\\n``
    after the assistant tag). ``r1-zero``: the plain-text template (``force_think`` appends `` <think>``).
    """
    if template == "r1-zero":
        text = r1_zero_prompt(problem)
        return text + " <think>" if force_think else text
    if template != "chat":
        raise ValueError(f"unknown prompt template {template!r}; valid: {', '.join(TEMPLATES)}")
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template: use template 'r1-zero' or a model with a chat template")
    text = tokenizer.apply_chat_template(chat_messages(problem, system=system, code=code), tokenize=False,
                                         add_generation_prompt=True)
    if force_think and not prompt_opens_think(text):
        text += "<think>\n"
    return text
