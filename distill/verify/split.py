"""Split a completion into its reasoning and its final answer, whatever markers the teacher used.

Formats (:data:`REASONING_FORMATS`):

- ``"think"``: DeepSeek-R1, QwQ: ``<think> ... </think> answer``;
- ``"sky-t1"``: Sky-T1, Bespoke: ``<|begin_of_thought|> ... <|end_of_thought|>`` then
  ``<|begin_of_solution|> answer <|end_of_solution|>``;
- ``"s1"``: s1 / s1.1 (Qwen chat tokens): ``<|im_start|>think ... <|im_start|>answer answer <|im_end|>``;
- ``"custom"``: a pair of delimiters given by the user (``custom=(open, close)``);
- ``"auto"``: the format whose marker comes first in the text (:func:`detect_format`).

The split follows vLLM's ``deepseek_r1`` reasoning parser, so traces generated with it and traces split here
agree: the reasoning is everything before the FIRST closing marker, the answer is everything after it. A
prompt that prefills the opening marker (the DeepSeek-R1 chat templates prefill ``<think>``) produces
completions without it: pass ``prompt_has_think=True``. An API that returns the reasoning in a separate
``reasoning_content`` field (OpenAI-style) needs no markers: :func:`split_with_reasoning_content`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

REASONING_FORMATS = ("auto", "think", "sky-t1", "s1", "custom")


@dataclass(frozen=True)
class Markers:
    """The strings that delimit one format's reasoning and, optionally, its answer."""

    open: str
    close: str
    answer_open: str | None = None
    answer_close: str | None = None


MARKERS = {
    "think": Markers(THINK_OPEN, THINK_CLOSE),
    "sky-t1": Markers("<|begin_of_thought|>", "<|end_of_thought|>", "<|begin_of_solution|>", "<|end_of_solution|>"),
    "s1": Markers("<|im_start|>think", "<|im_start|>answer", None, "<|im_end|>"),
}


@dataclass(frozen=True)
class ThinkSplit:
    """A completion cut into reasoning and answer.

    Attributes:
        reasoning: the text inside the reasoning markers (``None`` when the completion has no reasoning block).
        answer: the text after the closing marker (inside the solution markers when the format has them); the
            whole completion when there is no reasoning block; ``""`` when the reasoning never closed.
        finished: ``False`` when the reasoning opened (in the completion or the prompt) but never closed.
        has_think: whether a reasoning block is in play (a marker in the completion, or ``prompt_has_think``).
        format: the format whose markers were used (``"think"``, ``"sky-t1"``, ``"s1"``, ``"custom"``,
            ``"reasoning_content"``), ``None`` without a reasoning block. Not part of equality.
    """

    reasoning: str | None
    answer: str
    finished: bool
    has_think: bool
    format: str | None = field(default=None, compare=False)


def check_reasoning_format(fmt: str, custom: tuple[str, str] | None = None) -> None:
    """Raise ValueError unless ``fmt`` is a known format and ``custom`` fits it.

    Example:
        >>> check_reasoning_format("custom", ("[R]", "[/R]"))
        >>> check_reasoning_format("custom")
        Traceback (most recent call last):
        ...
        ValueError: reasoning_format 'custom' needs reasoning_delimiters: a pair (open, close), e.g. ('<reasoning>', '</reasoning>')
    """
    if fmt not in REASONING_FORMATS:
        raise ValueError(f"reasoning_format must be one of {REASONING_FORMATS}, got {fmt!r}")
    if fmt == "custom":
        if custom is None:
            raise ValueError(
                "reasoning_format 'custom' needs reasoning_delimiters: a pair (open, close), "
                "e.g. ('<reasoning>', '</reasoning>')"
            )
        if len(custom) != 2 or not all(isinstance(d, str) for d in custom) or not custom[1]:
            raise ValueError(
                f"reasoning_delimiters must be two strings (open, close) with a non-empty close, got {custom!r}"
            )
    elif custom is not None:
        raise ValueError(f"reasoning_delimiters are only for reasoning_format 'custom', not {fmt!r}")


def detect_format(text: str) -> str | None:
    """The format whose marker (opening, closing or solution) comes first in ``text``; ``None`` if none.

    Example:
        >>> detect_format("<|begin_of_thought|> hm <|end_of_thought|>"), detect_format("a</think>b")
        ('sky-t1', 'think')
        >>> detect_format("<|im_start|>think\\nok<|im_start|>answer\\n5"), detect_format("plain")
        ('s1', None)
    """
    best: tuple[int, str] | None = None
    for name, markers in MARKERS.items():
        for marker in (markers.open, markers.close, markers.answer_open):
            at = text.find(marker) if marker else -1
            if at >= 0 and (best is None or at < best[0]):
                best = (at, name)
    return None if best is None else best[1]


