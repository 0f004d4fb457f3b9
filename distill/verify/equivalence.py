"""Is an extracted answer equal to the gold answer? The single source of truth for correctness.

Two modes:

- ``"math"``: math-verify decides (``verify(parse(gold), parse(pred))``, gold first: it is asymmetric on
  purpose), after a cheap exact-text shortcut. Both sides are wrapped in ``\\boxed{}`` so bare LaTeX parses.
- ``"aime"``: answers are integers 0..999 compared as integers (``"025" == "25"``); a prediction that is not
  plainly such an integer is incorrect. No sympy involved.

Before either, the prediction and the gold are put in their :func:`~distill.verify.normalize.comparable_form`:
units, currency and spacing dropped (``57\\,500\\,\\text{US-Dollar}`` is 57500), and, given the problem's
``language``, numbers with locale separators read as that language writes them (``8.000`` is 8000 in German,
8 in English). The verdict keeps the prediction and gold as written.

math-verify bounds its own run time with ``signal.alarm``, which breaks off the main thread, so its timeouts
are switched off here. In this module (in-process) time is bounded by :mod:`distill.verify.deadline`
(``SIGALRM`` on the main thread, nothing elsewhere); a hard bound for any thread comes from
:func:`distill.verify.verify_batch`, whose worker processes are killed when they overrun. Textual normal
forms (the exact-text shortcut, Unicode symbols) live in :mod:`distill.verify.normalize`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from distill.verify.deadline import Deadline, run_with_deadline
from distill.verify.extract import extract_answer, normalize_aime
from distill.verify.normalize import canonical_text, comparable_form, latex_from_unicode
from distill.verify.settings import check_mode, check_think
from distill.verify.split import MARKERS, check_reasoning_format, split_reasoning

STATUSES = ("correct", "incorrect", "no_answer", "unfinished", "unparsable", "timeout")


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one answer.

    ``status`` is one of ``STATUSES``; only ``"correct"`` counts as correct. ``extracted`` is the answer
    found in the completion (``None`` if none), ``gold`` the reference, ``detail`` a human-readable reason
    for anything other than a plain correct/incorrect. ``seconds`` is the time math-verify spent on it
    (``None`` when it was decided without math-verify); it is not part of equality.

    Example:
        >>> v = Verdict("correct", "25", "025")
        >>> v.correct, v.to_dict()["status"]
        (True, 'correct')
    """

    status: str
    extracted: str | None
    gold: str
    detail: str = ""
    seconds: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Verdict status must be one of {STATUSES}, got {self.status!r}")

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- checks shared by every entry point


def check_gold(gold: Any, mode: str) -> str:
    """Validate a gold answer; return its canonical AIME form in "aime" mode (else the gold itself).

    Raises ValueError for an empty gold, or one that is not an integer 0..999 in "aime" mode.

    Example:
        >>> check_gold("025", "aime"), check_gold(r"\\frac{1}{2}", "math")
        ('25', '\\\\frac{1}{2}')
    """
    if not isinstance(gold, str) or not gold.strip():
        raise ValueError(f"gold answer must be a non-empty string, got {gold!r}")
    if mode == "aime":
        canonical = normalize_aime(gold)
        if canonical is None:
            raise ValueError(
                f"gold answer {gold!r} is not an integer from 0 to 999, so it can't be scored in 'aime' mode;"
                " use mode='math' for this dataset"
            )
        return canonical
    return gold


def answer_from_completion(
    completion: str,
    *,
    mode: str = "math",
    think: str = "auto",
    prompt_has_think: bool = False,
    fallback: bool = False,
    reasoning_format: str = "auto",
    reasoning_delimiters: tuple[str, str] | None = None,
) -> tuple[str | None, str | None, str]:
    """Return ``(extracted, early_status, detail)``: the answer, or the status that ends the check early.

    The answer is taken from the answer part of the completion's reasoning format (``reasoning_format``,
    ``reasoning_delimiters``: see :class:`~distill.verify.settings.VerifySettings`).

    Example:
        >>> answer_from_completion("<think>hmm")
        (None, 'unfinished', 'no </think>: the reasoning never finished')
        >>> answer_from_completion("<think>ok</think> \\\\boxed{7}")
        ('7', None, '')
        >>> answer_from_completion("<|begin_of_thought|>\\\\boxed{6}<|end_of_thought|>"
        ...                        "<|begin_of_solution|>\\\\boxed{7}<|end_of_solution|>")
        ('7', None, '')
    """
    check_think(think)
    completion = completion or ""
    parts = split_reasoning(completion, reasoning_format, prompt_has_think=prompt_has_think,
                            custom=reasoning_delimiters)
    if reasoning_delimiters is not None:
        close = reasoning_delimiters[1]
    else:
        close = MARKERS[parts.format or (reasoning_format if reasoning_format in MARKERS else "think")].close
    required = think == "required" or (think == "auto" and parts.has_think)
    if required and not (parts.has_think and parts.finished):
        return None, "unfinished", f"no {close}: the reasoning never finished"
    # "optional" with an unclosed reasoning: fall back to the whole text.
    closed = parts.has_think and parts.finished
    extracted = extract_answer(parts.answer if closed else completion, mode=mode, fallback=fallback)
    if extracted is None:
        where = f"after {close}" if closed else "in the completion"
        return None, "no_answer", f"no boxed answer {where}"
    return extracted, None, ""


