"""Language consistency with a language identifier (distill.verify.language): words, math, targets, real traces."""

from __future__ import annotations

import json

import pytest

from distill.verify.language import (
    SUPPORTED,
    detect_language,
    language_consistency,
    letters_only,
    paragraph_consistency,
)

SPANISH = ("Primero, observemos que la suma de los ángulos interiores de un triángulo es ciento ochenta grados. "
           "Entonces el ángulo que falta mide cuarenta grados. Por lo tanto, la respuesta es cuarenta.")
FRENCH = ("Tout d'abord, remarquons que la somme des angles d'un triangle vaut cent quatre-vingts degrés. "
          "Donc l'angle manquant mesure quarante degrés. Par conséquent, la réponse est quarante.")
ENGLISH = ("First, note that the angles of a triangle add up to one hundred eighty degrees. "
           "So the missing angle measures forty degrees. Therefore, the answer is forty.")
JAPANESE = ("まず、1から10までの整数を順番に足していきます。公式を使うと、和は10×11÷2で55になります。"
            "したがって、答えは55です。")
CHINESE = "首先我们把一到十的整数加起来。用公式可以得到和是五十五。所以答案是五十五。"


def test_supported_codes_are_the_identifiers_labels() -> None:
    from distill.verify.language import _detector

    labels = {r["lang"] for r in _detector().detect("a", model="lite", k=-1, threshold=-1.0)}
    assert labels == set(SUPPORTED) and len(SUPPORTED) == 176


@pytest.mark.parametrize("text", [
    "Starting with x₀ = -1.",
    "So x² + 2x + 1 = (x + 1)², and a₁ = 2 while aₙ = 3aₙ₋₁ + 1.",
    "Multiply both sides by πx, then sinθ = 3/5 and Δt = 0.1 so v = Δx/Δt.",
    "Thus BC² = AB² + AC², the angle is 30°, tanθ = 1/√3 and 12 × 7 ÷ 4 = 21.",
    "Since ω³ = 1 we get ω² + ω + 1 = 0, so kπ and 2πr ≈ 18.85 cm.",
    "The sum is $\\sum_{k=1}^n k = \\frac{n(n+1)}{2}$ and \\[x^2\\] is fine.",
    "We check it in code:\n```python\nprint(sum(range(10)))\n```\nThe result holds.",
])
def test_plain_text_math_is_no_word(text: str) -> None:
    assert language_consistency(text, "en") == 1.0


def test_the_words_left_after_math() -> None:
    assert letters_only("Starting with x₀ = -1.") == "Starting with"
    assert letters_only("Then sinθ = 3/5, f(x) = 2x and BC² + AB > πx.") == "Then and"
    assert letters_only("The non-negative solutions of ABC") == "The nonnegative solutions of"


def test_spanish_and_french_are_not_english() -> None:
    for text, code in ((SPANISH, "es"), (FRENCH, "fr")):
        assert language_consistency(text, "en") < 0.1
        assert language_consistency(text, code) > 0.9
        assert detect_language(text) == code
    assert language_consistency(ENGLISH, "en") == 1.0
    assert language_consistency(ENGLISH, "es") == 0.0


def test_a_spanish_paragraph_in_english_reasoning() -> None:
    overall, lowest = paragraph_consistency(f"{ENGLISH}\n\n{SPANISH}\n\n{ENGLISH} {ENGLISH}", "en")
    assert 0.6 < overall < 0.9 and lowest < 0.1


def test_japanese_can_be_targeted() -> None:
    assert language_consistency(JAPANESE, "ja") == 1.0   # kana and kanji: Japanese
    assert language_consistency(JAPANESE, "zh") == 0.0
    assert language_consistency(CHINESE, "zh") == 1.0
    assert language_consistency(CHINESE, "ja") < 0.5
    assert detect_language(JAPANESE) == "ja" and detect_language(CHINESE) == "zh"
    problem = "1から10までの整数の和を求めなさい。"
    assert language_consistency(JAPANESE, "auto", problem=problem) == 1.0