def split_reasoning(
    text: str, fmt: str = "auto", *, prompt_has_think: bool = False, custom: tuple[str, str] | None = None
) -> ThinkSplit:
    """Split ``text`` into reasoning and answer at the first closing marker of format ``fmt``.

    ``"auto"`` uses :func:`detect_format`; with no marker in the text it is ``"think"`` when
    ``prompt_has_think`` (the reasoning opened in the prompt and never closed), else no reasoning at all.

    Example:
        >>> parts = split_reasoning("<|begin_of_thought|>x=2<|end_of_thought|><|begin_of_solution|>"
        ...                         "\\\\boxed{2}<|end_of_solution|>")
        >>> parts.reasoning, parts.answer, parts.finished, parts.format
        ('x=2', '\\\\boxed{2}', True, 'sky-t1')
        >>> split_reasoning("<|begin_of_thought|> cut by len").finished
        False
        >>> split_reasoning("[R]hm[/R] 5", "custom", custom=("[R]", "[/R]")).answer
        '5'
    """
    check_reasoning_format(fmt, custom)
    text = text or ""
    if fmt == "auto":
        fmt = detect_format(text) or ("think" if prompt_has_think else "")
        if not fmt:
            return ThinkSplit(reasoning=None, answer=text.strip(), finished=True, has_think=False)
    markers = Markers(*custom) if fmt == "custom" and custom is not None else MARKERS[fmt]
    close = text.find(markers.close)
    has_open = bool(markers.open) and markers.open in text
    if not (prompt_has_think or has_open or close >= 0):
        return ThinkSplit(reasoning=None, answer=text.strip(), finished=True, has_think=False)
    if close < 0:
        return ThinkSplit(_strip_open(text, markers.open), "", finished=False, has_think=True, format=fmt)
    reasoning = _strip_open(text[:close], markers.open)
    answer = _answer_part(text[close + len(markers.close) :], markers)
    return ThinkSplit(reasoning, answer, finished=True, has_think=True, format=fmt)


def split_think(text: str, *, prompt_has_think: bool = False) -> ThinkSplit:
    """Split ``text`` at the first ``</think>``: :func:`split_reasoning` with format ``"think"``.

    Example:
        >>> split_think("<think>2+2 is 4</think> So $\\\\boxed{4}$.")
        ThinkSplit(reasoning='2+2 is 4', answer='So $\\\\boxed{4}$.', finished=True, has_think=True, format='think')
        >>> split_think("still thinking", prompt_has_think=True).finished
        False
        >>> split_think("no tags: \\\\boxed{1}")
        ThinkSplit(reasoning=None, answer='no tags: \\\\boxed{1}', finished=True, has_think=False, format=None)
    """
    return split_reasoning(text, "think", prompt_has_think=prompt_has_think)


def split_with_reasoning_content(reasoning_content: str | None, content: str | None) -> ThinkSplit:
    """The split of an API answer that returns the reasoning apart (OpenAI-style ``reasoning_content``).

    With no ``reasoning_content`` the ``content`` is split as text (a server that did not parse the
    reasoning leaves the markers in it). Reasoning with an empty ``content`` did not finish (the length
    limit struck while it was thinking).

    Example:
        >>> split_with_reasoning_content("2+2 is 4", " \\\\boxed{4} ")
        ThinkSplit(reasoning='2+2 is 4', answer='\\\\boxed{4}', finished=True, has_think=True, format='reasoning_content')
        >>> split_with_reasoning_content("still going", None).finished
        False
        >>> split_with_reasoning_content(None, "<think>a</think>b").format
        'think'
    """
    if not reasoning_content:
        return split_reasoning(content or "")
    answer = (content or "").strip()
    return ThinkSplit(reasoning_content.strip(), answer, finished=bool(answer), has_think=True,
                      format="reasoning_content")


def _strip_open(reasoning: str, open_marker: str) -> str:
    """Drop everything up to and including the first opening marker (the marker and any preamble)."""
    start = reasoning.find(open_marker) if open_marker else -1
    if start >= 0:
        reasoning = reasoning[start + len(open_marker) :]
    return reasoning.strip()


def _answer_part(rest: str, markers: Markers) -> str:
    """The answer after the closing marker: inside the solution markers when the format has them."""
    if markers.answer_open:
        start = rest.find(markers.answer_open)
        if start >= 0:
            rest = rest[start + len(markers.answer_open) :]
    if markers.answer_close:
        end = rest.find(markers.answer_close)
        if end >= 0:
            rest = rest[:end]
    return rest.strip()
