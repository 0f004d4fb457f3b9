"""What counts as a word of a chain of thought, and which script it is in (for :mod:`distill.verify.language`).

**Never words** (no language's): fenced code, ``[asy]`` drawings, LaTeX math (``$...$``, ``\\[...\\]``,
``\\(...\\)``) and commands (``\\frac``); in plain text, every run of letters that touches a digit, a super-
or subscript (``x²``, ``a₁``, ``aₙ``, ``F₁₀₀₀``), a math symbol (``= + × ÷ √ ≤ ° ∑ →`` ...) or another
letter through ``(`` (``f(x)``, ``sin(x)``); a Greek letter glued to a Latin one (``πx``, ``sinθ``, ``Δt``,
``kπ``); single letters of alphabetic scripts (``x``, ``θ``: variables), Greek runs of two letters (``αβ``),
upper-case Latin runs of up to four (``AB``, ``ABCD``: points) and function names (``sin``, ``log``,
``gcd``, ``pi`` ...). A hyphen with two letters on each side joins (``non-negative`` is one word,
``n-k`` is not); other punctuation separates.

**Words**, per script: in scripts written with spaces (Latin, Cyrillic, Greek, Arabic, Hebrew, Indic,
Hangul ...) a run of two or more letters with its combining marks (Bengali vowel signs); in Chinese and
Japanese every Han or kana character (Chinese is written without spaces; as the previous measure); in
Thai, Lao, Khmer and Myanmar (no spaces either) a run of letters counts one word per four characters,
rounded up (:func:`weight`). Han characters in a paragraph that has kana are Japanese (script ``Kana``).

>>> words("Starting with x₀ = -1, so sinθ = 1/2, f(x) = πx² and BC² > AB.")
{'Latn': ['Starting', 'with', 'so', 'and']}
>>> words("所以 x² 的值是 4。")
{'Hani': ['所', '以', '的', '值', '是']}
"""

from __future__ import annotations

import bisect
import math
import re
from functools import cache

CJK = frozenset({"Hani", "Kana"})
UNSPACED = frozenset({"Thai", "Laoo", "Khmr", "Mymr"})   # written without spaces, not CJK
# (first code point, last, script), sorted; Zinh: combining marks, which join the letter before them.
_RANGES = sorted([
    (0x41, 0x5A, "Latn"), (0x61, 0x7A, "Latn"), (0xC0, 0xD6, "Latn"), (0xD8, 0xF6, "Latn"), (0xF8, 0x24F, "Latn"),
    (0x250, 0x2AF, "Latn"), (0x1E00, 0x1EFF, "Latn"), (0xFF21, 0xFF3A, "Latn"), (0xFF41, 0xFF5A, "Latn"),
    (0x300, 0x36F, "Zinh"), (0x370, 0x3FF, "Grek"), (0x1F00, 0x1FFF, "Grek"), (0x400, 0x52F, "Cyrl"),
    (0x530, 0x58F, "Armn"), (0x590, 0x5FF, "Hebr"), (0x600, 0x6FF, "Arab"), (0x750, 0x77F, "Arab"),
    (0x780, 0x7BF, "Thaa"), (0x8A0, 0x8FF, "Arab"), (0x900, 0x97F, "Deva"), (0x980, 0x9FF, "Beng"),
    (0xA00, 0xA7F, "Guru"), (0xA80, 0xAFF, "Gujr"), (0xB00, 0xB7F, "Orya"), (0xB80, 0xBFF, "Taml"),
    (0xC00, 0xC7F, "Telu"), (0xC80, 0xCFF, "Knda"), (0xD00, 0xD7F, "Mlym"), (0xD80, 0xDFF, "Sinh"),
    (0xE00, 0xE7F, "Thai"), (0xE80, 0xEFF, "Laoo"), (0xF00, 0xFFF, "Tibt"), (0x1000, 0x109F, "Mymr"),
    (0x10A0, 0x10FF, "Geor"), (0x1100, 0x11FF, "Hang"), (0x1200, 0x137F, "Ethi"), (0x1780, 0x17FF, "Khmr"),
    (0x3005, 0x3007, "Hani"), (0x3040, 0x309F, "Kana"), (0x30A0, 0x30FF, "Kana"), (0x3130, 0x318F, "Hang"),
    (0x31F0, 0x31FF, "Kana"), (0x3400, 0x4DBF, "Hani"), (0x4E00, 0x9FFF, "Hani"), (0xAC00, 0xD7AF, "Hang"),
    (0xF900, 0xFAFF, "Hani"), (0xFB50, 0xFDFF, "Arab"), (0xFE70, 0xFEFF, "Arab"), (0xFF66, 0xFF9F, "Kana"),
    (0x20000, 0x2EBEF, "Hani"),
])
_STARTS = [r[0] for r in _RANGES]
_SCRIPT_CACHE: dict[str, str] = {}

