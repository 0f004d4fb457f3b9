"""Table-driven correctness cases for distill.verify, and checks against the real eval answer files.

Every case runs through the in-process path (verify_completion) AND the worker-pool path
(verify_batch, workers=2): the two must agree, so the GRPO reward, the filter and the eval see one truth.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from distill.verify import VerifySettings, normalize_aime, verify_batch, verify_completion

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real eval data not found at {DATA}")

LONG = (
    "<think>" + "Let me reconsider the sum once more. " * 5410 + "</think> So the answer is $\\boxed{204}$."
)
assert len(LONG) >= 200_000

# (id, completion, gold, expected status, options)
# fmt: off
CASES: list[tuple[str, str, str, str, dict]] = [
    # --- AIME: integers, zero padding (aime24/test.jsonl pads: "025", "073", ...)
    ("aime-pad-gold", r"\boxed{25}", "025", "correct", {"mode": "aime"}),
    ("aime-pad-pred", r"\boxed{025}", "25", "correct", {"mode": "aime"}),
    ("aime-pad-both", r"\boxed{073}", "073", "correct", {"mode": "aime"}),
    ("aime-sentence", r"The answer is $\boxed{73}$.", "073", "correct", {"mode": "aime"}),
    ("aime-decimal-zero", r"\boxed{73.0}", "073", "correct", {"mode": "aime"}),
    ("aime-spaces", r"\boxed{ 045 }", "45", "correct", {"mode": "aime"}),
    ("aime-text", r"\boxed{\text{33}}", "033", "correct", {"mode": "aime"}),
    ("aime-assignment", r"\boxed{n = 80}", "080", "correct", {"mode": "aime"}),
    ("aime-degrees", r"\boxed{55^\circ}", "055", "correct", {"mode": "aime"}),
    ("aime-wrong", r"\boxed{24}", "025", "incorrect", {"mode": "aime"}),
    ("aime-fraction-is-not-integer", r"\boxed{\frac{50}{2}}", "025", "incorrect", {"mode": "aime"}),
    ("aime-non-integer", r"\boxed{25.5}", "025", "incorrect", {"mode": "aime"}),
    ("aime-out-of-range", r"\boxed{1025}", "025", "incorrect", {"mode": "aime"}),
    ("aime-negative", r"\boxed{-25}", "025", "incorrect", {"mode": "aime"}),
    ("aime-expression", r"\boxed{5^2}", "025", "incorrect", {"mode": "aime"}),
    ("aime-no-box", "so it is 25", "025", "no_answer", {"mode": "aime"}),
    ("aime-fallback", "The final answer is 25.", "025", "correct", {"mode": "aime", "fallback": True}),
    ("aime-think", "<think>maybe \\boxed{24}</think> \\boxed{025}", "25", "correct", {"mode": "aime"}),
    # --- equivalent forms
    ("dfrac-vs-frac", r"\boxed{\dfrac{14}{3}}", r"\frac{14}{3}", "correct", {}),
    ("tfrac-vs-frac", r"\boxed{\tfrac{1}{2}}", r"\frac{1}{2}", "correct", {}),
    ("decimal-vs-frac", r"\boxed{0.5}", r"\frac{1}{2}", "correct", {}),
    ("frac-vs-decimal", r"\boxed{\frac12}", "0.5", "correct", {}),
    ("slash-vs-frac", r"\boxed{5/4}", "1.25", "correct", {}),
    ("frac-not-rounded-decimal", r"\boxed{\frac{1}{3}}", "0.33", "incorrect", {}),
    ("int-vs-float", r"\boxed{5.0}", "5", "correct", {}),
    ("wrong-fraction", r"\boxed{\frac{14}{5}}", r"\frac{14}{3}", "incorrect", {}),
    ("nested-braces", r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt3}{2}", "correct", {}),
    ("rationalised", r"\boxed{\dfrac{\sqrt{3}}{3}}", r"\frac{1}{\sqrt3}", "correct", {}),
    ("sqrt-simplified", r"\boxed{3\sqrt{13}}", r"\sqrt{117}", "correct", {}),
    ("sqrt-no-braces", r"\boxed{11\sqrt{2}}", r"11\sqrt2", "correct", {}),
    ("pi", r"\boxed{\pi}", r"\pi", "correct", {}),
    ("pi-approx", r"\boxed{3.14}", r"\pi", "incorrect", {}),
    ("expression-order", r"\boxed{b+a}", "a+b", "correct", {}),
    ("expression-wrong", r"\boxed{q-p}", "p - q", "incorrect", {}),
    ("polynomial", r"\boxed{x^5-x^4+x^3-x^2+x-1}", "x^5 - x^4 + x^3 - x^2 + x - 1", "correct", {}),
    ("complex", r"\boxed{6-5i}", "6 - 5i", "correct", {}),
    ("degrees", r"\boxed{90}", r"90^\circ", "correct", {}),
    ("thousands-comma", r"\boxed{1,000}", "1000", "correct", {}),
    ("dollars", r"\boxed{\$18.90}", "18.90", "correct", {}),
    ("equation-vs-value", r"\boxed{x=5}", "5", "correct", {}),
    ("matrix",
     r"\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}", r"\begin{pmatrix}1\\2\end{pmatrix}", "correct", {}),
    # --- sets, tuples, intervals
    ("set-order", r"\boxed{\{2,1\}}", r"\{1,2\}", "correct", {}),
    ("list-order", r"\boxed{-2, 1}", "1,-2", "correct", {}),
    ("list-three", r"\boxed{7, 5, 3}", "3, 5, 7", "correct", {}),
    ("list-wrong", r"\boxed{3, 5}", "3, 5, 7", "incorrect", {}),
    ("tuple-left-right", r"\boxed{(3, \frac{\pi}{2})}", r"\left( 3, \frac{\pi}{2} \right)", "correct", {}),
    ("tuple-wrong-order", r"\boxed{(\frac{\pi}{2}, 3)}", r"\left( 3, \frac{\pi}{2} \right)", "incorrect", {}),
    ("interval", r"\boxed{[0, 1)}", "[0,1)", "correct", {}),
    ("interval-wrong-ends", r"\boxed{(0,1]}", "[0,1)", "incorrect", {}),
    ("interval-membership", r"\boxed{x \in [2, 5)}", "[2,5)", "correct", {}),
    # --- text answers
    ("text-answer", r"\boxed{\text{Evelyn}}", r"\text{Evelyn}", "correct", {}),
    ("text-bare", r"\boxed{Evelyn}", r"\text{Evelyn}", "correct", {}),
    ("choice-letter", r"\boxed{C}", r"\text{(C)}", "correct", {}),
    ("base-subscript", r"\boxed{52_8}", "52_8", "correct", {}),
    ("base-subscript-wrong", r"\boxed{42_8}", "52_8", "incorrect", {}),
    # --- unicode
    ("unicode-half", r"\boxed{½}", r"\frac12", "correct", {}),
    ("unicode-sqrt", r"\boxed{√2}", r"\sqrt2", "correct", {}),
    ("unicode-minus", r"\boxed{−3}", "-3", "correct", {}),
    ("unicode-pi", r"\boxed{π}", r"\pi", "correct", {}),
    ("unicode-infinity", r"\boxed{∞}", r"\infty", "correct", {}),
    ("unicode-text-around", "所以答案是 \\boxed{5}。", "5", "correct", {}),
    # --- extraction: boxes, braces, fallbacks
    ("last-box-wins", r"first \boxed{3}, corrected: \boxed{5}", "5", "correct", {}),
    ("last-box-wins-not-first", r"first \boxed{3}, corrected: \boxed{5}", "3", "incorrect", {}),
    ("fbox", r"\fbox{12}", "12", "correct", {}),
    ("boxed-space-form", r"so $\boxed 5$", "5", "correct", {}),
    ("boxed-in-boxed", r"\boxed{\boxed{5}}", "5", "correct", {}),
    ("trailing-period", r"\boxed{5.}", "5", "correct", {}),
    ("unbalanced", r"\boxed{\frac{1}{2}", r"\frac12", "no_answer", {}),
    ("last-unbalanced-earlier-ok", r"\boxed{5} hmm, \boxed{6", "5", "no_answer", {}),
    ("empty-box", r"\boxed{}", "5", "no_answer", {}),
    ("empty-text", "", "5", "no_answer", {}),
    ("no-fallback-by-default", "The final answer is 5.", "5", "no_answer", {}),
    ("fallback-sentence", "The final answer is 5.", "5", "correct", {"fallback": True}),
    ("fallback-markdown", r"**Answer:** $\frac{3}{56}$", r"\frac{3}{56}", "correct", {"fallback": True}),
    ("answer-tag", "<think>r</think> <answer>\\frac{1}{2}</answer>", "0.5", "correct", {}),
    # --- think handling
    ("after-think-only", "<think>\\boxed{3}</think> The answer is \\boxed{5}.", "5", "correct", {}),
    ("after-think-only-not-cot", "<think>\\boxed{3}</think> The answer is \\boxed{5}.", "3", "incorrect", {}),
    ("box-only-in-think", "<think>it is \\boxed{5}</think> I am not sure.", "5", "no_answer", {}),
    ("unfinished", "<think>so the answer is \\boxed{5}", "5", "unfinished", {}),
    ("prefilled-finished", "reasoning</think> \\boxed{5}", "5", "correct", {"prompt_has_think": True}),
    ("prefilled-unfinished", "reasoning \\boxed{5}", "5", "unfinished", {"prompt_has_think": True}),
    ("optional-unclosed", "<think>so \\boxed{5}", "5", "correct", {"think": "optional"}),
    ("required-no-tags", "\\boxed{5}", "5", "unfinished", {"think": "required"}),
    ("auto-no-tags", "\\boxed{5}", "5", "correct", {}),
    ("long-200k", LONG, "204", "correct", {}),
    ("long-200k-aime", LONG, "204", "correct", {"mode": "aime"}),
]
# fmt: on


def test_table_is_big_enough() -> None:
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize(
    ("completion", "gold", "expected", "options"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_case_in_process(completion: str, gold: str, expected: str, options: dict) -> None:
    verdict = verify_completion(completion, gold, **options)
    assert verdict.status == expected, verdict
    assert verdict.correct == (expected == "correct")


def test_cases_through_the_pool_agree() -> None:
    """The same table through verify_batch's worker processes, grouped by options: identical statuses."""
    groups: dict[str, list[tuple[str, str, str, str, dict]]] = {}
    for case in CASES:
        groups.setdefault(json.dumps(case[4], sort_keys=True), []).append(case)
    for key, cases in groups.items():
        options = json.loads(key)
        prompt_has_think = options.pop("prompt_has_think", False)
        verdicts = verify_batch([c[1] for c in cases], [c[2] for c in cases], VerifySettings(workers=2, **options),
                                prompt_has_think=prompt_has_think)
        assert [v.status for v in verdicts] == [c[3] for c in cases], [c[0] for c in cases]


