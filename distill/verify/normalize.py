"""Purely textual normal forms of an answer: what can be decided or cleaned up without parsing any math.

- :func:`canonical_text`: two answers with equal forms are the same LaTeX (the exact-text shortcut that
  spares math-verify most checks);
- :func:`latex_from_unicode`: common Unicode math symbols spelled as LaTeX, so math-verify can parse them.
"""

from __future__ import annotations

import re

_SPACING_RE = re.compile(r"\\[,;:! ]|\\(?:left|right|displaystyle)(?![A-Za-z])")
_WS_RE = re.compile(r"\s+")
_SPACE_NOT_BETWEEN_LETTERS_RE = re.compile(r"(?<![A-Za-z]) | (?![A-Za-z])")


def canonical_text(answer: str) -> str:
    """A purely textual normal form: two answers with equal forms are the same LaTeX.

    Drops math delimiters, spacing commands, ``\\left``/``\\right`` and whitespace (except one space
    between two letters: ``\\pi r`` is not ``\\pir``); ``\\dfrac``/``\\tfrac`` become ``\\frac``.

    Example:
        >>> canonical_text(r"$\\dfrac{1}{2}$") == canonical_text(r"\\frac{1}{2}")
        True
    """
    s = answer.strip()
    while len(s) >= 2 and s[0] == "$" and s[-1] == "$":
        s = s[1:-1].strip()
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _SPACING_RE.sub("", s)
    return _SPACE_NOT_BETWEEN_LETTERS_RE.sub("", _WS_RE.sub(" ", s).strip())


_UNICODE_LATEX = {
    "\u2212": "-",
    "\u2013": "-",
    "\u00d7": "\\times ",
    "\u22c5": "\\cdot ",
    "\u00b7": "\\cdot ",
    "\u00f7": "\\div ",
    "\u221e": "\\infty ",
    "\u2264": "\\le ",
    "\u2265": "\\ge ",
    "\u2260": "\\ne ",
    "\u00b0": "^\\circ ",
    "\u222a": "\\cup ",
    "\u2229": "\\cap ",
    "\u2208": "\\in ",
    "\u00b1": "\\pm ",
    "\u00bd": "\\frac{1}{2}",
    "\u2153": "\\frac{1}{3}",
    "\u2154": "\\frac{2}{3}",
    "\u00bc": "\\frac{1}{4}",
    "\u00be": "\\frac{3}{4}",
    "\u03c0": "\\pi ",
    "\u03b8": "\\theta ",
    "\u03b1": "\\alpha ",
    "\u03b2": "\\beta ",
    "\u00b2": "^{2}",
    "\u00b3": "^{3}",
}
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE_LATEX)))
_SQRT_RE = re.compile(r"\u221a\s*(\d+(?:\.\d+)?|[A-Za-z])")


def latex_from_unicode(answer: str) -> str:
    """Spell common Unicode math symbols as LaTeX (``½`` -> ``\\frac{1}{2}``, ``√2`` -> ``\\sqrt{2}``).

    Example:
        >>> print(latex_from_unicode("3√2×½"))
        3\\sqrt{2}\\times \\frac{1}{2}
    """
    if answer.isascii():
        return answer
    answer = _SQRT_RE.sub(lambda m: "\\sqrt{" + m.group(1) + "}", answer)
    answer = answer.replace("\u221a", "\\sqrt")
    return _UNICODE_RE.sub(lambda m: _UNICODE_LATEX[m.group(0)], answer)
