"""The nano reflection task (``distill nano-task --kind reflect``): addition where checking one's work pays.

The problems are the arithmetic task's ("What is 347 + 586?"); only the warm-up traces differ. Every trace
starts with a quick pass that adds the digits column by column but forgets to carry (a person's slip: right
only when no column carries). Most traces stop there (habit A). The rest (habit B, ``check_rate``) go on:
a "Wait, let me check." marker, the column-by-column working *with* carries (the arithmetic task's lines),
and a conclusion that keeps or corrects the first answer::

    <think>
    7+6=13 -> 3
    4+8=12 -> 23
    3+5=8 -> 823
    Wait, let me check.
    7+6+0=13 -> 3
    4+8+1=13 -> 33
    3+5+1=9 -> 933
    So the answer is 933, not 823.
    </think>

    \\boxed{933}

So a model warmed up on these traces checks rarely, and is right more often when it does: nothing but the
accuracy reward favours the check (no length reward, no reward for the marker). ``switch_rate`` of the
checking traces switch language mid-reasoning (the marker in Chinese, "等等，检查一下。"), for the
language-consistency ablation; the project's measure (:func:`distill.verify.language_consistency`) sees such a
trace as mixed (about 0.5 of its words English).

>>> quick_guess(347, 586), quick_guess(12, 34)
(823, 46)
>>> reflect_trace(347, 586, check=True).split("</think>")[0].splitlines()[-1]
'So the answer is 933, not 823.'
>>> has_reflection(reflect_trace(347, 586, check=True)), has_correction(reflect_trace(347, 586, check=True))
(True, True)
>>> has_reflection(reflect_trace(347, 586, check=False)), has_correction(reflect_trace(12, 34, check=True))
(False, False)
"""

from __future__ import annotations

import random
import re

from distill.chat_template import assistant_content
from distill.stages.nano_task.task import column_lines

MARKER = "Wait, let me check."
SWITCHED_MARKER = "等等，检查一下。"            # the same words in Chinese: the mid-reasoning language switch
# What the GRPO stage's watchers count (recipes/nano-r1-zero.yaml repeats these patterns: stages share no code).
REFLECTION_PATTERN = r"Wait, let me check\.|等等"
CORRECTION_PATTERN = r"answer is (\d+), not (?!\1\b)\d+"


def quick_guess(a: int, b: int) -> int:
    """``a + b`` added column by column with every carry forgotten (right only when no column carries)."""
    da, db = str(a)[::-1], str(b)[::-1]
    digits = [(int(da[i]) if i < len(da) else 0) + (int(db[i]) if i < len(db) else 0)
              for i in range(max(len(da), len(db)))]
    return int("".join(str(d % 10) for d in reversed(digits)))


def quick_lines(a: int, b: int) -> list[str]:
    """The quick pass: one line per column, least significant first, every carry forgotten (``4+8=12 -> 23``).

    >>> quick_lines(347, 586)
    ['7+6=13 -> 3', '4+8=12 -> 23', '3+5=8 -> 823']
    """
    da, db = str(a)[::-1], str(b)[::-1]
    partial, lines = "", []
    for i in range(max(len(da), len(db))):
        x, y = (int(da[i]) if i < len(da) else 0), (int(db[i]) if i < len(db) else 0)
        partial = str((x + y) % 10) + partial
        lines.append(f"{x}+{y}={x + y} -> {partial}")
    return lines


def reflect_trace(a: int, b: int, *, check: bool, switch: bool = False) -> str:
    """The assistant turn for ``a + b``: the quick pass, then (``check``) the marker, the working with carries
    and the conclusion; ``switch``: the marker in Chinese."""
    guess = quick_guess(a, b)
    lines = quick_lines(a, b)
    answer = guess
    if check:
        answer = a + b
        tail = f"So the answer is {answer}." if answer == guess else f"So the answer is {answer}, not {guess}."
        lines += [SWITCHED_MARKER if switch else MARKER, *column_lines(a, b), tail]
    return assistant_content("\n".join(lines), f"\\boxed{{{answer}}}")


def warmup_trace(a: int, b: int, rng: random.Random, check_rate: float, switch_rate: float) -> tuple[str, bool]:
    """A warm-up trace: it checks with probability ``check_rate`` and a check switches language with probability
    ``switch_rate``. Returns ``(trace, correct)``; a trace that checks is always correct."""
    check = rng.random() < check_rate
    switch = check and rng.random() < switch_rate
    return reflect_trace(a, b, check=check, switch=switch), check or quick_guess(a, b) == a + b


def has_reflection(text: str) -> bool:
    """Whether the reasoning holds the check's marker (in either language)."""
    return re.search(REFLECTION_PATTERN, text) is not None


def has_correction(text: str) -> bool:
    """Whether a check changed the answer ("So the answer is 933, not 823.")."""
    return re.search(CORRECTION_PATTERN, text) is not None