# Letters of the scripts written without spaces (Thai, Lao, Myanmar, Khmer, kana, Han), and all their blocks.
_UNSPACED_LETTERS = ("\u0e01-\u0e3a\u0e40-\u0e4e\u0e81-\u0ecf\u1000-\u103f\u1050-\u109f\u1780-\u17d3\u3005\u3007"
                     "\u3041-\u30fa\u30fc-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
                     "\U00020000-\U0002ebef")
_UNSPACED_BLOCKS = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SUPSUB = "\u00b2\u00b3\u00b9\u2070-\u209f\u1d2c-\u1d6a\u1d9b-\u1dbf"
_MATH = ("=+*^<>|~\\\\%&#@$\u00d7\u00f7\u00b7\u00b1\u00b0\u2032\u2033\u2100-\u214f\u2190-\u23ff\u25a0-\u25ff"
         "\u27c0-\u27ef\u2980-\u2aff\U0001d400-\U0001d7ff" + _SUPSUB)
_STRIP_RE = re.compile(r"```.*?(?:```|\Z)|\[asy\].*?(?:\[/asy\]|\Z)|\$\$.*?\$\$|\$[^$\n]*\$|\\\[.*?\\\]|\\\(.*?\\\)"
                       r"|\\[A-Za-z]+", re.DOTALL)
_PARAGRAPH_RE = re.compile(r"\n[ \t\r\f\v]*\n")
_SENTENCE_RE = re.compile(r"[.!?;:][\"'\u201d\u2019\u00bb)]*(?:\s|$)|\n|[。！？；：।॥]")
_RELATION_RE = re.compile(r"\S+\s*(?=[=<>\u2264\u2265\u2260\u2248\u2261])|(?<=[=<>\u2264\u2265\u2260\u2248\u2261])\s*\S+")
_KANA_RE = re.compile("[\u3041-\u309f\u30a0-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_PUNCT = str.maketrans(dict.fromkeys(".,;:!?()[]{}\"'\u2018\u2019\u201c\u201d\u00ab\u00bb\u2013\u2014/\u2026-", " "))
_PUNCT_ASCII = bytes.maketrans(b".,;:!?()[]{}\"'/-", b" " * 16)
_COMPOUND_RE = re.compile(r"-(?<=[A-Za-z]{2}-)(?=[A-Za-z]{2})")   # non-negative -> nonnegative; n-k stays apart
_FUNCTIONS = frozenset(
    f(name) for name in "sin cos tan cot sec csc log ln lg exp lim max min gcd lcm mod det arcsin arccos arctan "
    "sinh cosh tanh pi sqrt frac cdot".split() for f in (str.lower, str.capitalize))
_CACHE_SIZE = 1 << 18
_ASCII_WORDS: set[str] = set()   # tokens known to be ASCII words (not numbers, math, single letters, labels) ...
_ASCII_KNOWN: set[str] = set()   # ... among all tokens judged so far

Paragraph = tuple[str, dict[str, list[str]]]   # (its text, script -> words, or Han/kana characters)


def _marks() -> str:
    """The combining marks of U+0300-U+1FFF as a regex class body (vowel signs of Indic scripts, accents)."""
    import unicodedata

    return "".join(re.escape(chr(c)) for c in range(0x300, 0x2000) if unicodedata.category(chr(c))[0] == "M")


@cache
def _word_re() -> re.Pattern[str]:
    """In a token that is not all ASCII letters: a run of letters that touches no other letter, digit,
    super/subscript or math symbol (``x²``, ``2x``, ``BC²``, ``12×7`` hold none), or a run of Han/kana/Thai
    letters (written without spaces). Compiled on first use (its classes are large)."""
    letter = rf"(?:[^\W\d_{_SUPSUB}{_UNSPACED_BLOCKS}]|[{_marks()}])"
    return re.compile(rf"(?<![^\W{_UNSPACED_BLOCKS}])(?<![{_MATH}])({letter}+)(?![^\W{_UNSPACED_BLOCKS}])"
                      rf"(?![{_MATH}(])|([{_UNSPACED_LETTERS}]+)")


def script_of(ch: str) -> str:
    """The script of a character (ISO 15924 code: Latn, Cyrl, Hani ...; Zyyy: none of the table's)."""
    script = _SCRIPT_CACHE.get(ch)
    if script is None:
        cp = ord(ch)
        i = bisect.bisect_right(_STARTS, cp) - 1
        script = _RANGES[i][2] if i >= 0 and cp <= _RANGES[i][1] else "Zyyy"
        _SCRIPT_CACHE[ch] = script
    return script


