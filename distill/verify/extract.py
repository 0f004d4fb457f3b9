"""Pull the final answer out of a completion.

Order of sources, first hit wins:

1. the LAST ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``) in the text — what the R1 prompt asks for;
   several boxes at the very end, separated only by commas, "and"/"or", spacing or math delimiters
   (``\\boxed{1}, \\boxed{2} and \\boxed{3}``), are one answer: ``1, 2, 3`` (compared as a tuple/set);
2. the LAST ``<answer>...</answer>`` block — the R1-Zero template's answer slot;
3. only with ``fallback=True``: the last "final answer is X" / "answer: X" phrase (also the Minerva / lm-eval
   line "Final Answer: The final answer is $7.78$. I hope it is correct." -> ``7.78``).

If the last ``\\boxed{`` never closes (a completion cut off mid-answer), there is no boxed answer: an
earlier box is NOT used, because it is not the model's final word.
"""

from __future__ import annotations

import re

from distill.verify.normalize import strip_units

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# "final answer is X", "the answer is: X", "Answer: X", "**Answer:** X" (X runs to the end of the line). Only
# the phrase is matched, so the last one on a line wins ("Final Answer: The final answer is $7.78$.").
_FALLBACK_RE = re.compile(r"\banswer(?:\s*\*\*)?\s*(?:is\b\s*:?|:|=)\s*(?:\*\*)?\s*", re.IGNORECASE)
# What may stand between two boxes of one answer: commas, "and"/"or", spacing, math delimiters.
_BOX_SEP_RE = re.compile(
    r"(?:\s|[$,;&]|\\[()\[\],;: ]|\\q?quad(?![A-Za-z])|\\text\s*\{\s*(?:and|or|,)?\s*\}|\b(?:and|or)\b)*"
)
_WRAPPERS_RE = re.compile(r"^\\(?:text|textbf|mathrm|mathbf|textrm|mbox|displaystyle)\s*\{(.*)\}$", re.DOTALL)
_MATH_SPAN_RE = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_AIME_INT_RE = re.compile(r"\+?(\d+)(?:\.0*)?")
# A side of an AIME equation that names the quantity: "x", "AB", "a_1", "m + n", "\angle ABC" (no numbers).
_NAME_NOISE_RE = re.compile(r"\\(?:angle|overline|overarc|widehat|text|mathrm|mathit|operatorname)(?![A-Za-z])|[\s{}]")
_SUBSCRIPT_RE = re.compile(r"_(?:\{[^{}]*\}|\w)")
_NAMES_RE = re.compile(r"(?:[A-Za-z]+|\\[A-Za-z]+)(?:(?:[-+*]|\\cdot)(?:[A-Za-z]+|\\[A-Za-z]+))*")
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


def _box_at(text: str, box: re.Match[str]) -> tuple[str, int] | None:
    """``(content, end)`` of the box whose command is ``box``; ``None`` when it is unbalanced or empty-handed."""
    i = box.end()
    n = len(text)
    j = i
    while j < n and text[j] in " \t\n":
        j += 1
    if j < n and text[j] == "{":
        end = _match_brace(text, j)
        return None if end < 0 else (text[j + 1 : end - 1].strip(), end)
    if j == i or j >= n:
        return None  # "\boxed" followed by nothing usable
    k = j
    while k < n and not text[k].isspace() and text[k] != "$":
        k += 1
    token = text[j:k].rstrip(".,;")
    return (token, k) if token else None


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
    found = None if last is None else _box_at(text, last)
    return None if found is None else found[0]


