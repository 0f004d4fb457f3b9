"""Answers as people write them: units, spacing commands, currency, percent, CJK counters, locale number
formats (the problem's language decides), several boxes as one answer, the Minerva "Final Answer" line, and
AIME equations.

Every case runs through the in-process path (verify_completion) AND the worker-pool path (verify_batch with
``languages=``): the two must agree.
"""

from __future__ import annotations

import json

import pytest

from distill.verify import VerifySettings, verify_batch, verify_completion
from distill.verify.normalize import comparable_form, language_family, localize_number, strip_units

MINERVA = "So the price is $7.78$.\nFinal Answer: The final answer is $7.78$. I hope it is correct."

# (id, completion, gold, expected status, options); options may hold "language" (the problem's language).
# fmt: off
CASES: list[tuple[str, str, str, str, dict]] = [
    # --- units and spacing commands
    ("unit-thin-h", r"\boxed{48\,h}", "48", "correct", {}),
    ("unit-thin-h-wrong", r"\boxed{48\,h}", "47", "incorrect", {}),
    ("unit-text-usd", r"\boxed{57\,500\,\text{US-Dollar}}", "57500", "correct", {}),
    ("unit-text-usd-wrong", r"\boxed{57\,500\,\text{US-Dollar}}", "5750", "incorrect", {}),
    ("unit-text-cm", r"\boxed{5\text{ cm}}", "5", "correct", {}),
    ("unit-word-inches", r"\boxed{10 inches}", "10", "correct", {}),
    ("unit-square-cm", r"\boxed{16\ \text{cm}^2}", "16", "correct", {}),
    ("unit-mathrm-speed", r"\boxed{5\,\mathrm{m/s}}", "5", "correct", {}),
    ("unit-after-fraction", r"\boxed{\frac{1}{2}\text{ km}}", "0.5", "correct", {}),
    ("unit-on-gold-side", r"\boxed{12}", r"12\text{ cm}", "correct", {}),
    ("unit-letter-needs-spacing", r"\boxed{5 x}", "5", "incorrect", {}),
    ("spacing-bang-groups", r"\boxed{1\!000}", "1000", "correct", {}),
    ("spacing-semicolon-groups", r"\boxed{2\;500}", "2500", "correct", {}),
    ("spacing-backslash-space", r"\boxed{3\ 000\ 000}", "3000000", "correct", {}),
    ("spaced-groups", r"\boxed{57 500}", "57500", "correct", {}),
    ("spaced-groups-wrong", r"\boxed{57 500}", "57000", "incorrect", {}),
    ("math-thousands-gold", r"\boxed{\dfrac{1}{29322216}}", r"\dfrac{1}{29,\!322,\!216}", "correct", {}),
    # --- currency before or after
    ("euro-after", r"\boxed{77\,€}", "77", "correct", {}),
    ("euro-before", r"\boxed{€77}", "77", "correct", {}),
    ("euro-wrong", r"\boxed{€78}", "77", "incorrect", {}),
    ("dollar-escaped", r"It costs $\boxed{\$5}$.", "5", "correct", {}),
    ("usd-code-text", r"\boxed{5\text{ USD}}", "5", "correct", {}),
    ("dollar-thousands-en", r"\boxed{\$8,000}", "8000", "correct", {"language": "en"}),
    # --- percent (math-verify reads 60\% as 60 and as 0.6)
    ("percent-thin", r"\boxed{60\,\%}", "60", "correct", {}),
    ("percent-as-fraction", r"\boxed{60\,\%}", "0.6", "correct", {}),
    ("percent-wrong", r"\boxed{60\,\%}", "61", "incorrect", {}),
    ("percent-fullwidth", "\\boxed{60％}", "60", "correct", {}),
    # --- CJK counters and units
    ("cjk-people", "所以共有 \\boxed{250人}。", "250", "correct", {}),
    ("cjk-counter", "\\boxed{3个}", "3", "correct", {}),
    ("cjk-yuan", "\\boxed{12元}", "12", "correct", {}),
    ("cjk-wrong", "\\boxed{250人}", "25", "incorrect", {}),
    # --- decimal commas and thousands separators: the language decides
    ("de-decimal-comma", r"\boxed{16,00}", "16", "correct", {"language": "de"}),
    ("de-decimal-comma-half", r"\boxed{3,5}", "3.5", "correct", {"language": "de"}),
    ("de-dot-thousands", r"\boxed{8.000}", "8000", "correct", {"language": "de"}),
    ("de-dot-not-eight", r"\boxed{8.000}", "8", "incorrect", {"language": "de"}),
    ("en-dot-decimal", r"\boxed{8.000}", "8", "correct", {"language": "en"}),
    ("en-dot-not-thousands", r"\boxed{8.000}", "8000", "incorrect", {"language": "en"}),
    ("en-comma-thousands", r"\boxed{1,000}", "1000", "correct", {"language": "en"}),
    ("en-comma-list-untouched", r"\boxed{3,5}", "3.5", "incorrect", {"language": "en"}),
    ("fr-comma-decimal", r"\boxed{1,000}", "1", "correct", {"language": "fr"}),
    ("fr-comma-not-thousands", r"\boxed{1,000}", "1000", "incorrect", {"language": "fr"}),
    ("de-region-tag", r"\boxed{16,00\,\text{Euro}}", "16", "correct", {"language": "de-DE"}),
    ("de-latex-comma", r"\boxed{16{,}00}", "16", "correct", {"language": "de"}),
    ("es-gold-in-locale", r"\boxed{2.5}", "2,5", "correct", {"language": "es"}),
    ("ru-thin-space-and-comma", r"\boxed{12\,345,6}", "12345.6", "correct", {"language": "ru"}),
    ("no-language-comma-untouched", r"\boxed{16,00}", "16", "incorrect", {}),
    ("no-language-dot-decimal", r"\boxed{8.000}", "8", "correct", {}),
    ("unknown-language-ambiguous", r"\boxed{8.000}", "8000", "incorrect", {"language": "xx"}),
    ("mixed-separators-de-style", r"\boxed{1.234,56}", "1234.56", "correct", {}),
    ("mixed-separators-en-style", r"\boxed{1,234.56}", "1234.56", "correct", {}),
    ("repeated-dots", r"\boxed{1.234.567}", "1234567", "correct", {}),
    ("de-tuple-untouched", r"\boxed{(1,5)}", "(1,5)", "correct", {"language": "de"}),
    # --- several boxes are one answer
    ("boxes-set", r"The solutions are $\boxed{1}, \boxed{2}, \boxed{3}$.", "{1,2,3}", "correct", {}),
    ("boxes-list", r"\boxed{1}, \boxed{2}, \boxed{3}", "1, 2, 3", "correct", {}),
    ("boxes-and", r"The solutions are \boxed{81} and \boxed{256}.", "81, 256", "correct", {}),
    ("boxes-order-free", r"$\boxed{3}$ and $\boxed{1}$ and $\boxed{2}$", r"\{1,2,3\}", "correct", {}),
    ("boxes-missing-one", r"\boxed{1}, \boxed{2}", "1, 2, 3", "incorrect", {}),
    ("boxes-words-between", r"first \boxed{3}, corrected: \boxed{5}", "3, 5", "incorrect", {}),
    ("boxes-aime-repeat", r"\boxed{25} \boxed{25}", "025", "correct", {"mode": "aime"}),
    # --- Minerva / lm-eval "Final Answer" line
    ("minerva-final-answer", MINERVA, "7.78", "correct", {"fallback": True}),
    ("minerva-wrong", MINERVA, "7.79", "incorrect", {"fallback": True}),
    ("minerva-no-fallback", MINERVA, "7.78", "no_answer", {}),
    ("minerva-aime", "Final Answer: The final answer is $204$. I hope it is correct.", "204", "correct",
     {"mode": "aime", "fallback": True}),
    # --- AIME: an equation counts only when one side names the quantity
    ("aime-eq-var", r"\boxed{x = 25}", "025", "correct", {"mode": "aime"}),
    ("aime-eq-coefficient", r"\boxed{2x = 25}", "025", "incorrect", {"mode": "aime"}),
    ("aime-eq-reversed", r"\boxed{25 = x}", "25", "correct", {"mode": "aime"}),
    ("aime-eq-square", r"\boxed{x^2 = 25}", "25", "incorrect", {"mode": "aime"}),
    ("aime-eq-sum-of-names", r"\boxed{m + n = 116}", "116", "correct", {"mode": "aime"}),
    ("aime-eq-segment", r"\boxed{AB = 25}", "25", "correct", {"mode": "aime"}),
    ("aime-eq-numbers-only", r"\boxed{1 + 115 = 116}", "116", "incorrect", {"mode": "aime"}),
    ("aime-unit-minutes", r"\boxed{204 \text{ minutes}}", "204", "correct", {"mode": "aime"}),
    ("aime-dollars", r"\boxed{\$50}", "50", "correct", {"mode": "aime"}),
]
# fmt: on


