"""Decontamination: does a training problem repeat an eval problem?

Texts are compared as lower-cased word sequences (``\\w+`` runs, so LaTeX ``\\frac{1}{2}`` reads
``frac 1 2``), Asymptote drawings (``[asy]...[/asy]``) left out. A training text is contaminated by an eval
problem when it contains at least ``min_overlap`` of that problem's informative word n-grams (default
n = 8), or the whole problem. Not informative, so never a match on their own:

- boilerplate: an n-gram found in more than ``max_df`` distinct eval problems ("can be written in the
  form frac m n where m and n are relatively prime positive integers", "express your answer as a common
  fraction"); one shared boilerplate n-gram used to flag unrelated problems;
- n-grams that are mostly numbers (digit runs: card ranks ``2 3 4 5 6 7 8 9``, coordinates).

``min_overlap`` (default :data:`MIN_OVERLAP`) is a share of the eval problem's informative n-grams, so a
long training text that quotes a whole eval problem is caught, and so is a copy with a few names or
numbers changed; a problem sharing one sentence of set-up with an eval problem is not. Eval problems
shorter than n words count whole: a training text that contains all their words in order matches them.
``scripts/bench/decontaminate.py`` measures false and true positives on real competition problems.

>>> index = NgramIndex(n=4)
>>> index.add("Find the number of positive integers less than 1000.", "aime24#7")
>>> index.find("Please find the NUMBER of positive integers less than 1000 that are odd")
'aime24#7'
>>> index.find("Count the primes below 50.") is None
True
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from distill.errors import DataError, DistillError

log = logging.getLogger(__name__)

_WORD_RE = re.compile(r"\w+")
_ASY_RE = re.compile(r"\[asy\].*?(?:\[/asy\]|\Z)", re.DOTALL | re.IGNORECASE)
PROBLEM_COLUMNS = ("problem", "question", "Problem", "Question")
MAX_DF = 3           # an n-gram in more eval problems than this is boilerplate
MIN_OVERLAP = 0.3    # share of an eval problem's informative n-grams a training text must contain

Gram = tuple[str, ...]


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``, Asymptote drawings left out.

    >>> words("Let $x^2 = \\\\frac{1}{4}$. [asy]draw((0,0)--(1,1));[/asy]")
    ['let', 'x', '2', 'frac', '1', '4']
    """
    if "[asy]" in text or "[ASY]" in text:
        text = _ASY_RE.sub(" ", text)
    return _WORD_RE.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> Iterable[Gram]:
    return (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def informative(gram: Gram) -> bool:
    """Whether an n-gram is not mostly numbers (at least half of its words hold a letter).

    >>> informative(("2", "3", "4", "5", "6", "7", "8", "9")), informative(("find", "the", "sum", "of", "2", "and", "3"))
    (False, True)
    """
    return 2 * sum(not w.isdigit() for w in gram) >= len(gram)


@dataclass
class NgramIndex:
    """The informative n-grams of a set of eval problems, each with the problems (labels) that hold it.

    ``max_df``: n-grams in more distinct problems are boilerplate (None: keep all). ``min_overlap``: share of
    an eval problem's informative n-grams a text must contain to match it (0: any one n-gram).
    """

    n: int = 8
    max_df: int | None = MAX_DF
    min_overlap: float = MIN_OVERLAP
    _grams: dict[Gram, list[str]] = field(default_factory=dict)
    _short: dict[Gram, str] = field(default_factory=dict)   # eval problems of fewer than n words
    _short_lengths: set[int] = field(default_factory=set)
    _whole: dict[Gram, str] = field(default_factory=dict)   # every eval problem's words, for exact copies
    _sizes: dict[str, int] | None = None                     # informative, non-boilerplate n-grams per label
    problems: int = 0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_df is not None and self.max_df < 1:
            raise ValueError(f"max_df must be >= 1 (or None: no boilerplate filter), got {self.max_df}")
        if not 0.0 <= self.min_overlap <= 1.0:
            raise ValueError(f"min_overlap must be between 0 and 1, got {self.min_overlap}")

    def add(self, text: str, label: str) -> None:
        tokens = words(text)
        if not tokens:
            return
        self.problems += 1
        whole = tuple(tokens)
        if whole in self._whole:   # the same problem twice (two copies of a set): counted once
            return
        self._whole[whole] = label
        if len(tokens) < self.n:
            self._short.setdefault(whole, label)
            self._short_lengths.add(len(tokens))
            return
        for gram in set(ngrams(tokens, self.n)):
            if informative(gram):
                self._grams.setdefault(gram, []).append(label)
        self._sizes = None

    def _boilerplate(self, labels: list[str]) -> bool:
        return self.max_df is not None and len(labels) > self.max_df

    def sizes(self) -> dict[str, int]:
        """Per eval problem, its informative n-grams that are not boilerplate."""
        if self._sizes is None:
            sizes: dict[str, int] = {}
            for labels in self._grams.values():
                if not self._boilerplate(labels):
                    for label in labels:
                        sizes[label] = sizes.get(label, 0) + 1
            self._sizes = sizes
        return self._sizes

    def overlaps(self, text: str | None) -> dict[str, float]:
        """Per eval problem sharing an informative n-gram with ``text``: the share of its n-grams ``text`` holds."""
        if not text:
            return {}
        hits: dict[str, int] = {}
        grams = self._grams
        for gram in set(ngrams(words(text), self.n)):
            labels = grams.get(gram)
            if labels is not None and not self._boilerplate(labels):
                for label in labels:
                    hits[label] = hits.get(label, 0) + 1
        sizes = self.sizes()
        return {label: count / sizes[label] for label, count in hits.items()}

    def find(self, text: str | None, *, exclude: str | None = None) -> str | None:
        """The label of an eval problem ``text`` repeats (the largest overlap), or None.

        ``exclude``: a label never reported (to check an eval set against the rest of itself).
        """
        if not text:
            return None
        tokens = words(text)
        label = self._whole.get(tuple(tokens))
        if label is not None and label != exclude:
            return label
        shares = self.overlaps(text)
        if exclude is not None:
            shares.pop(exclude, None)
        if shares:
            best = max(shares, key=lambda k: shares[k])
            if shares[best] >= self.min_overlap:
                return best
        for m in self._short_lengths:
            for gram in ngrams(tokens, m):
                label = self._short.get(gram)
                if label is not None and label != exclude:
                    return label
        return None

    def __len__(self) -> int:
        return len(self._grams) + len(self._short)


@dataclass(frozen=True)
class EvalSet:
    source: str       # the hub id (with split) or file it was read from
    problems: int


def parse_source(spec: str) -> tuple[str, str | None]:
    """``"org/name:test"`` -> ``("org/name", "test")``; local paths are returned whole.

    >>> parse_source("HuggingFaceH4/MATH-500:test"), parse_source("data/aime24.jsonl")
    (('HuggingFaceH4/MATH-500', 'test'), ('data/aime24.jsonl', None))
    """
    from distill.data.problems import is_local

    if is_local(spec) or ":" not in spec:
        return spec, None
    source, _, split = spec.rpartition(":")
    return source, split or None


def _load_texts(spec: str) -> list[tuple[str, str]]:
    """``(id, problem text)`` pairs of one eval set; the problem column is found among PROBLEM_COLUMNS."""
    from distill.data.problems import load_problems

    source, split = parse_source(spec)
    first_error: DataError | None = None
    for column in PROBLEM_COLUMNS:
        try:
            problems = load_problems(source, split=split, problem_column=column, answer_column=None)
        except DataError as exc:
            if f"no column {column!r}" not in str(exc):
                raise
            first_error = first_error or exc
            continue
        return [(p.id, p.problem) for p in problems]
    assert first_error is not None
    raise DataError(f"{first_error} — the eval problems must be in one of the columns {', '.join(PROBLEM_COLUMNS)}")


def build_index(sources: Sequence[str], n: int, *, max_df: int | None = MAX_DF,
                min_overlap: float = MIN_OVERLAP) -> tuple[NgramIndex, list[EvalSet]]:
    """Load every eval set and index its problems; any set that cannot be loaded is an error.

    A partial check would pass contaminated traces silently, so this never goes on without a set: the
    error lists each failure and the two ways out (local files, or switching decontamination off).
    ``max_df`` and ``min_overlap``: see :class:`NgramIndex`.
    """
    index = NgramIndex(n=n, max_df=max_df, min_overlap=min_overlap)
    loaded: list[EvalSet] = []
    failures: list[str] = []
    for spec in sources:
        try:
            texts = _load_texts(spec)
        except (DataError, OSError) as exc:
            failures.append(f"  {spec}: {exc}")
            continue
        for pid, text in texts:
            index.add(text, f"{spec}#{pid}")
        loaded.append(EvalSet(spec, len(texts)))
        log.info("decontamination: %d problems from %s", len(texts), spec)
    if failures:
        raise DistillError(
            "decontamination: could not load " + ("any of the eval sets" if not loaded else "some eval sets")
            + ":\n" + "\n".join(failures)
            + "\nOffline or no hub access? Pass local copies with --decontaminate-files FILE [FILE ...] (jsonl, json,"
              " parquet or csv with a 'problem' column), or --no-decontaminate to skip the check knowingly."
        )
    return index, loaded
