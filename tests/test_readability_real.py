"""Readability on real teachers' traces: fenced arithmetic is not code, cut-off reasoning, leftover special tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.verify.readability import has_code_block, leftover_special_tokens, looks_truncated
from distill.verify.split import split_reasoning

TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-traces"
needs_traces = pytest.mark.skipif(not TRACES.is_dir(), reason=f"real traces not found at {TRACES}")


def _rows(name: str) -> list[dict]:
    with open(TRACES / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------- has_code_block


@pytest.mark.parametrize(
    "text",
    [
        "```\n 333.33\n-111.11\n```",
        "```\n     333.33\n    -111.11\n   -------\n     222.22\n   ```",
        "```\n  1 2 3\n *   4 5\n ______\n  6 1 5\n```",
        "```\na b c\nd e f\n```",  # a grid of placeholders (Sky-T1, AIME 2024)
        "```text\n12 + 30 = 42\n```",
        "``` ```",
    ],
)
def test_fenced_arithmetic_is_not_code(text: str) -> None:
    assert not has_code_block(text)


@pytest.mark.parametrize(
    "text",
    [
        "```python\n1 + 1\n```",  # a language tag says code
        "```\nx = compute(3)\n```",
        "```\nx = 1\n```",  # an assignment: code (tests/test_verify.py)
        "```\nab cd\n```",
        "```\nfor i in range(3): s += i\n```",
        "```\n333.33\n-111.11\n``` and then\n```\nprint(222.22)\n```",
        "```\nunclosed = fence(",
        "import numpy as np",
    ],
)
def test_code_is_code(text: str) -> None:
    assert has_code_block(text)


@needs_traces
def test_real_column_subtraction_is_not_code() -> None:
    rows = _rows("r1-distill-math.jsonl")
    [row] = [r for r in rows if r["path"] == "cots/math/problem_5749/solutions.json"]
    assert "```" in row["completion"]
    assert not has_code_block(row["completion"])
    assert not any(has_code_block(r["completion"]) for r in rows + _rows("sky-t1-aime24.jsonl"))


# ---------------------------------------------------------------- looks_truncated


@pytest.mark.parametrize(
    "reasoning",
    [
        "So the answer is 5.",
        "So the answer is 5!",
        "Is it 5?",
        "**Final Answer**\nThe value is \\boxed{88}.",
        "**Final Answer**\n\\boxed{C}",
        "Thus \\[ x = 5 \\]",
        "the product \\(xy = 25\\)",
        "Therefore $x = 5$",
        "So, m + n = 1 + 115 = 116",
        "2(lw + lh + wh) = 54 ⇒ lw + lh + wh = 27",
        "**Final Answer**",
        "The interval is [0, 1)",
        "所以答案是 5。",
        "I think that's the answer.\n\n",
        "",
    ],
)
def test_finished_reasoning_is_not_truncated(reasoning: str) -> None:
    assert not looks_truncated(reasoning)


@pytest.mark.parametrize(
    "reasoning",
    [
        "Alternatively, maybe I",
        "Let me try to solve these equations. Substitute into",
        "so we need to think in",
        "Let's see how man",
        "420 is divisible by 36",
        "Area of ABCD is AB * BC = 107 * 16",
        "Wait,",
        "From earlier:",
        "We have n1 =",
        "the radius would be \\( r = \\sqrt{11^2 - 11^2} = 0 \\",
        "If that's the case, then using the law of cosines:\n\n\\[",
        "d(t) = [ t*(cos φ + 7",
        "we get \\boxed{\\frac{1}{2}",
        "The sum is 5 and",
    ],
)
def test_cut_reasoning_is_truncated(reasoning: str) -> None:
    assert looks_truncated(reasoning)


def test_truncated_even_with_a_closing_tag() -> None:
    parts = split_reasoning("<think>So the total is 12 and the</think> \\boxed{12}")
    assert parts.finished and looks_truncated(parts.reasoning or "")


@needs_traces
def test_no_normally_closed_real_trace_is_flagged() -> None:
    """144 R1-Distill rows and 51 Sky-T1 rows close their reasoning normally: none may be flagged."""
    closed = []
    for name in ("r1-distill-math.jsonl", "sky-t1-aime24.jsonl"):
        for row in _rows(name):
            parts = split_reasoning(row["completion"])
            if parts.finished:
                closed.append((name, row["path"], parts.reasoning))
    assert len(closed) == 144 + 51
    flagged = [(name, path) for name, path, reasoning in closed if looks_truncated(reasoning or "")]
    assert flagged == []


@needs_traces
def test_real_traces_cut_by_length_are_flagged() -> None:
    """All 9 unclosed R1-Distill rows are flagged; 47 of the 49 unclosed Sky-T1 rows. The two that are not
    cannot be told from a finished sentence: row 67 ends on a closing formula ("Wait, no, \\(n < 1\\)"),
    row 68 on a full stop ("..., so total 11 subsets.")."""
    r1 = [split_reasoning(r["completion"]) for r in _rows("r1-distill-math.jsonl")]
    r1_cut = [p for p in r1 if not p.finished]
    assert len(r1_cut) == 9 and all(looks_truncated(p.reasoning or "") for p in r1_cut)

    sky = [split_reasoning(r["completion"]) for r in _rows("sky-t1-aime24.jsonl")]
    cut = [i for i, p in enumerate(sky) if not p.finished]
    assert len(cut) == 49
    missed = [i for i in cut if not looks_truncated(sky[i].reasoning or "")]
    assert missed == [67, 68]
    assert (sky[67].reasoning or "").endswith("\\(n < 1\\)")
    assert (sky[68].reasoning or "").endswith("so total 11 subsets.")


# ---------------------------------------------------------------- leftover special tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 5.<|im_end|>", ["<|im_end|>"]),
        ("x<|endoftext|>y<|im_start|>assistant", ["<|endoftext|>", "<|im_start|>"]),
        ("done<｜end▁of▁sentence｜>", ["<｜end▁of▁sentence｜>"]),
        ("<｜Assistant｜>hi<|eot_id|>", ["<｜Assistant｜>", "<|eot_id|>"]),
        ("a</s>b [INST] c <end_of_turn>", ["</s>", "[INST]", "<end_of_turn>"]),
        ("<|im_end|><|im_end|>", ["<|im_end|>"]),
        ("<think>a</think> |x| < |y| and a<b>c", []),
        ("", []),
    ],
)
def test_leftover_special_tokens(text: str, expected: list[str]) -> None:
    assert leftover_special_tokens(text) == expected


def test_leftover_special_tokens_ignore() -> None:
    text = "<|begin_of_thought|>a<|end_of_thought|><|im_end|>"
    assert leftover_special_tokens(text, ignore=("<|begin_of_thought|>", "<|end_of_thought|>")) == ["<|im_end|>"]


@needs_traces
def test_real_traces_have_no_leftover_tokens_once_split() -> None:
    for name in ("r1-distill-math.jsonl", "sky-t1-aime24.jsonl"):
        for row in _rows(name):
            parts = split_reasoning(row["completion"])
            assert leftover_special_tokens(parts.answer) == [], row["path"]
            assert leftover_special_tokens(parts.reasoning or "") == [], row["path"]
