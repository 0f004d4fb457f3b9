"""The nano code task: write a one-line Python function (or stdin/stdout program) with a constant in it.

A problem is a family and a constant ``k``; its tests are run by the sandbox like any code problem's
(:mod:`distill.verify.code_tests`): HumanEval-style ``check(candidate)`` asserts for functions, stdin/stdout pairs
for programs. The warm-up trace names the rule in ``<think>`` and gives the program in a fenced block::

    <think>
    plus_17 takes x and returns x + 17: one return line.
    </think>

    ```python
    def plus_17(x):
        return x + 17
    ```

It is small enough for a 1M-parameter model to imitate the shape of on one CPU core; the recipe needs the
whole path (tests, sandbox, pass@1 and the failure kinds), not skill.

>>> p = code_problem(FAMILIES[0], 17, random.Random(0))
>>> p["problem"], p["tests"]["entry_point"]
('Write a Python function plus_17(x) that returns x + 17.', 'plus_17')
>>> "assert candidate(" in p["tests"]["test"]
True
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distill.chat_template import assistant_content


@dataclass(frozen=True)
class Family:
    name: str        # the function's name prefix (a function family) or a label (a program family)
    args: str        # "x" or "a, b"
    expr: str        # the Python expression asked for, of the args and k, e.g. "x + {k}"
    value: Callable[..., int]   # the same expression as a function of (k, *args): the expected results
    program: bool = False       # True: a stdin/stdout program instead of a function
    min_k: int = 0              # smallest constant that makes sense (x % 0 does not)


FAMILIES: tuple[Family, ...] = (
    Family("plus", "x", "x + {k}", lambda k, x: x + k),
    Family("minus", "x", "x - {k}", lambda k, x: x - k),
    Family("times", "x", "x * {k}", lambda k, x: x * k),
    Family("mod", "x", "x % {k}", lambda k, x: x % k, min_k=2),
    Family("div", "x", "x // {k}", lambda k, x: x // k, min_k=2),
    Family("at_least", "x", "max(x, {k})", lambda k, x: max(x, k)),
    Family("at_most", "x", "min(x, {k})", lambda k, x: min(x, k)),
    Family("sum_plus", "a, b", "a + b + {k}", lambda k, a, b: a + b + k),
    Family("product_minus", "a, b", "a * b - {k}", lambda k, a, b: a * b - k),
    Family("read_plus", "x", "x + {k}", lambda k, x: x + k, program=True),
    Family("read_times", "x", "x * {k}", lambda k, x: x * k, program=True),
    Family("read_sum_minus", "a, b", "a + b - {k}", lambda k, a, b: a + b - k, program=True),
)
TESTS_PER_PROBLEM = 3


def universe(lo: int, hi: int) -> list[tuple[int, int]]:
    """Every (family index, k) the task can ask, in a fixed order."""
    return [(f, k) for f, fam in enumerate(FAMILIES) for k in range(max(lo, fam.min_k), hi + 1)]


def _args(family: Family, rng: random.Random) -> list[int]:
    if family.args == "x":
        return [rng.randint(-50, 200)]
    return [rng.randint(-20, 50), rng.randint(-20, 50)]


def code_problem(family: Family, k: int, rng: random.Random) -> dict[str, Any]:
    """``{problem, tests, solution}`` for one family and constant (``solution``: the right program, as
    HumanEval's ``canonical_solution``); tests drawn from ``rng``."""
    expr = family.expr.format(k=k)
    cases = [_args(family, rng) for _ in range(TESTS_PER_PROBLEM)]
    if family.program:
        reads = ("an integer x" if family.args == "x"
                 else "two integers a and b (on one line, separated by a space)")
        problem = f"Write a Python program that reads {reads} from standard input and prints {expr}."
        inputs = [" ".join(str(v) for v in case) + "\n" for case in cases]
        tests: dict[str, Any] = {"inputs": inputs, "outputs": [f"{family.value(k, *case)}\n" for case in cases]}
    else:
        name = f"{family.name}_{k}"
        problem = f"Write a Python function {name}({family.args}) that returns {expr}."
        asserts = "".join(f"    assert candidate({', '.join(str(v) for v in case)}) == {family.value(k, *case)}\n"
                          for case in cases)
        tests = {"test": f"def check(candidate):\n{asserts}", "entry_point": name}
    return {"problem": problem, "tests": tests, "solution": program_text(family, k)}


def program_text(family: Family, k: int) -> str:
    """The right program for one family and constant."""
    expr = family.expr.format(k=k)
    if not family.program:
        return f"def {family.name}_{k}({family.args}):\n    return {expr}\n"
    read = "x = int(input())" if family.args == "x" else "a, b = map(int, input().split())"
    return f"{read}\nprint({expr})\n"


def code_trace(family: Family, k: int, rng: random.Random, slip_rate: float) -> tuple[str, bool]:
    """The warm-up assistant turn for one problem, and whether its program is right: with probability
    ``slip_rate`` the constant is off by one in both the reasoning and the program (a wrong answer)."""
    used = k + rng.choice((-1, 1)) if rng.random() < slip_rate else k
    if used < family.min_k:
        used = k + 1
    expr = family.expr.format(k=used)
    if family.program:
        reasoning = f"The program reads {family.args} and prints {expr}: one read line and one print line."
    else:
        reasoning = f"{family.name}_{k} takes {family.args} and returns {expr}: one return line."
    program = program_text(family, used)
    if not family.program:
        program = program.replace(f"def {family.name}_{used}(", f"def {family.name}_{k}(", 1)
    return assistant_content(reasoning, f"```python\n{program}```"), used == k