# ---------------------------------------------------------------- real answer files


def _answers(relpath: str) -> list[str]:
    with open(DATA / relpath, encoding="utf-8") as f:
        return [str(json.loads(line)["answer"]) for line in f if line.strip()]


@needs_data
def test_aime24_padded_and_unpadded_copies_agree() -> None:
    padded = _answers("aime24/test.jsonl")
    plain = _answers("aime24/gair_test2024.jsonl")
    assert len(padded) == len(plain) == 30
    assert any(a.startswith("0") for a in padded), "expected zero-padded answers in the Qwen copy"
    assert [normalize_aime(a) for a in padded] == [normalize_aime(a) for a in plain]
    for mode in ("aime", "math"):
        verdicts = verify_batch([f"\\boxed{{{a}}}" for a in plain], padded, VerifySettings(mode=mode, workers=0))
        assert all(v.correct for v in verdicts), (mode, [v for v in verdicts if not v.correct])
        verdicts = verify_batch([f"\\boxed{{{a}}}" for a in padded], plain, VerifySettings(mode=mode, workers=0))
        assert all(v.correct for v in verdicts), (mode, [v for v in verdicts if not v.correct])


@needs_data
@pytest.mark.parametrize("relpath", ["aime24/test.jsonl", "aime24/gair_test2024.jsonl", "aime25/test.jsonl"])
def test_aime_answers_are_integers_and_off_by_one_is_wrong(relpath: str) -> None:
    golds = _answers(relpath)
    assert all(normalize_aime(g) is not None for g in golds)
    wrong = [f"The answer is $\\boxed{{{(int(g) + 1) % 1000}}}$." for g in golds]
    assert not any(v.correct for v in verify_batch(wrong, golds, VerifySettings(mode="aime", workers=0)))


