"""The nano task: multi-digit addition with a column-by-column ``<think>`` trace and a boxed answer.

Small enough that a 1M-parameter model learns it on one CPU core in minutes, verifiable by the same truth
layer as AIME, and with held-out problems that no training set contains. A worked trace for 347 + 586::

    <think>
    7+6+0=13 -> 3
    4+8+1=13 -> 33
    3+5+1=9 -> 933
    </think>

    \\boxed{933}

>>> gold_trace(347, 586).splitlines()[1]
'7+6+0=13 -> 3'
>>> check_working(gold_trace(347, 586), 347, 586)
True
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from distill.chat_template import assistant_content


def problem_text(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


def column_lines(a: int, b: int, slip: Callable[[int], int] | None = None) -> list[str]:
    """One line per digit column, least significant first: ``da+db+carry=s -> partial result``.

    ``slip(column)`` returns an error to add to that column's sum (0 for none); the rest of the working
    then follows from the mistake, as a person's would.
    """
    da, db = str(a)[::-1], str(b)[::-1]
    width = max(len(da), len(db))
    carry, partial, lines = 0, "", []
    for i in range(width):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        if slip is not None:
            s = max(0, s + slip(i))
        partial = str(s % 10) + partial
        lines.append(f"{x}+{y}+{carry}={s} -> {partial}")
        carry = s // 10
    if carry:
        partial = "1" + partial
        lines.append(f"0+0+1=1 -> {partial}")
    return lines


def gold_trace(a: int, b: int) -> str:
    """The assistant turn for ``a + b`` in the R1 training format."""
    return assistant_content("\n".join(column_lines(a, b)), f"\\boxed{{{a + b}}}")


def slipped_trace(a: int, b: int, rng: random.Random, slip_rate: float) -> tuple[str, bool]:
    """A trace for ``a + b`` whose column sums are each off by one with probability ``slip_rate``.

    Returns ``(trace, correct)``. The working stays self-consistent (carries and the boxed answer follow
    from the slip), so a model trained on such traces learns to slip at about that rate: the rate, not how
    long the warm-up runs, sets the base model's accuracy, and RL has a habit to unlearn.

    >>> slipped_trace(347, 586, random.Random(0), 0.0) == (gold_trace(347, 586), True)
    True
    >>> slipped_trace(347, 586, random.Random(0), 1.0)[0].split("</think>")[0].splitlines()[1:]
    ['7+6+0=14 -> 4', '4+8+1=14 -> 44', '3+5+1=10 -> 044', '0+0+1=1 -> 1044']
    """

    def slip(_column: int) -> int:
        return rng.choice((-1, 1)) if rng.random() < slip_rate else 0

    lines = column_lines(a, b, slip)
    answer = int(lines[-1].rsplit("-> ", 1)[1])
    return assistant_content("\n".join(lines), f"\\boxed{{{answer}}}"), answer == a + b


_LINE = re.compile(r"^(\d)\+(\d)\+(\d)=(\d+) -> (\d+)$")


def check_working(completion: str, a: int, b: int) -> bool:
    """True when every column line of the reasoning is the correct one (not only the final answer)."""
    body = completion.split("<think>", 1)[-1].split("</think>", 1)[0]
    lines = [ln.strip() for ln in body.strip().splitlines() if ln.strip()]
    return lines == column_lines(a, b)


def operands(problem: str) -> tuple[int, int]:
    m = re.search(r"What is (\d+) \+ (\d+)\?", problem)
    if not m:
        raise ValueError(f"not a nano problem: {problem!r}")
    return int(m.group(1)), int(m.group(2))


def draw_operand(lo: int, hi: int, rng: random.Random, *, by_digits: bool) -> int:
    """One operand in ``[lo, hi]``: uniform over the values, or (``by_digits``) first a digit count uniform over
    those the range holds, then a value with that many digits.

    Drawn by value from 10-999, nine operands in ten have three digits and a sum of a 3-digit and a 2-digit
    number (440 + 51, whose columns do not line up from the left) is about one problem in six; drawn by digits
    it is one in two, so a model sees enough of them to learn to align the columns.

    >>> sorted({len(str(draw_operand(10, 999, random.Random(i), by_digits=True))) for i in range(50)})
    [2, 3]
    """
    if not by_digits:
        return rng.randint(lo, hi)
    digits = rng.randint(len(str(lo)), len(str(hi)))
    return rng.randint(max(lo, 10 ** (digits - 1) if digits > 1 else 0), min(hi, 10 ** digits - 1))


def sample_pairs(n: int, lo: int, hi: int, rng: random.Random, exclude: set[tuple[int, int]], *,
                 by_digits: bool = False) -> list[tuple[int, int]]:
    """``n`` distinct operand pairs not in ``exclude`` (which is updated); see :func:`draw_operand`."""
    out: list[tuple[int, int]] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise ValueError(f"drew {len(out)} of {n} distinct operand pairs in [{lo}, {hi}] after {tries - 1} tries; "
                             "widen the range (min_value, max_value) or ask for fewer problems")
        pair = (draw_operand(lo, hi, rng, by_digits=by_digits), draw_operand(lo, hi, rng, by_digits=by_digits))
        if pair in exclude:
            continue
        exclude.add(pair)
        out.append(pair)
    return out
