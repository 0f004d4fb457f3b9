"""Decontamination: does a training problem share a word n-gram with an eval problem?

Texts are compared as lower-cased word sequences (``\\w+`` runs, so LaTeX ``\\frac{1}{2}`` reads
``frac 1 2``); a problem is contaminated when any of its n-grams (default 8) is an n-gram of an eval
problem. Eval problems shorter than n words count whole: a training text that contains all their words in
order matches them.

>>> index = NgramIndex(n=4)
>>> index.add("Find the number of positive integers less than 1000.", "aime24#7")
>>> index.find("Please find the NUMBER of positive integers below 50")
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
PROBLEM_COLUMNS = ("problem", "question", "Problem", "Question")


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``.

    >>> words("Let $x^2 = \\\\frac{1}{4}$.")
    ['let', 'x', '2', 'frac', '1', '4']
    """
    return _WORD_RE.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


@dataclass
class NgramIndex:
    """The n-grams of a set of eval problems, each pointing at the first problem (label) it came from."""

    n: int = 8
    _grams: dict[tuple[str, ...], str] = field(default_factory=dict)
    _short: dict[tuple[str, ...], str] = field(default_factory=dict)   # eval problems of fewer than n words
    _short_lengths: set[int] = field(default_factory=set)
    problems: int = 0

    def add(self, text: str, label: str) -> None:
        tokens = words(text)
        if not tokens:
            return
        self.problems += 1
        if len(tokens) < self.n:
            self._short.setdefault(tuple(tokens), label)
            self._short_lengths.add(len(tokens))
            return
        for gram in ngrams(tokens, self.n):
            self._grams.setdefault(gram, label)

    def find(self, text: str | None) -> str | None:
        """The label of an eval problem ``text`` overlaps with, or None."""
        if not text:
            return None
        tokens = words(text)
        grams = self._grams
        for gram in ngrams(tokens, self.n):
            label = grams.get(gram)
            if label is not None:
                return label
        for m in self._short_lengths:
            for gram in ngrams(tokens, m):
                label = self._short.get(gram)
                if label is not None:
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


def build_index(sources: Sequence[str], n: int) -> tuple[NgramIndex, list[EvalSet]]:
    """Load every eval set and index its problems; any set that cannot be loaded is an error.

    A partial check would pass contaminated traces silently, so this never goes on without a set: the
    error lists each failure and the two ways out (local files, or switching decontamination off).
    """
    index = NgramIndex(n=n)
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
