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


# ---------------------------------------------------------------- answers as people write them

# Languages that write a decimal comma (primary subtag): "3,5" is three and a half, "8.000" is eight thousand.
COMMA_DECIMAL = frozenset(
    "de fr es it pt ru nl pl cs sk sl hr sr bs bg uk be ro hu tr sv da no nb nn fi et lv lt el "
    "id vi ca gl eu is sq mk az kk uz ka hy mn af".split()
)
# Languages that write a decimal point: "1,000" is one thousand, "8.000" is eight.
DOT_DECIMAL = frozenset("en zh ja ko th he hi bn ta te mr gu ur ms fil tl ga cy sw my km lo ne si".split())

_GAP = r"(?:\s|\\[,;:! ]|~|\\(?:quad|qquad|enspace|thinspace)(?![A-Za-z]))"
_CURRENCY = (
    r"(?:US\s*\\?\$|R\\?\$|\\\$|\$|€|£|¥|₹|\\(?:euro|texteuro|pounds|textdollar|yen)(?![A-Za-z])"
    r"|(?:USD|EUR|GBP|CHF|JPY|CNY|RMB)(?![A-Za-z]))"
)
_CURRENCY_BEFORE_RE = re.compile(rf"^([-+\u2212]?)\s*{_CURRENCY}{_GAP}*(?=[-+\u2212]?\s*\d)")
_CURRENCY_AFTER_RE = re.compile(rf"(?<=[\d}}]){_GAP}*{_CURRENCY}\.?$")
_PERCENT_RE = re.compile(rf"(?<=[\d}}]){_GAP}*(?:\\%|%|％)$")
# A trailing \text{unit} (\mathrm, \textrm, \mbox): letters first; "km/h", "m^2", "US-Dollar", "square units".
_TEXT_UNIT_RE = re.compile(
    rf"{_GAP}*\\(?:text|textrm|textnormal|mathrm|mbox|operatorname)\s*\{{\s*[^\W\d_][^{{}}]*\}}"
    r"(?:\s*\^\s*\{?[23]\}?)?\.?$"
)
# A trailing unit word of two or more letters after a space or spacing command ("5 cm", "10 inches").
_WORD_UNIT_RE = re.compile(
    rf"(?<=[\d}}]){_GAP}+(?P<u>[^\W\d_]{{2,}}(?:[-/][^\W\d_]+)*(?:\s+[^\W\d_]{{2,}}){{0,2}})"
    r"(?:\^?\{?[23]\}?|[²³])?\.?$"
)
# A single-letter unit needs a LaTeX spacing command before it ("48\,h"; "48 h" may be 48 times h).
_LETTER_UNIT_RE = re.compile(r"(?<=\d)\s*\\[,;:! ]\s*[A-Za-z]\.?$")
_CJK_UNIT_RE = re.compile("(?<=[\\d}])\\s*[\u3400-\u4dbf\u4e00-\u9fff\u3040-\u30ff]{1,4}\\.?$")
_UNITS_MAX_CHARS = 300
_NOT_UNITS = frozenset({"and", "or", "mod", "pmod", "pi", "cis", "if", "for"})
# Digit groups separated by spaces or thin spaces: "57 500", "57\,500", "1 000 000" (thousands anywhere).
_SPACED_GROUPS_RE = re.compile(r"(?<![\d.,])\d{1,3}(?:(?:[ \u00a0\u2009\u202f~]|\\[,;:! ])+\d{3})+(?!\d)")
_GROUP_GAP_RE = re.compile(r"[ \u00a0\u2009\u202f~]|\\[,;:! ]")
# MATH's typesetting of thousands, "29,\!322,\!216": a comma and a negative thin space between groups of three.
_MATH_THOUSANDS_RE = re.compile(r"(?<![\d.,])\d{1,3}(?:,\\!\d{3})+(?!\d)")
_BARE_NUMBER_RE = re.compile(r"([-+\u2212]?)(\d[\d.,]*)")


def language_family(language: str | None) -> str | None:
    """``"comma"`` (decimal comma), ``"dot"`` (decimal point) or ``None`` (unknown) for a language tag.

    Only the primary subtag counts: ``"de-DE"``, ``"de_AT"`` and ``"DE"`` are all German.

    Example:
        >>> language_family("de-AT"), language_family("en"), language_family("xx"), language_family(None)
        ('comma', 'dot', None, None)
    """
    if not language:
        return None
    primary = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    if primary in COMMA_DECIMAL:
        return "comma"
    if primary in DOT_DECIMAL:
        return "dot"
    return None


