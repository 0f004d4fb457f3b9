"""Pull the final answer out of a completion.

Order of sources, first hit wins:

1. the LAST ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``) in the text — what the R1 prompt asks for;
2. the LAST ``<answer>...</answer>`` block — the R1-Zero template's answer slot;
3. only with ``fallback=True``: the last "final answer is X" / "answer: X" phrase.

If the last ``\\boxed{`` never closes (a completion cut off mid-answer), there is no boxed answer: an
earlier box is NOT used, because it is not the model's final word.
"""

from __future__ import annotations

import re

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# "final answer is X", "the answer is: X", "Answer: X", "**Answer:** X" (X runs to the end of the line).
_FALLBACK_RE = re.compile(
    r"\banswer(?:\s*\*\*)?\s*(?:is\b\s*:?|:|=)\s*(?:\*\*)?\s*(?P<x>[^\n]+)",
    re.IGNORECASE,
)
_WRAPPERS_RE = re.compile(r"^\\(?:text|textbf|mathrm|mathbf|textrm|mbox|displaystyle)\s*\{(.*)\}$", re.DOTALL)
_MATH_SPAN_RE = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_AIME_INT_RE = re.compile(r"\+?(\d+)(?:\.0*)?")
_ASSIGN_RE = re.compile(r"^[^=]*[A-Za-z][^=]*=\s*(?P<rhs>[^=]+)$", re.DOTALL)  # "n = 25", "m + n = 25"
_DEGREES_RE = re.compile(r"\s*(?:\^\s*\{?\s*\\circ\s*\}?|°)\s*$")


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    found = None
    for found in pattern.finditer(text):  # noqa: B007 - we want the last one
        pass
    return found


def _match_brace(text: str, start: int) -> int:
    """Index just past the ``}`` closing the ``{`` at ``start``, or -1 if it never closes.

    Backslash-escaped characters (``\\{``, ``\\}``, ``\\\\``) are skipped.
    """
    depth = 0
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def extract_boxed(text: str | None) -> str | None:
    """Content of the LAST ``\\boxed{...}`` or ``\\fbox{...}`` in ``text`` (nested braces kept).

    Also accepts the brace-less ``\\boxed 5`` form (content runs to the next whitespace or ``$``).
    Returns ``None`` when there is no box, or when the last one is unbalanced (cut off).

    Example:
        >>> extract_boxed(r"first \\boxed{1}, then \\boxed{\\frac{1}{2}}")
        '\\\\frac{1}{2}'
        >>> extract_boxed(r"$\\boxed 5$") , extract_boxed(r"\\boxed{3") , extract_boxed("none")
        ('5', None, None)
    """
    if not text:
        return None
    last = _last_match(_BOX_RE, text)
    if last is None:
        return None
    i = last.end()
    n = len(text)
    j = i
    while j < n and text[j] in " \t\n":
        j += 1
    if j < n and text[j] == "{":
        end = _match_brace(text, j)
        if end < 0:
            return None
        return text[j + 1 : end - 1].strip()
    if j == i or j >= n:
        return None  # "\boxed" followed by nothing usable
    k = j
    while k < n and not text[k].isspace() and text[k] != "$":
        k += 1
    token = text[j:k].rstrip(".,;")
    return token or None


def _strip_delims(s: str) -> str:
    """Remove surrounding math delimiters, a trailing period, and ``\\text{}``-style wrappers."""
    prev = None
    while s != prev:
        prev = s
        s = s.strip()
        for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s = s[len(left) : len(s) - len(right)]
                break
        s = s.strip()
        if s.endswith(".") and not s.endswith(".."):
            s = s[:-1]
        m = _WRAPPERS_RE.match(s)
        if m and _match_brace(s, s.index("{")) == len(s):
            s = m.group(1)
    return s.strip()


def _fallback(text: str, mode: str) -> str | None:
    last = _last_match(_FALLBACK_RE, text)
    if last is None:
        return None
    tail = last.group("x").strip().strip("*").strip()
    if mode == "aime":
        m = re.match(r"\$?\s*\\?(?:boxed\{)?\s*(\d+)", tail)
        return m.group(1) if m else None
    span = _MATH_SPAN_RE.search(tail)
    if span and span.start() == 0:
        return next(g for g in span.groups() if g is not None)
    # Plain text: up to the end of the sentence.
    return re.split(r"\.\s|\.$|,\s(?:so|which|since|because)\b", tail, maxsplit=1)[0]


def extract_answer(text: str | None, *, mode: str = "math", fallback: bool = False) -> str | None:
    """The final answer in ``text`` as a string, or ``None`` if there is none.

    ``mode`` ("math" or "aime") only changes the fallback phrase matching: in "aime" mode the phrase must
    be followed by an integer. The returned string is the answer's own text with math delimiters and a
    trailing period removed; equivalence (``"025" == "25"``, ``0.5 == \\frac12``) is decided later.

    Example:
        >>> extract_answer(r"so $x = \\boxed{\\dfrac{1}{2}}$.")
        '\\\\dfrac{1}{2}'
        >>> extract_answer("<answer> 42 </answer>")
        '42'
        >>> text = "The final answer is 7."
        >>> extract_answer(text) is None, extract_answer(text, fallback=True)
        (True, '7')
    """
    if mode not in ("math", "aime"):
        raise ValueError(f"mode must be 'math' or 'aime', got {mode!r}")
    if not text:
        return None
    candidate = extract_boxed(text)
    if candidate is None:
        tags = _ANSWER_TAG_RE.findall(text)
        if tags:
            candidate = tags[-1]
    if candidate is None and fallback:
        candidate = _fallback(text, mode)
    if candidate is None:
        return None
    candidate = _strip_delims(candidate)
    return candidate or None


def normalize_aime(answer: str | None) -> str | None:
    """Canonical AIME answer: the integer 0..999 as a string without leading zeros, else ``None``.

    Accepts ``"025"``, ``"\\boxed{025}"``, ``"$25$"``, ``"25."``, ``"25.0"``, ``"n = 25"``, ``"m + n = 25"``,
    ``"25^\\circ"``.
    Anything that is not plainly an integer (``"\\frac{50}{2}"``, ``"25.5"``, ``"-3"``, ``"1000"``) gives
    ``None``: an AIME answer must be an integer from 0 to 999.

    Example:
        >>> [normalize_aime(x) for x in ("025", r"\\boxed{073}", "2.5", "1000")]
        ['25', '73', None, None]
    """
    if answer is None:
        return None
    s = answer.strip()
    inner = extract_boxed(s)
    if inner is not None and _BOX_RE.match(_strip_delims(s)):
        s = inner
    s = _strip_delims(s)
    m = _ASSIGN_RE.match(s)
    if m:
        s = _strip_delims(m.group("rhs"))
    s = _DEGREES_RE.sub("", s)
    while s.startswith("{") and _match_brace(s, 0) == len(s):
        s = s[1:-1].strip()
    m = _AIME_INT_RE.fullmatch(s)
    if not m:
        return None
    value = int(m.group(1))
    return str(value) if 0 <= value <= 999 else None
