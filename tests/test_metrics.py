"""Tests for distill.metrics: exact values, properties (hypothesis), and refusal to score missing samples."""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill.metrics import (
    bootstrap_ci,
    cons_at_k,
    group_answers,
    majority_vote,
    pass1_mean_stderr,
    pass_at_k,
    score_samples,
)
from distill.verify import Verdict, answers_equivalent

flags_strategy = st.lists(st.booleans(), min_size=1, max_size=24)


def _brute_pass_at_k(flags: list[bool], k: int) -> float:
    """Share of all k-subsets of the samples that contain a correct one (the definition)."""
    subsets = list(combinations(range(len(flags)), k))
    return sum(any(flags[i] for i in s) for s in subsets) / len(subsets)


# ---------------------------------------------------------------- pass@k


def test_pass_at_k_exact_values() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 5, 1) == 1.0
    assert pass_at_k(5, 3, 3) == 1.0  # fewer than k wrong samples: any k-subset has a right one
    assert pass_at_k(10, 2, 5) == pytest.approx(1 - math.comb(8, 5) / math.comb(10, 5))


def test_pass_at_k_is_stable_for_large_n() -> None:
    # math.comb(1024, 512) overflows float; the product form does not
    value = pass_at_k(1024, 1, 512)
    assert value == pytest.approx(0.5)
    assert 0.0 <= pass_at_k(100_000, 3, 50_000) <= 1.0


@pytest.mark.parametrize(("n", "c", "k"), [(4, 1, 5), (4, 5, 1), (4, -1, 1), (0, 0, 1), (4, 1, 0)])
def test_pass_at_k_rejects_impossible_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_pass_at_k_rejects_non_integers() -> None:
    with pytest.raises(TypeError):
        pass_at_k(4.0, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pass_at_k(4, True, 1)


@settings(max_examples=150, deadline=None)
@given(flags=st.lists(st.booleans(), min_size=1, max_size=10), data=st.data())
def test_pass_at_k_matches_the_definition(flags: list[bool], data: st.DataObject) -> None:
    k = data.draw(st.integers(1, len(flags)))
    assert pass_at_k(len(flags), sum(flags), k) == pytest.approx(_brute_pass_at_k(flags, k), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(flags=flags_strategy)
def test_pass_at_1_is_mean_correctness(flags: list[bool]) -> None:
    assert pass_at_k(len(flags), sum(flags), 1) == sum(flags) / len(flags)


@settings(max_examples=200, deadline=None)
@given(flags=flags_strategy)
def test_pass_at_n_is_any_correct(flags: list[bool]) -> None:
    assert pass_at_k(len(flags), sum(flags), len(flags)) == (1.0 if any(flags) else 0.0)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 200), data=st.data())
def test_pass_at_k_is_monotone_in_k(n: int, data: st.DataObject) -> None:
    c = data.draw(st.integers(0, n))
    values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:], strict=False))
    assert all(0.0 <= v <= 1.0 for v in values)


# ---------------------------------------------------------------- pass@1 mean and error


def test_pass1_mean_stderr_values() -> None:
    mean, stderr = pass1_mean_stderr([[True, False], [True, True], [False, False], [True, False]])
    per = [0.5, 1.0, 0.0, 0.5]
    sd = math.sqrt(sum((p - 0.5) ** 2 for p in per) / 3)
    assert mean == 0.5
    assert stderr == pytest.approx(sd / 2)
    one_mean, one_err = pass1_mean_stderr([[True, False, True, True]])
    assert one_mean == 0.75 and math.isnan(one_err)
    with pytest.raises(ValueError, match="no samples"):
        pass1_mean_stderr([[True], []])
    with pytest.raises(ValueError, match="must be a bool"):
        pass1_mean_stderr([[True, None]])  # type: ignore[list-item]
    assert pass1_mean_stderr([[Verdict("correct", "1", "1"), Verdict("timeout", "x", "1")]])[0] == 0.5


@settings(max_examples=100, deadline=None)
@given(problems=st.lists(flags_strategy, min_size=1, max_size=12))
def test_pass1_is_mean_of_means(problems: list[list[bool]]) -> None:
    mean, _ = pass1_mean_stderr(problems)
    exact = sum(Fraction(sum(p), len(p)) for p in problems) / len(problems)
    assert mean == pytest.approx(float(exact), abs=1e-12)


