"""The per-row filters: each a small pure function ``(trace, context) -> drop reason or None``.

They run in this order (``ROW_FILTERS``) and all of them run on every row, so the stats can give both the
first failing filter (the drop reason) and every failing one. Thresholds come from ``FilterConfig``; a
threshold set to None switches that check off. Dedup and selection look at groups of rows, not single
rows: see :mod:`~distill.stages.filter.dedup` and :mod:`~distill.stages.filter.selection`.

>>> from distill.stages.filter.config import FilterConfig
>>> from distill.stages.filter.trace import prepare
>>> ctx = FilterContext(FilterConfig())
>>> t = prepare({"id": "a", "sample": 0, "problem": "2+2?", "finish_reason": "length",
...              "completion": "<think>2+2 is 4"}, index=0, folder="f")
>>> completeness(t, ctx)
'not_stopped:length'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from distill.stages.filter.config import FilterConfig
from distill.stages.filter.decontaminate import NgramIndex
from distill.stages.filter.trace import Trace
from distill.verify import (
    extract_answer,
    has_code_block,
    leftover_special_tokens,
    longest_paragraph,
    looks_truncated,
    repetition_ratio,
)
from distill.verify.language import paragraph_consistency


@dataclass
class FilterContext:
    """What the filters read besides the row: the config and the eval n-gram index (None: not loaded)."""

    cfg: FilterConfig
    index: NgramIndex | None = None


def decontamination(t: Trace, ctx: FilterContext) -> str | None:
    """The problem (and with ``decontaminate_traces`` the reasoning) shares an n-gram with an eval problem."""
    if ctx.index is None:
        raise RuntimeError("decontamination filter run without an eval index (build_index was not called)")
    label = ctx.index.find(t.problem or t.user)
    if label is None and ctx.cfg.decontaminate_traces and t.reasoning:
        label = ctx.index.find(t.reasoning)
    return None if label is None else label.rpartition("#")[0]


def completeness(t: Trace, ctx: FilterContext) -> str | None:
    """Finished with ``stop``, closed reasoning that is not empty and not cut mid-sentence, and a final answer."""
    cfg = ctx.cfg
    if cfg.require_stop and t.finish_reason != "stop":
        return f"not_stopped:{t.finish_reason}"
    if not t.closed:
        return "no_think_close"
    if not (t.reasoning or "").strip():
        return "empty_reasoning"
    if cfg.drop_truncated and looks_truncated(t.reasoning or ""):
        return "truncated"            # cut mid-sentence by a length budget, even if a closing tag was appended
    if cfg.require_answer and t.tests is None:          # a code trace's answer is its program, not a box
        if not t.answer.strip():
            return "empty_answer"
        if extract_answer(t.answer, mode=cfg.verify_mode) is None:
            return "no_final_answer"
    return None


def correctness(t: Trace, ctx: FilterContext) -> str | None:
    """Keep only the verdict ``correct``; the reason is the verdict (incorrect, no_answer, unparsable ...)."""
    if t.verdict == "correct":
        return None
    return t.verdict or "unverified"


def readability(t: Trace, ctx: FilterContext) -> str | None:
    """Wall-of-text paragraphs, code in the reasoning, leftover chat special tokens, too few target-language words
    (overall or in a paragraph), loops."""
    cfg = ctx.cfg
    text = t.readable_text
    if cfg.max_paragraph_chars is not None and longest_paragraph(text) > cfg.max_paragraph_chars:
        return "long_paragraph"
    if not cfg.allow_code and has_code_block(t.reasoning if t.reasoning is not None else text):
        return "code_block"           # in the reasoning: a program in the answer is the answer (code problems)
    if cfg.drop_special_tokens and leftover_special_tokens(text):
        return "special_tokens"
    if cfg.min_language_consistency is not None or cfg.min_paragraph_language_consistency is not None:
        # The whole trace's share and its lowest paragraph's, in one pass; "auto": the problem's own language.
        overall, lowest = paragraph_consistency(text, cfg.language, problem=t.problem or t.user)
        if cfg.min_language_consistency is not None and overall < cfg.min_language_consistency:
            return "language_consistency"
        if cfg.min_paragraph_language_consistency is not None and lowest < cfg.min_paragraph_language_consistency:
            return "mixed_language"
    if cfg.max_repetition is not None:
        ratio = repetition_ratio(t.reasoning if t.reasoning is not None else text, n=cfg.repetition_ngram)
        if ratio > cfg.max_repetition:
            return "repetition"
    return None


def length(t: Trace, ctx: FilterContext) -> str | None:
    """More than ``max_tokens`` tokens in the assistant turn."""
    if t.num_tokens is None:
        return "unknown_length"
    return "too_long" if t.num_tokens > ctx.cfg.max_tokens else None


RowFilter = Callable[[Trace, FilterContext], str | None]

# Order matters only for the drop reason: a row is counted under the first filter it fails.
ROW_FILTERS: tuple[tuple[str, RowFilter], ...] = (
    ("decontamination", decontamination),
    ("completeness", completeness),
    ("correctness", correctness),
    ("readability", readability),
    ("length", length),
)
GROUP_FILTERS = ("dedup", "selection")
ALL_FILTERS = tuple(name for name, _ in ROW_FILTERS) + GROUP_FILTERS


def enabled_row_filters(cfg: FilterConfig) -> list[str]:
    """Names of the row filters switched on in ``cfg``."""
    switches = {"decontamination": cfg.decontaminate, "completeness": cfg.completeness,
                "correctness": cfg.correctness, "readability": cfg.readability, "length": cfg.length}
    return [name for name, _ in ROW_FILTERS if switches[name]]


def check_row(t: Trace, ctx: FilterContext, names: list[str],
              seconds: dict[str, float] | None = None) -> list[str]:
    """Every failing filter of ``names`` as ``"filter:reason"``, in filter order (first = drop reason).

    ``seconds`` (optional) accumulates the CPU time spent in each filter (CPU, not wall: fair on a busy machine).
    """
    failures = []
    table = dict(ROW_FILTERS)
    for name in names:
        start = time.process_time()
        reason = table[name](t, ctx)
        if seconds is not None:
            seconds[name] = seconds.get(name, 0.0) + time.process_time() - start
        if reason is not None:
            failures.append(f"{name}:{reason}")
    return failures