def _pieces(run: str) -> list[tuple[str, str]]:
    """A letter run cut where its script changes (marks stay with their letter); [] for Greek glued to Latin."""
    out: list[tuple[str, str]] = []
    start, current = 0, None
    for i, ch in enumerate(run):
        script = script_of(ch)
        if script == "Zinh" or script == current:
            continue
        if current is not None:
            out.append((current, run[start:i]))
        start, current = i, script
    if current is not None:
        out.append((current, run[start:]))
    if len(out) > 1 and {s for s, _ in out} >= {"Grek", "Latn"}:
        return []   # πx, sinθ, Δt: math
    return out


def _keep(script: str, word: str) -> bool:
    """Whether a run of one spaced script is a word (not a variable, point label or function name)."""
    if script == "Latn":
        return len(word) > 1 and not (len(word) <= 4 and word.isupper()) and word not in _FUNCTIONS
    if script == "Grek":
        return len(word) > 2
    return len(word) > 1 or script == "Hang"


def _ascii_words(tokens: list[str]) -> list[str]:
    """The ASCII tokens that are words, in order; each distinct token is judged once per process, then looked up."""
    if not _ASCII_KNOWN.issuperset(tokens):
        if len(_ASCII_KNOWN) > _CACHE_SIZE:
            _ASCII_WORDS.clear()
            _ASCII_KNOWN.clear()
        for token in set(tokens).difference(_ASCII_KNOWN):
            if token.isascii() and token.isalpha() and _keep("Latn", token):
                _ASCII_WORDS.add(token)
            _ASCII_KNOWN.add(token)
    return list(filter(_ASCII_WORDS.__contains__, tokens))


def _other_words(tokens: list[str], out: dict[str, list[str]]) -> None:
    """Add the words of ``tokens`` to ``out`` (script -> words), in order (ASCII ones already judged)."""
    for token in tokens:
        if token in _ASCII_WORDS:
            out.setdefault("Latn", []).append(token)
            continue
        if token.isascii():
            continue
        for word, unspaced in _word_re().findall(token):
            for script, piece in _pieces(word or unspaced):
                if script in CJK:
                    out.setdefault("Hani", []).extend(piece)
                elif script in UNSPACED or _keep(script, piece):
                    out.setdefault(script, []).append(piece)


def _found(tokens: list[str], text: str) -> dict[str, list[str]]:
    """script -> the words among ``tokens`` (``text`` split at spaces and punctuation), in order."""
    if text.isascii():
        found = _ascii_words(tokens)
        return {"Latn": found} if found else {}
    latin = _ascii_words(tokens)   # in English with plain-text math the other tokens are math: no Latin word
    out: dict[str, list[str]] = {}
    _other_words([t for t in tokens if not t.isascii()], out)
    if "Latn" in out:   # accented Latin words too (café, área): all of them again, in order
        out = {}
        _other_words(tokens, out)
    elif latin:
        out["Latn"] = latin
    if "Hani" in out and _KANA_RE.search(text):
        out.setdefault("Kana", []).extend(out.pop("Hani"))
    return out


def _spaced(text: str) -> tuple[str, str]:
    """(``text`` with hyphenated compounds joined, the same with punctuation turned into spaces)."""
    if "-" in text:
        text = _COMPOUND_RE.sub("", text)
    if text.isascii():   # bytes.translate is several times faster than str.translate
        return text, text.encode().translate(_PUNCT_ASCII).decode()
    return text, text.translate(_PUNCT)


def words(text: str) -> dict[str, list[str]]:
    """script -> the words of ``text`` in it, in order (Han/kana: characters; "Kana" when kana occur)."""
    text, spaced = _spaced(text)
    return _found(spaced.split(), text)


def paragraphs(text: str) -> list[Paragraph]:
    """The paragraphs (blank-line separated) of ``text`` that hold words, code and LaTeX math removed."""
    text, spaced = _spaced(_STRIP_RE.sub(" ", text))   # punctuation becomes spaces: the paragraphs stay aligned
    out = []
    for paragraph, plain in zip(_PARAGRAPH_RE.split(text), _PARAGRAPH_RE.split(spaced)):
        found = _found(plain.split(), paragraph)
        if found:
            out.append((paragraph, found))
    return out


def sentences(paragraph: str, script: str) -> list[tuple[list[str], list[str]]]:
    """Per sentence of a paragraph, (its words of ``script``, the same without the words next to ``=``, ``≥``,
    ``<`` ...: they name variables (``di ≥ 10``) and mislead an identifier)."""
    out = []
    for sentence in _SENTENCE_RE.split(paragraph):
        found = words(sentence).get(script, [])
        if found:
            read = words(_RELATION_RE.sub(" ", sentence)).get(script, []) if _RELATION_RE.search(sentence) else found
            out.append((found, read))
    return out


def weight(script: str, tokens: list[str]) -> float:
    """How many words ``tokens`` are: one each, but one per four characters in Thai, Lao, Khmer, Myanmar."""
    if script in UNSPACED:
        return float(sum(math.ceil(len(t) / 4) for t in tokens))
    return float(len(tokens))