_FRAC_RE = re.compile(r"^\\frac\{(\d+)\}\{(\d+)\}$")


def _reformat(gold: str) -> str | None:
    """An equivalent spelling of a MATH-500 answer that is NOT textually equal (so math-verify decides)."""
    if re.fullmatch(r"-?\d+", gold):
        return gold + ".0"
    m = _FRAC_RE.match(gold)
    if m:
        return f"{m.group(1)}/{m.group(2)}"
    if gold.startswith("\\frac") or gold.startswith("\\sqrt"):
        return "1 \\cdot " + gold
    return None


@needs_data
def test_math500_gold_answers_verify_against_themselves_and_not_others() -> None:
    golds = _answers("math500/test.jsonl")
    assert len(golds) == 500
    same = verify_batch(
        [f"<think>ok</think> The answer is $\\boxed{{{g}}}$." for g in golds], golds, VerifySettings(workers=2)
    )
    assert all(v.correct for v in same), [v for v in same if not v.correct][:5]

    pairs = [(r, g) for g in golds if (r := _reformat(g)) is not None]
    assert len(pairs) > 150
    reformatted = verify_batch([f"\\boxed{{{r}}}" for r, _ in pairs], [g for _, g in pairs], VerifySettings(workers=2))
    assert all(v.correct for v in reformatted), [v for v in reformatted if not v.correct][:5]

    # A gold against the next problem's gold (every other problem, to keep this quick): nothing may pass
    # except genuinely equal values.
    subset = golds[::2]
    others = [golds[(2 * i + 1) % len(golds)] for i in range(len(subset))]
    cross = verify_batch([f"\\boxed{{{o}}}" for o in others], subset, VerifySettings(workers=2))
    accepted = {(v.extracted, v.gold) for v in cross if v.correct}
    assert accepted <= {("x=5", "5")} | {(g, g) for g in golds}, accepted
