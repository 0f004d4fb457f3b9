"""The GRPO ``code`` reward: programs from completions run against each row's tests in the sandbox."""

from __future__ import annotations

import json
import time

import pytest

from distill.rewards import REWARDS, build_rewards, make_code_reward

ADD_TEST = {"test": "def check(f):\n    assert f(2, 3) == 5\n    assert f(-1, 1) == 0\n", "entry_point": "add"}
IO_TEST = {"inputs": ["1 2\n", "5 5\n", "0 0\n"], "outputs": ["3\n", "10\n", "0\n"]}


def _answer(code: str) -> str:
    return f"<think>let me think</think>\nHere:\n```python\n{code}```"


def test_code_reward_right_wrong_no_code_and_hostile_loop():
    fns, weights = build_rewards({"code": {"weight": 1.0, "wall_s": 3, "cpu_s": 2, "workers": 2}})
    reward = fns[0]
    assert reward.__name__ == "code" and weights == [1.0] and "code" in REWARDS
    completions = [
        _answer("def add(a, b):\n    return a + b\n"),              # right
        _answer("def add(a, b):\n    return a * b\n"),              # wrong
        "<think>no idea</think> The answer is to add them.",        # no code
        _answer("def add(a, b):\n    while True:\n        pass\n"),  # hostile: never returns
        "<think>cut off while thinking ```python\ndef add(a, b):\n    return a + b\n```",  # reasoning never closed
        _answer("print('hi')\n"),                                   # row without tests
    ]
    tests = [ADD_TEST] * 5 + [None]
    start = time.monotonic()
    assert reward(completions, tests=tests) == [1.0, 0.0, 0.0, 0.0, 0.0, None]
    assert time.monotonic() - start < 30


def test_code_reward_io_tests_partial_and_columns():
    half = _answer("a, b = map(int, input().split())\nprint(a + b if a else 7)\n")
    right = _answer("a, b = map(int, input().split())\nprint(a + b)\n")
    binary = make_code_reward(workers=2)
    partial = make_code_reward(workers=2, partial=True)
    # tests as JSON text in a 'tests' column; HumanEval's own columns; APPS' input_output
    assert binary([half, right], tests=[json.dumps(IO_TEST)] * 2) == [0.0, 1.0]
    assert partial([half, right], inputs=[IO_TEST["inputs"]] * 2, outputs=[IO_TEST["outputs"]] * 2) == \
        [pytest.approx(2 / 3), 1.0]
    assert binary([_answer("def add(a, b):\n    return a + b\n")], test=[ADD_TEST["test"]],
                  entry_point=["add"]) == [1.0]
    assert binary([right], input_output=[json.dumps(IO_TEST)]) == [1.0]
    assert binary([right], answer=["3"]) == [None]              # a math row: no reward from this function


def test_code_reward_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown parameter"):
        build_rewards({"code": {"timeout_seconds": 3}})
    with pytest.raises(ValueError, match="not valid JSON"):
        make_code_reward(workers=1)(["x"], tests=["{not json"])
