"""The nano reflection task (``distill nano-task --kind reflect``): addition where checking one's work pays.

The problems are the arithmetic task's ("What is 47 + 86?"); only the warm-up traces differ. Every trace
starts with a quick pass that adds the digits column by column from the left, the way one reads a number, and
so forgets every carry (a person's slip: right only when no column carries). Most traces stop there (habit A).
The rest (habit B, ``check_rate``) go on: a "Wait, let me check." marker, the column-by-column working from
the right *with* carries (the arithmetic task's lines), and a conclusion that keeps or corrects the first
answer::

    <think>
    4+8=12 -> 2
    7+6=13 -> 23
    Wait, let me check.
    7+6+0=13 -> 3
    4+8+1=13 -> 33
    0+0+1=1 -> 133
    So the answer is 133, not 23.
    </think>

    \\boxed{133}

Going from the left matters for what RL can learn. A quick pass from the right would show each column's carry on
the line above the next column ("7+6=13"), and a policy can learn to fold it in silently ("4+8=13") far more
cheaply than it learns to check: a development run on two-digit sums did exactly that. From the left, folding a
carry in needs the next column's sum before it is written, which the quick pass never shows.

So a model warmed up on these traces checks rarely, and is right more often when it does: nothing but the
accuracy reward favours the check (no length reward, no reward for the marker). ``switch_rate`` of the
checking traces switch language mid-reasoning (the marker in Chinese, "等等，检查一下。"), for the
language-consistency ablation; the project's measure (:func:`distill.verify.language_consistency`) sees such a
trace as mixed (about 0.5 of its words English).

>>> quick_guess(347, 586), quick_guess(12, 34)
(823, 46)
>>> reflect_trace(47, 86, check=True).split("</think>")[0].splitlines()[-1]
'So the answer is 133, not 23.'
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
    """The quick pass: one line per column, most significant first, every carry forgotten (``4+8=12 -> 2``).

    >>> quick_lines(347, 586)
    ['3+5=8 -> 8', '4+8=12 -> 82', '7+6=13 -> 823']
    >>> quick_lines(95, 7)
    ['9+0=9 -> 9', '5+7=12 -> 92']
    """
    width = max(len(str(a)), len(str(b)))
    da, db = str(a).zfill(width), str(b).zfill(width)
    partial, lines = "", []
    for x, y in zip(map(int, da), map(int, db)):
        partial += str((x + y) % 10)
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