def test_table_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES), "case ids must be unique"
    assert {c[3] for c in CASES} >= {"correct", "incorrect"}


@pytest.mark.parametrize(
    ("completion", "gold", "expected", "options"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_case_in_process(completion: str, gold: str, expected: str, options: dict) -> None:
    verdict = verify_completion(completion, gold, **options)
    assert verdict.status == expected, verdict
    assert verdict.gold == gold  # the verdict keeps the gold as written


def test_cases_through_the_pool_agree() -> None:
    """The table through verify_batch's worker processes, one batch per mode/fallback, languages per item."""
    groups: dict[str, list[tuple[str, str, str, str, dict]]] = {}
    for case in CASES:
        key = {k: v for k, v in case[4].items() if k != "language"}
        groups.setdefault(json.dumps(key, sort_keys=True), []).append(case)
    for key, cases in groups.items():
        verdicts = verify_batch([c[1] for c in cases], [c[2] for c in cases],
                                VerifySettings(workers=2, **json.loads(key)),
                                languages=[c[4].get("language") for c in cases])
        assert [v.status for v in verdicts] == [c[3] for c in cases], [c[0] for c in cases]
        assert [v.gold for v in verdicts] == [c[2] for c in cases]


def test_verdict_keeps_the_answer_as_written() -> None:
    [verdict] = verify_batch([r"\boxed{16,00\,\text{Euro}}"], ["16"], VerifySettings(workers=0), languages=["de"])
    assert verdict.correct and verdict.extracted == r"16,00\,\text{Euro}"


def test_languages_must_match_the_batch() -> None:
    with pytest.raises(ValueError, match="languages"):
        verify_batch([r"\boxed{1}"] * 2, ["1"] * 2, VerifySettings(workers=0), languages=["de"])
    # one language for all
    verdicts = verify_batch([r"\boxed{8.000}"] * 2, ["8000"] * 2, VerifySettings(workers=0), languages="de")
    assert all(v.correct for v in verdicts)


@pytest.mark.parametrize(
    ("answer", "language", "expected"),
    [
        ("16,00", "de", "16.00"),
        ("8.000", "de", "8000"),
        ("8.000", "en", "8.000"),
        ("8.000", None, "8.000"),
        ("1,000", "en", "1000"),
        ("1,000", "pt-BR", "1.000"),
        ("1,000", None, "1,000"),
        ("1000,5", "en", "1000,5"),
        ("1,234,567", None, "1234567"),
        ("1.234,5", "en", "1234.5"),
        ("-3,5", "it", "-3.5"),
        ("1.2.3", "de", "1.2.3"),  # not a number in any locale: unchanged
        ("x = 3,5", "de", "x = 3,5"),  # only bare numbers
        ("3,", "de", "3,"),
    ],
)
def test_localize_number(answer: str, language: str | None, expected: str) -> None:
    assert localize_number(answer, language) == expected


def test_language_families() -> None:
    assert [language_family(x) for x in ("de", "FR", "es_MX", "ru", "pt-BR", "en-US", "zh", "ja", None, "")] == [
        "comma", "comma", "comma", "comma", "comma", "dot", "dot", "dot", None, None]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (r"57\,500\,\text{US-Dollar}", "57500"),
        (r"77\,€", "77"),
        ("€77", "77"),
        ("$5", "5"),
        (r"-\$5", "-5"),
        ("USD 5", "5"),
        (r"60\,\%", r"60\%"),
        ("250人", "250"),
        ("3个", "3"),
        (r"48\,h", "48"),
        ("48 h", "48 h"),  # may be 48 times h
        (r"4\sqrt{2} square units", r"4\sqrt{2}"),
        ("5 or more", "5 or more"),
        (r"\text{Evelyn}", r"\text{Evelyn}"),
        (r"x \text{ cm}", r"x \text{ cm}"),
        (r"6 \text{ and } 7", r"6 \text{ and } 7"),
        ("1 + i", "1 + i"),
        (r"45^\circ", r"45^\circ"),
    ],
)
def test_strip_units(answer: str, expected: str) -> None:
    assert strip_units(answer) == expected


def test_comparable_form_is_idempotent() -> None:
    for case in CASES:
        lang = case[4].get("language")
        once = comparable_form(case[2], lang)
        assert comparable_form(once, lang) == once, case[0]