def judging_forms(pred: str, gold: str, language: str | None = None) -> tuple[str, str]:
    """``(pred, gold)`` in the forms that are compared (:func:`~distill.verify.normalize.comparable_form`).

    Example:
        >>> judging_forms(r"8.000\\,\\text{Euro}", "8000", "de")
        ('8000', '8000')
    """
    return comparable_form(pred, language), comparable_form(gold, language)


# ---------------------------------------------------------------- math-verify, no timeouts inside


@lru_cache(maxsize=1)
def _math_verify() -> Any:
    import logging

    import math_verify

    # It warns once that its timeouts are off (we bound time ourselves) and on every parse failure.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    return math_verify


@lru_cache(maxsize=4096)
def _parse(answer: str) -> tuple[Any, ...]:
    mv = _math_verify()
    config = [mv.LatexExtractionConfig(boxed_match_priority=0), mv.ExprExtractionConfig()]
    body = latex_from_unicode(answer.strip())
    wrapped = body if body.startswith("\\boxed") else "\\boxed{" + body + "}"
    return tuple(mv.parse(wrapped, extraction_config=config, parsing_timeout=None))


def _mv_equal(gold_parsed: tuple[Any, ...], pred_parsed: tuple[Any, ...]) -> bool:
    return bool(_math_verify().verify(list(gold_parsed), list(pred_parsed), timeout_seconds=None))


def compare_math(pred: str, gold: str) -> tuple[str, str]:
    """math-verify's judgement with no time bound: ``(status, detail)``. Run it under a deadline.

    Example:
        >>> compare_math("0.5", r"\\frac{1}{2}")
        ('correct', '')
    """
    if canonical_text(pred) == canonical_text(gold):
        return "correct", ""
    gold_parsed = _parse(gold)
    if not gold_parsed:
        return "unparsable", f"math-verify could not parse the gold answer {gold!r}"
    pred_parsed = _parse(pred)
    if not pred_parsed:
        return "unparsable", "math-verify could not parse the prediction"
    return ("correct" if _mv_equal(gold_parsed, pred_parsed) else "incorrect"), ""