def extract_final_boxes(text: str | None) -> list[str]:
    """Contents of the boxes that end ``text`` together: the last box, and the boxes just before it that
    only commas, "and"/"or", spacing or math delimiters separate from it. ``[]`` when the last is cut off.

    Example:
        >>> extract_final_boxes(r"so $\\boxed{1}$, $\\boxed{2}$ and $\\boxed{3}$.")
        ['1', '2', '3']
        >>> extract_final_boxes(r"first \\boxed{3}, corrected: \\boxed{5}"), extract_final_boxes(r"\\boxed{1} \\boxed{2")
        (['5'], [])
    """
    boxes = list(_BOX_RE.finditer(text or ""))
    if not boxes or not text:
        return []
    last = _box_at(text, boxes[-1])
    if last is None:
        return []
    contents, next_start = [last[0]], boxes[-1].start()
    for box in reversed(boxes[:-1]):
        found = _box_at(text, box)
        if found is None or found[1] > next_start or not _BOX_SEP_RE.fullmatch(text[found[1] : next_start]):
            break  # cut off, a box around the next one, or words between them
        contents.append(found[0])
        next_start = box.start()
    return contents[::-1]


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
    tail = text[last.end() :].split("\n", 1)[0].strip().strip("*").strip()
    if not tail:
        return None
    if mode == "aime":
        m = re.match(r"\$?\s*\\?(?:boxed\{)?\s*(\d+)", tail)
        return m.group(1) if m else None
    span = _MATH_SPAN_RE.search(tail)
    if span and span.start() == 0:
        return next(g for g in span.groups() if g is not None)
    # Plain text: up to the end of the sentence.
    return re.split(r"\.\s|\.$|,\s(?:so|which|since|because)\b", tail, maxsplit=1)[0]


def _joined_boxes(text: str) -> str | None:
    """The final boxes' contents (delimiters stripped, repeats dropped) joined by ``", "``; ``None`` if none."""
    parts: list[str] = []
    for content in extract_final_boxes(text):
        content = _strip_delims(content)
        if content and content not in parts:
            parts.append(content)
    return ", ".join(parts) if parts else None


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
        >>> extract_answer(r"The solutions are \\boxed{81} and \\boxed{256}.")
        '81, 256'
        >>> extract_answer("Final Answer: The final answer is $7.78$. I hope it is correct.", fallback=True)
        '7.78'
    """
    if mode not in ("math", "aime"):
        raise ValueError(f"mode must be 'math' or 'aime', got {mode!r}")
    if not text:
        return None
    candidate = _joined_boxes(text)
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

    Accepts ``"025"``, ``"\\boxed{025}"``, ``"$25$"``, ``"25."``, ``"25.0"``, ``"25^\\circ"``, units and
    currency (``"204 \\text{ minutes}"``, ``"\\$50"``), and an equation when one side names the quantity
    without numbers (``"n = 25"``, ``"25 = x"``, ``"m + n = 25"``, ``"AB = 25"``, ``"a_1 = 25"``).
    Anything that is not plainly an integer (``"\\frac{50}{2}"``, ``"25.5"``, ``"-3"``, ``"1000"``) gives
    ``None``: an AIME answer must be an integer from 0 to 999. So does an equation whose sides both hold
    numbers (``"2x = 25"``, ``"x^2 = 25"``, ``"2 + 3 = 5"``): 25 is not the value asked for there.

    Example:
        >>> [normalize_aime(x) for x in ("025", r"\\boxed{073}", "2.5", "1000")]
        ['25', '73', None, None]
        >>> [normalize_aime(x) for x in ("x = 25", "m + n = 25", "2x = 25", r"204\\text{ minutes}")]
        ['25', '25', None, '204']
    """
    if answer is None:
        return None
    s = answer.strip()
    inner = extract_boxed(s)
    if inner is not None and _BOX_RE.match(_strip_delims(s)):
        s = inner
    s = strip_units(_strip_delims(s))
    if "=" in s:
        value = _equation_value(s)
        if value is None:
            return None
        s = strip_units(_strip_delims(value))
    s = _DEGREES_RE.sub("", s)
    while s.startswith("{") and _match_brace(s, 0) == len(s):
        s = s[1:-1].strip()
    m = _AIME_INT_RE.fullmatch(s)
    if not m:
        return None
    value = int(m.group(1))
    return str(value) if 0 <= value <= 999 else None


def _equation_value(s: str) -> str | None:
    """The other side of ``name = value`` (either way round); ``None`` unless exactly one side is a name."""
    sides = s.split("=")
    if len(sides) != 2:
        return None
    left, right = (side.strip() for side in sides)
    if _is_name(left) and not _is_name(right):
        return right
    if _is_name(right) and not _is_name(left):
        return left
    return None


def _is_name(side: str) -> bool:
    """Whether an equation side names a quantity: letters, subscripts, ``+``/``-``/``\\cdot``, no numbers."""
    bare = _NAME_NOISE_RE.sub("", _SUBSCRIPT_RE.sub("", side))
    return bool(bare) and _NAMES_RE.fullmatch(bare) is not None