# ---------------------------------------------------------------- majority vote


def test_majority_vote_tie_rule_and_none() -> None:
    assert majority_vote(["3", "5", "5", "3"]) == ("3", 0, [2, 2])  # tie: earliest group wins
    assert majority_vote(["5", "3", "3", "5"]) == ("5", 0, [2, 2])
    assert majority_vote([None, None, "7"]) == ("7", 2, [1])  # None never wins
    assert majority_vote([None, None]) == (None, None, [])
    assert majority_vote([]) == (None, None, [])
    assert group_answers(["a", None, "b", " a"]) == [[0, 3], [2]]


def test_majority_vote_with_math_equivalence() -> None:
    answers = [r"\frac{1}{2}", "0.5", "2", r"\dfrac12", "2"]
    winner, rep, sizes = majority_vote(answers, equivalent=answers_equivalent)
    assert (winner, rep, sizes) == (r"\frac{1}{2}", 0, [3, 2])
    aime = ["025", "25", "24", "24", "24"]
    assert majority_vote(aime, equivalent=lambda a, b: answers_equivalent(a, b, mode="aime")) == (
        "24",
        2,
        [2, 3],
    )


def test_cons_at_k() -> None:
    assert cons_at_k(["3", "5", "5"], [False, True, True])
    assert not cons_at_k(["3", "3", "5"], [False, False, True])
    assert not cons_at_k([None, None], [False, False])
    with pytest.raises(ValueError, match="2 answers but 3"):
        cons_at_k(["1", "2"], [True, True, False])


@settings(max_examples=150, deadline=None)
@given(
    answer=st.text(alphabet="ab1{}\\", min_size=1, max_size=5), k=st.integers(1, 16), correct=st.booleans()
)
def test_cons_on_unanimous_samples_is_their_correctness(answer: str, k: int, correct: bool) -> None:
    assert cons_at_k([answer] * k, [correct] * k) == correct


@settings(max_examples=150, deadline=None)
@given(answers=st.lists(st.one_of(st.none(), st.sampled_from("abc")), min_size=1, max_size=12))
def test_majority_winner_has_the_largest_group(answers: list[str | None]) -> None:
    winner, rep, sizes = majority_vote(answers)
    counts = {a: answers.count(a) for a in answers if a is not None}
    if not counts:
        assert (winner, rep, sizes) == (None, None, [])
        return
    assert counts[winner] == max(counts.values())
    assert answers[rep] == winner and answers.index(winner) == rep
    tied = [a for a in counts if counts[a] == counts[winner]]
    assert rep == min(answers.index(a) for a in tied)  # earliest-appearing among the tied groups
    assert sorted(sizes) == sorted(counts.values())


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_ci() -> None:
    values = [0.0, 0.25, 0.5, 1.0, 1.0, 0.75] * 5
    lo, hi = bootstrap_ci(values)
    mean = sum(values) / len(values)
    assert lo < mean < hi
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci([0.4]) == (0.4, 0.4)
    narrow = bootstrap_ci(values, alpha=0.5)
    assert lo <= narrow[0] <= narrow[1] <= hi
    for bad in ({"alpha": 0.0}, {"n_boot": 0}):
        with pytest.raises(ValueError):
            bootstrap_ci(values, **bad)
    with pytest.raises(ValueError):
        bootstrap_ci([])


# ---------------------------------------------------------------- score_samples


def _problems() -> list[dict]:
    return [
        {"id": "p1", "correct": [True, False, False, False], "answers": ["1", "2", "2", "3"]},
        {"id": "p2", "correct": [True, True, True, False], "answers": ["7", "7", "7.0", "8"]},
        {"id": "p3", "correct": [False, False, False, False], "answers": [None, "4", "4", None]},
    ]


