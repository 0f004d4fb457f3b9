"""Readability checks on a chain of thought: language mixing, wall-of-text paragraphs, code, loops.

The R1 paper filters its cold-start and rejection-sampled data for "mixed languages, long paragraphs, and
code blocks", and rewards RL on language consistency ("the proportion of target language words in the
CoT"). These are the measures; thresholds belong to the filter and reward configs.

A "word" is a run of letters of one script; each Han character counts as one word (Chinese is written
without spaces). Ignored, because they belong to no language: math (``$...$``, ``\\[...\\]``, ``\\(...\\)``),
LaTeX commands (``\\frac``), numbers, fenced code, and single letters outside Han (``x``, ``a``, ``θ`` are
usually variables).
"""

from __future__ import annotations

import re

LANGUAGES = ("en", "zh")

_MATH_RE = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$|\\\[.*?\\\]|\\\(.*?\\\)", re.DOTALL)
_FENCED_RE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_COMMAND_RE = re.compile(r"\\[A-Za-z]+")
_HAN_RE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_LETTERS_RE = re.compile(r"[^\W\d_]+")
_LATIN_RE = re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]+")
_PARAGRAPH_SPLIT_RE = re.compile(r"\n[ \t\r\f\v]*\n")
_CODE_LINE_RE = re.compile(
    r"^[ \t]*(?:"
    r"def [A-Za-z_]\w*\s*\("
    r"|class [A-Za-z_]\w*\s*[(:]"
    r"|import [A-Za-z_][\w.]*(?:\s+as\s+\w+)?(?:\s*,\s*[A-Za-z_][\w.]*)*[ \t]*$"
    r"|from [A-Za-z_][\w.]* import [\w*]"
    r"|#include\s*[<\"]"
    r"|(?:int|void)\s+main\s*\("
    r"|public\s+static\s+void\s"
    r"|for [A-Za-z_]\w* in range\("
    r"|print\(.*\)[ \t]*$"
    r"|>>> "
    r"|\\begin\{(?:lstlisting|verbatim|minted)\}"
    r")",
    re.MULTILINE,
)


def _word_counts(text: str) -> tuple[int, int, int]:
    """(latin words, han characters, other-script words) with math, code and single letters removed."""
    text = _FENCED_RE.sub(" ", text)
    text = _MATH_RE.sub(" ", text)
    text = _COMMAND_RE.sub(" ", text)
    han = len(_HAN_RE.findall(text))
    if han:
        text = _HAN_RE.sub(" ", text)
    latin = other = 0
    for word in _LETTERS_RE.findall(text):
        if len(word) < 2:
            continue
        if _LATIN_RE.fullmatch(word):
            latin += 1
        else:
            other += 1
    return latin, han, other


def language_consistency(text: str, lang: str = "en") -> float:
    """Share of words in ``lang`` among all counted words, in [0, 1]; 1.0 when nothing is countable.

    ``"en"`` counts Latin-script words, ``"zh"`` Han characters.

    Example:
        >>> language_consistency("Let $x = 2$, so the answer is 4.")
        1.0
        >>> round(language_consistency("We compute 面积 then divide"), 2)  # 4 English words, 2 Han
        0.67
        >>> language_consistency("所以答案是 $5$", lang="zh")
        1.0
    """
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {LANGUAGES}, got {lang!r}")
    latin, han, other = _word_counts(text or "")
    total = latin + han + other
    if total == 0:
        return 1.0
    return (latin if lang == "en" else han) / total


def is_mixed_language(text: str, lang: str = "en", threshold: float = 0.95) -> bool:
    """Whether fewer than ``threshold`` of the words are in ``lang``.

    Example:
        >>> is_mixed_language("The sum is 12."), is_mixed_language("The 总和 is 12.")
        (False, True)
    """
    return language_consistency(text, lang) < threshold


def longest_paragraph(text: str) -> int:
    """Length in characters of the longest paragraph (paragraphs are separated by blank lines).

    Example:
        >>> longest_paragraph("short\\n\\na longer one\\n")
        12
    """
    if not text:
        return 0
    return max(len(p.strip()) for p in _PARAGRAPH_SPLIT_RE.split(text))


def has_code_block(text: str) -> bool:
    """Whether ``text`` contains a fenced code block or lines that are plainly code.

    Example:
        >>> has_code_block("```python\\nprint(1)\\n```"), has_code_block("def f(x):\\n    return x")
        (True, True)
        >>> has_code_block("We define f(x) = x^2 and import the result from step 2.")
        False
    """
    if not text:
        return False
    return "```" in text or _CODE_LINE_RE.search(text) is not None


def repetition_ratio(text: str, n: int = 10) -> float:
    """Share of word ``n``-grams that repeat an earlier one: 0 for no repetition, near 1 for a loop.

    Example:
        >>> repetition_ratio("a b c d e f", n=2)
        0.0
        >>> round(repetition_ratio("wait let me check " * 10, n=4), 2)
        0.89
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    words = (text or "").split()
    total = len(words) - n + 1
    if total <= 0:
        return 0.0
    unique = len({tuple(words[i : i + n]) for i in range(total)})
    return 1.0 - unique / total