def strip_units(answer: str) -> str:
    """Drop what people write around a number that is not the number: units, currency, spacing.

    Removes a trailing ``\\text{unit}`` (``\\mathrm``, ``\\mbox``), a trailing unit word of two or more
    letters (``5 cm``), a single-letter unit after a LaTeX spacing command (``48\\,h``), CJK counters and
    units (``250人``, ``3个``, ``5厘米``), currency signs or codes before or after (``\\$5``, ``€77``,
    ``77\\,€``, ``USD 5``), and spaces, thin spaces or MATH's ``,\\!`` between digit groups of three
    (``57\\,500``, ``\\frac{1}{29,\\!322,\\!216}``), anywhere in the answer.
    A percent sign is kept but written ``\\%`` (math-verify reads ``60\\%`` as both 60 and 0.6). The
    rest of the answer must hold a digit: ``\\text{Evelyn}`` or ``x \\text{ cm}`` are left alone. Runs of
    whitespace become one space; an answer longer than 300 characters is otherwise left as it is.

    Example:
        >>> [strip_units(a) for a in (r"57\\,500\\,\\text{US-Dollar}", r"77\\,€", "250人", r"60\\,\\%", r"48\\,h")]
        ['57500', '77', '250', '60\\\\%', '48']
        >>> strip_units(r"\\text{Evelyn}"), strip_units("6 - 5i"), strip_units("5 x")
        ('\\\\text{Evelyn}', '6 - 5i', '5 x')
    """
    s = _WS_RE.sub(" ", answer.strip())
    if len(s) > _UNITS_MAX_CHARS:
        return s  # not a number with a unit; and the unit patterns backtrack on long runs of spacing
    for _ in range(4):
        before = s
        s = _CURRENCY_BEFORE_RE.sub(r"\1", s)
        s = _CURRENCY_AFTER_RE.sub("", s)
        s = _PERCENT_RE.sub(r"\\%", s)
        s = _strip_trailing_unit(s)
        s = s.strip()
        if s == before:
            break
    s = _MATH_THOUSANDS_RE.sub(lambda m: m.group(0).replace(",\\!", ""), s)
    return _SPACED_GROUPS_RE.sub(lambda m: _GROUP_GAP_RE.sub("", m.group(0)), s)


def _strip_trailing_unit(s: str) -> str:
    """``s`` without one trailing unit, when what stays holds a digit."""
    for pattern in (_TEXT_UNIT_RE, _LETTER_UNIT_RE, _CJK_UNIT_RE, _WORD_UNIT_RE):
        m = pattern.search(s)
        if m is None or not any(ch.isdigit() for ch in s[: m.start()]):
            continue
        if pattern is _WORD_UNIT_RE and _NOT_UNITS.intersection(m.group("u").lower().split()):
            continue
        return s[: m.start()].rstrip()
    return s


def localize_number(answer: str, language: str | None = None) -> str:
    """A bare number written with locale separators, as a plain decimal (``"8.000"`` in German -> ``"8000"``).

    Only an answer that is one number (sign, digits, ``.``, ``,``, LaTeX's ``{,}``) is touched; lists,
    tuples and expressions are returned unchanged. The rule, ``language`` being the problem's language:

    - always (unambiguous): both separators, the last one the decimal mark (``1.234,56`` and
      ``1,234.56`` -> ``1234.56``); one separator repeated between groups of three (``1,234,567``,
      ``1.234.567`` -> ``1234567``);
    - English and other decimal-point languages: a comma followed by exactly three digits (after one to
      three digits) is a thousands separator (``1,000`` -> ``1000``); any other comma is left alone
      (``3,5`` may be a list); a dot is a decimal point;
    - German, French, Spanish, Italian, Portuguese, Russian and the other decimal-comma languages
      (:data:`COMMA_DECIMAL`): a comma is the decimal mark (``16,00`` -> ``16.00``, ``1,000`` -> ``1.000``);
      a dot followed by exactly three digits is a thousands separator (``8.000`` -> ``8000``);
    - no language, or one not listed: only the unambiguous forms above; ``1,000``, ``16,00`` and
      ``8.000`` stay as written (math-verify then reads ``8.000`` as 8 and ``1,000`` as 1000).

    Example:
        >>> localize_number("16,00", "de"), localize_number("8.000", "de"), localize_number("8.000", "en")
        ('16.00', '8000', '8.000')
        >>> localize_number("1,000", "en"), localize_number("1,000", "fr"), localize_number("1.234,5")
        ('1000', '1.000', '1234.5')
        >>> localize_number("16,00"), localize_number("(1,5)", "de")
        ('16,00', '(1,5)')
    """
    s = answer.strip().replace("{,}", ",")
    m = _BARE_NUMBER_RE.fullmatch(s)
    if m is None or s[-1] in ".,":
        return answer
    sign, digits = m.groups()
    plain = _plain_digits(digits, language_family(language))
    return answer if plain is None else sign + plain


def _plain_digits(num: str, family: str | None) -> str | None:
    """``num`` (digits with ``.``/``,``) as digits with at most one ``.``; ``None`` when ambiguous or odd."""
    if "," in num and "." in num:
        last = max(num.rfind(","), num.rfind("."))
        decimal = num[last]
        thousands = "." if decimal == "," else ","
        head, tail = num[:last], num[last + 1 :]
        if thousands in tail or decimal in head or not _thousands_groups(head.split(thousands)):
            return None
        return head.replace(thousands, "") + "." + tail
    sep = "," if "," in num else "." if "." in num else None
    if sep is None:
        return num
    groups = num.split(sep)
    if len(groups) > 2:
        return "".join(groups) if _thousands_groups(groups) else None
    three = _thousands_groups(groups)
    if sep == ",":
        if family == "comma":
            return groups[0] + "." + groups[1]
        return groups[0] + groups[1] if family == "dot" and three else None
    return groups[0] + groups[1] if family == "comma" and three else num


def _thousands_groups(groups: list[str]) -> bool:
    """Whether ``groups`` read as thousands: one to three digits, then groups of exactly three."""
    return 1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:]) and len(groups) > 1


def comparable_form(answer: str, language: str | None = None) -> str:
    """The form in which an answer is compared: :func:`strip_units`, then :func:`localize_number`.

    Applied to the prediction and the gold alike, before the exact-text shortcut and math-verify.

    Example:
        >>> comparable_form(r"16,00\\,\\text{Euro}", "de"), comparable_form(r"\\$8,000", "en")
        ('16.00', '8000')
    """
    return localize_number(strip_units(answer), language)
