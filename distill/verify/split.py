"""Split a completion into its reasoning (``<think>...</think>``) and its final answer.

The split follows the convention of vLLM's ``deepseek_r1`` reasoning parser, so traces generated with it
and traces split here agree: the reasoning is everything before the FIRST ``</think>``, the answer is
everything after it. A prompt that prefills ``<think>`` (the DeepSeek-R1 chat templates do) produces
completions with no opening tag: pass ``prompt_has_think=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class ThinkSplit:
    """A completion cut into reasoning and answer.

    Attributes:
        reasoning: the text inside ``<think>...</think>`` (``None`` when the completion uses no think tags).
        answer: the text after ``</think>``; the whole completion when there are no think tags; ``""`` when
            the reasoning never closed.
        finished: ``False`` when the reasoning opened (in the completion or the prompt) but never closed.
        has_think: whether think tags are in play (either tag in the completion, or ``prompt_has_think``).
    """

    reasoning: str | None
    answer: str
    finished: bool
    has_think: bool


def split_think(text: str, *, prompt_has_think: bool = False) -> ThinkSplit:
    """Split ``text`` at the first ``</think>``.

    Example:
        >>> split_think("<think>2+2 is 4</think> So $\\\\boxed{4}$.")
        ThinkSplit(reasoning='2+2 is 4', answer='So $\\\\boxed{4}$.', finished=True, has_think=True)
        >>> split_think("still thinking", prompt_has_think=True).finished
        False
        >>> split_think("no tags: \\\\boxed{1}")
        ThinkSplit(reasoning=None, answer='no tags: \\\\boxed{1}', finished=True, has_think=False)
    """
    text = text or ""
    close = text.find(THINK_CLOSE)
    has_open = THINK_OPEN in text
    has_think = prompt_has_think or has_open or close >= 0
    if not has_think:
        return ThinkSplit(reasoning=None, answer=text.strip(), finished=True, has_think=False)
    if close < 0:
        return ThinkSplit(reasoning=_strip_open(text), answer="", finished=False, has_think=True)
    reasoning = _strip_open(text[:close])
    answer = text[close + len(THINK_CLOSE) :]
    return ThinkSplit(reasoning=reasoning, answer=answer.strip(), finished=True, has_think=True)


def _strip_open(reasoning: str) -> str:
    """Drop everything up to and including the first ``<think>`` (the tag and any preamble)."""
    start = reasoning.find(THINK_OPEN)
    if start >= 0:
        reasoning = reasoning[start + len(THINK_OPEN) :]
    return reasoning.strip()