def test_score_samples_keys_and_values() -> None:
    result = score_samples(_problems())
    assert result["n"] == 4 and result["num_problems"] == 3
    assert result["pass@1"] == pytest.approx((0.25 + 0.75 + 0.0) / 3)
    assert result["pass@4"] == pytest.approx(2 / 3)
    assert result["pass@2"] == pytest.approx((pass_at_k(4, 1, 2) + pass_at_k(4, 3, 2)) / 3)
    assert result["cons@4"] == pytest.approx(1 / 3)  # p2's majority "7" is right; p1's "2", p3's "4" are not
    assert set(result) >= {"pass@1", "pass@1_stderr", "pass@1_ci95", "pass@2", "pass@4", "cons@4"}
    lo, hi = result["pass@1_ci95"]
    assert lo <= result["pass@1"] <= hi
    assert [p["id"] for p in result["per_problem"]] == ["p1", "p2", "p3"]
    assert result["per_problem"][1]["majority_answer"] == "7"


def test_score_samples_default_ks_include_n() -> None:
    result = score_samples([{"id": 1, "correct": [True] * 6, "answers": ["1"] * 6}])
    assert [k for k in result if k.startswith("pass@") and k[5:].isdigit()] == [
        "pass@1",
        "pass@2",
        "pass@4",
        "pass@6",
    ]
    assert "cons@6" in result
    assert "cons@6" not in score_samples([{"id": 1, "correct": [True] * 6}])  # no answers: no cons


def test_score_samples_uses_equivalence_for_cons() -> None:
    problems = [{"id": "q", "correct": [True, True, False], "answers": ["0.5", r"\frac12", "3"]}]
    assert score_samples(problems)["cons@3"] == 1.0  # "0.5" wins the tie as the earliest group
    problems = [{"id": "q", "correct": [False, True, True], "answers": ["3", "0.5", r"\frac12"]}]
    assert score_samples(problems)["cons@3"] == 0.0
    assert score_samples(problems, equivalent=answers_equivalent)["cons@3"] == 1.0


def test_score_samples_refuses_missing_samples() -> None:
    problems = _problems()
    problems[1]["correct"] = problems[1]["correct"][:3]
    problems[1]["answers"] = problems[1]["answers"][:3]
    with pytest.raises(ValueError, match=r"expected 4 samples per problem, but 'p2' has 3"):
        score_samples(problems)
    with pytest.raises(ValueError, match=r"'p1' has 4"):
        score_samples(_problems(), n_expected=8)
    result = score_samples(problems, allow_missing=True)
    assert result["missing"] == [{"id": "p2", "have": 3, "expected": 4}]
    assert result["pass@1"] == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    assert "pass@4" not in result and "pass@2" in result


@pytest.mark.parametrize(
    ("problems", "message"),
    [
        ([], "no problems"),
        ([{"id": "a", "correct": [True]}, {"id": "a", "correct": [True]}], "appears twice"),
        ([{"id": "a", "answers": ["1"]}], "no 'correct'"),
        ([{"id": "a", "correct": [True], "answers": ["1", "2"]}], "2 answers but 1"),
        ([{"id": "a", "correct": [None]}], "must be a bool"),
    ],
)
def test_score_samples_input_errors(problems: list[dict], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score_samples(problems)


def test_score_samples_rejects_k_above_n() -> None:
    with pytest.raises(ValueError, match="pass@8"):
        score_samples(_problems(), ks=[1, 8])


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 8).flatmap(
        lambda n: st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=1, max_size=8)
    )
)
def test_score_samples_properties(problems: list[list[bool]]) -> None:
    n = len(problems[0])
    rows = [{"id": i, "correct": p, "answers": ["x"] * n} for i, p in enumerate(problems)]
    result = score_samples(rows, n_boot=50)
    mean = sum(sum(p) / n for p in problems) / len(problems)
    assert result["pass@1"] == pytest.approx(mean, abs=1e-12)
    assert result[f"pass@{n}"] == pytest.approx(sum(any(p) for p in problems) / len(problems))
    pass_ks = [result[f"pass@{k}"] for k in [k for k in (1, 2, 4, 8) if k <= n] + [n]]
    assert all(a <= b + 1e-12 for a, b in zip(pass_ks, pass_ks[1:], strict=False))
    # all answers are the same "x": cons@n is each problem's first sample's correctness
    assert result[f"cons@{n}"] == pytest.approx(sum(p[0] for p in problems) / len(problems))