def test_russian_question_russian_reasoning_under_auto() -> None:
    problem = "Найдите сумму всех натуральных чисел n, для которых n² + 1 делится на n + 1."
    reasoning = ("Заметим, что n² + 1 = (n + 1)(n − 1) + 2. Значит, число n + 1 должно делить 2, поэтому n = 1. "
                 "Проверим: 1² + 1 = 2 делится на 2. Ответ: 1.")
    assert detect_language(problem) == "ru"
    assert language_consistency(reasoning, "auto", problem=problem) == 1.0
    assert language_consistency(ENGLISH, "auto", problem=problem) == 0.0
    assert language_consistency(reasoning, "en") == 0.0


@pytest.mark.parametrize(("problem", "reasoning", "code"), [
    ("จงหาผลบวกของจำนวนเต็มบวกทั้งหมดที่น้อยกว่า 10",
     "เราต้องบวกจำนวนตั้งแต่ 1 ถึง 9 ผลบวกคือ 45 ดังนั้นคำตอบคือ 45", "th"),
    ("১ থেকে ১০ পর্যন্ত সব সংখ্যার যোগফল কত?",
     "আমরা জানি যে প্রথম n টি স্বাভাবিক সংখ্যার যোগফল n(n+1)/2। সুতরাং উত্তর হলো ৫৫।", "bn"),
])
def test_reasoning_in_the_questions_language_passes_under_auto(problem: str, reasoning: str, code: str) -> None:
    assert detect_language(problem) == code
    assert language_consistency(reasoning, "auto", problem=problem) == 1.0
    assert language_consistency(reasoning, "en") == 0.0


def test_mixed_chinese_and_english_scores_in_between() -> None:
    text = "首先我们计算面积。Then we divide the total by two to get the answer. 所以答案是六。"
    assert language_consistency(text, "en") == pytest.approx(11 / 25)   # 11 English words, 14 Han characters
    assert language_consistency(text, "zh") == pytest.approx(14 / 25)


def test_a_quoted_problem_does_not_count_against_the_trace() -> None:
    problem = "Calcule el área del triángulo cuya base mide cuatro y cuya altura mide tres."
    trace = (f'The problem says: "{problem}" So we need the area of a triangle with base four and height three. '
             "The area is half the base times the height, which gives six.")
    assert language_consistency(trace, "en", problem=problem) == 1.0
    assert language_consistency(trace, "en") < 0.8
    zh_problem = "求三角形的面积，底边为四，高为三。"
    assert language_consistency(f"We must {zh_problem[:8]} here: half of four times three is six.", "en",
                                problem=zh_problem) == 1.0


def test_unknown_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        language_consistency("text", "xx")
    from distill.stages.filter.config import FilterConfig

    assert FilterConfig().language == "auto" and FilterConfig(language="ja").language == "ja"
    with pytest.raises(ValueError, match="language must be 'auto' or a code"):
        FilterConfig(language="english")


def test_reward_uses_the_problem_under_auto() -> None:
    from distill.rewards import make_language_consistency_reward

    reward = make_language_consistency_reward(lang="auto")
    ru = "Найдите сумму всех делителей числа двенадцать."
    out = reward([f"<think>{ENGLISH}</think> 28", "<think>Сумма делителей равна двадцати восьми.</think> 28"],
                 problem=[ru, ru])
    assert out == [0.0, 1.0]
    assert make_language_consistency_reward(lang="es")([f"<think>{SPANISH}</think>"])[0] > 0.9


def test_real_r1_traces_pass_the_filters_language_thresholds(shared_data) -> None:
    """English reasoning throughout, full of plain-text math (x², a₁, sinθ): none may be dropped for language."""
    from distill.stages.filter.config import FilterConfig
    from distill.stages.filter.rules import FilterContext, readability
    from distill.stages.filter.trace import prepare

    cfg = FilterConfig()
    rows = [json.loads(line) for line in
            (shared_data / "real-traces" / "r1-distill-math.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 153
    ctx = FilterContext(cfg)
    for i, row in enumerate(rows):
        overall, lowest = paragraph_consistency(row["completion"], cfg.language, problem=row["problem"])
        assert overall >= cfg.min_language_consistency, (i, overall)
        assert lowest >= cfg.min_paragraph_language_consistency, (i, lowest)
        t = prepare({**row, "id": str(i), "finish_reason": "stop"}, index=i, folder="real")
        assert readability(t, ctx) not in ("language_consistency", "mixed_language"), i