# Answers of the kinds the evals hold: parsing them once at start-up fills the LaTeX parser's lazily built
# tables, so the first real items (and their deadlines) don't pay for it.
_WARM_UP = [
    ("0.5", r"\frac{1}{2}"),
    (r"3\sqrt{13}", r"\sqrt{117}"),
    (r"\{1,2\}", r"\{2,1\}"),
    ("[0, 1)", "(0,1]"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
    ("x=5", "5"),
    (r"\text{Evelyn}", "Evelyn"),
    (r"2\pi", r"\pi"),
]


def warm_up() -> None:
    """Import math-verify and exercise its parser on typical answers (about half a second, once)."""
    for pred, gold in _WARM_UP:
        compare_math(pred, gold)
    _parse.cache_clear()


def equivalent_math(a: str, b: str) -> bool:
    """Symmetric math equivalence (both directions of math-verify), no time bound."""
    if canonical_text(a) == canonical_text(b):
        return True
    pa, pb = _parse(a), _parse(b)
    if not pa or not pb:
        return False
    return _mv_equal(pa, pb) and _mv_equal(pb, pa)


def judge_inprocess(pred: str, gold: str, timeout: float | None) -> tuple[str, str, float]:
    """``compare_math`` under the in-process deadline: ``(status, detail, seconds)``."""
    _math_verify()  # importing it (half a second) is not part of any answer's time
    start = time.monotonic()
    try:
        status, detail = run_with_deadline(compare_math, pred, gold, timeout=timeout)
    except Deadline:
        status, detail = "timeout", f"math-verify took longer than {timeout:g} s"
    except RecursionError:
        status, detail = "unparsable", "expression too deeply nested"
    except MemoryError:
        status, detail = "timeout", "out of memory while comparing"
    return status, detail, time.monotonic() - start


# ---------------------------------------------------------------- public API


def verify_answer(
    pred: str | None, gold: str, *, mode: str = "math", timeout: float = 5.0, language: str | None = None
) -> Verdict:
    """Check an already-extracted answer against the gold answer.

    In "math" mode math-verify runs in this process, bounded by ``timeout`` only on the main thread;
    use :func:`verify_batch` for a hard bound everywhere. ``language``: the problem's language (``"de"``,
    ``"en"``...), which decides how ``8.000`` or ``16,00`` read (see
    :func:`~distill.verify.normalize.localize_number`); ``None`` normalises only unambiguous forms.

    Example:
        >>> verify_answer("25", "025", mode="aime").status
        'correct'
        >>> verify_answer(r"\\frac{1}{2}", "0.5").correct
        True
        >>> verify_answer(None, "3").status
        'no_answer'
        >>> verify_answer("8.000", "8000", language="de").status, verify_answer("8.000", "8000", language="en").status
        ('correct', 'incorrect')
    """
    check_mode(mode)
    gold_key = check_gold(gold, mode)
    early = decide_without_sympy(pred, gold, gold_key, mode, language=language)
    if early is not None:
        return early
    assert pred is not None
    status, detail, seconds = judge_inprocess(*judging_forms(pred, gold, language), timeout)
    return Verdict(status, pred, gold, detail, seconds)


def decide_without_sympy(
    pred: str | None, gold: str, gold_key: str, mode: str, *, language: str | None = None
) -> Verdict | None:
    """The verdict when it needs no math-verify (no answer, AIME, identical text); else ``None``.

    Example:
        >>> decide_without_sympy(r"48\\,h", "48", "48", "math").status
        'correct'
    """
    if pred is None or not pred.strip():
        return Verdict("no_answer", None, gold, "no answer to check")
    if mode == "aime":
        value = normalize_aime(comparable_form(pred, language))
        if value is None:
            return Verdict("incorrect", pred, gold, "prediction is not an integer from 0 to 999")
        return Verdict("correct" if value == gold_key else "incorrect", pred, gold)
    pred_form, gold_form = judging_forms(pred, gold, language)
    if canonical_text(pred_form) == canonical_text(gold_form):
        return Verdict("correct", pred, gold)
    return None


def verify_completion(
    completion: str,
    gold: str,
    *,
    mode: str = "math",
    think: str = "auto",
    prompt_has_think: bool = False,
    fallback: bool = False,
    timeout: float = 5.0,
    reasoning_format: str = "auto",
    reasoning_delimiters: tuple[str, str] | None = None,
    language: str | None = None,
) -> Verdict:
    """Extract the final answer from a completion and check it.

    ``think``: "required" (no ``</think>`` means status "unfinished"), "optional" (answer taken after
    ``</think>`` when present, else from the whole text), "auto" (required when ``<think>`` is in the
    completion or ``prompt_has_think``); with ``reasoning_format`` other markers take the place of
    ``<think>``/``</think>`` (see :func:`~distill.verify.split.split_reasoning`). ``language``: see
    :func:`verify_answer`.

    Example:
        >>> verify_completion("<think>2*2</think>So $\\\\boxed{4}$.", "4").status
        'correct'
        >>> verify_completion("<think>2*2 = \\\\boxed{4} and then", "4").status
        'unfinished'
    """
    check_mode(mode)
    check_gold(gold, mode)
    check_reasoning_format(reasoning_format, reasoning_delimiters)
    extracted, early, detail = answer_from_completion(
        completion, mode=mode, think=think, prompt_has_think=prompt_has_think, fallback=fallback,
        reasoning_format=reasoning_format, reasoning_delimiters=reasoning_delimiters,
    )
    if early is not None:
        return Verdict(early, None, gold, detail)
    return verify_answer(extracted, gold, mode=mode, timeout=timeout, language=language)


def answers_equivalent(
    a: str, b: str, *, mode: str = "math", timeout: float = 5.0, language: str | None = None
) -> bool:
    """Whether two predicted answers mean the same thing (for majority-vote grouping).

    Symmetric: in "math" mode math-verify must accept each as gold for the other. In "aime" mode both
    are compared as integers when both are integers 0..999, else as text. A timeout counts as "not
    equivalent" (bounded on the main thread only; see :func:`run_with_deadline`).

    Example:
        >>> answers_equivalent("025", "25", mode="aime"), answers_equivalent(r"\\frac{1}{2}", "0.5")
        (True, True)
    """
    check_mode(mode)
    a, b = judging_forms(a, b, language)
    if mode == "aime":
        na, nb = normalize_aime(a), normalize_aime(b)
        if na is not None and nb is not None:
            return na == nb
        return canonical_text(a) == canonical_text(b)
    _math_verify()
    try:
        return bool(run_with_deadline(equivalent_math, a, b, timeout=timeout))
    except (Deadline, RecursionError, MemoryError):
        return False
