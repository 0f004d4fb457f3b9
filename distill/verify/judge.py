"""The generative judge: an LLM asked about the answers the rules cannot settle (the paper's "generative reward").

The rules of :mod:`distill.verify` decide most answers. A few they cannot: no boxed answer was found
(``unparsed``: status ``no_answer``), math-verify could not read or compare the two sides (``uncomparable``:
``unparsable``, ``timeout``), or they compared ``incorrect`` although the two look different -- the answer is
not a plain number like the gold, e.g. "seven halves" against ``7/2`` (``incorrect``; two plain numbers that
differ are settled). Those named in ``when`` (:data:`JUDGE_WHEN`) are sent to any OpenAI-compatible server
(:class:`~distill.engines.openai_engine.OpenAIEngine`: its retries with backoff, ``Retry-After``, a timeout
per call, and the key kept out of every message).

The judge sees the problem, the gold answer and the final answer only (not the reasoning; for an unparsed
answer, the tail of the text after the reasoning) and must end its reply with ``Judgement: Yes`` or
``Judgement: No``. Yes makes the verdict ``correct``, No ``incorrect``, both with the source ``judge``; a
reply without that line is ``unclear`` and a call that fails (after the retries) is ``failed``: either way the
rule verdict stands. After :data:`BREAKER` failures in a row the rest are not asked (also ``failed``), so an
unreachable judge costs a few timeouts, not one per answer. Answers are cached on disk
(:mod:`distill.verify.judge_cache`): a rerun asks nothing twice.

Example:
    >>> judge_reason("incorrect", "seven halves", "7/2", JUDGE_WHEN), judge_reason("incorrect", "3", "4", JUDGE_WHEN)
    ('incorrect', None)
    >>> read_judgement("Both are 3.5.\\nJudgement: Yes"), read_judgement("I think so."), read_judgement("**Judgement**: no")
    ('yes', 'unclear', 'no')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from distill.verify.equivalence import Verdict
from distill.verify.normalize import comparable_form
from distill.verify.split import split_reasoning

if TYPE_CHECKING:
    from distill.verify.settings import VerifySettings

JUDGE_WHEN = ("unparsed", "uncomparable", "incorrect")
# The rule statuses each ``when`` covers ("incorrect" only between different-looking forms: judge_reason).
WHEN_STATUSES = {"unparsed": ("no_answer",), "uncomparable": ("unparsable", "timeout"), "incorrect": ("incorrect",)}
DECISIONS = ("yes", "no", "unclear", "failed")
PROMPT_VERSION = 1          # part of the cache key: a new prompt never reuses old answers
ANSWER_CHARS = 1500         # an answer shown is cut to its last characters ...
PROBLEM_CHARS = 6000        # ... a problem to its first
BREAKER = 3                 # failed calls in a row after which the rest are not asked

# Help of the judge options, written once: every stage config that offers the judge uses these.
JUDGE_HELP = {
    "base_url": "generative judge: an OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1) asked about the "
                "answers the rules cannot settle (see --judge-when); off when not given",
    "model": "generative judge: the served model's name (needed with --judge-base-url)",
    "api_key_env": "generative judge: the NAME of the environment variable holding its API key (the key itself "
                   "is never given on the command line nor written anywhere); not given: no key is sent",
    "when": "generative judge: which rule verdicts it is asked about: unparsed (no boxed answer), uncomparable "
            "(math-verify could not read or compare them), incorrect (only when the answer does not look like a "
            "plain number as the gold does)",
    "concurrency": "generative judge: calls at a time",
    "timeout": "generative judge: seconds per call",
    "retries": "generative judge: retries of a call on HTTP 429/5xx, timeouts and connection errors (with "
               "exponential backoff; Retry-After honoured)",
    "backoff": "generative judge: seconds before the first retry (doubling each time)",
    "max_tokens": "generative judge: most tokens of its reply",
    "cache": "generative judge: its answers file (jsonl; default: judge_cache.jsonl in --out); a rerun asks "
             "only what it does not hold",
}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JUDGEMENT = re.compile(r"^[ \t*_#>`-]*judge?ment[ \t*_]*:[ \t*_]*(yes|no)\b", re.IGNORECASE | re.MULTILINE)
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN = re.compile(rf"^(?:[a-zA-Z]\s*=\s*)?(?:{_NUM}|{_NUM}\s*/\s*{_NUM}|[-+]?\\[dt]?frac\{{{_NUM}\}}\{{{_NUM}\}})$")

PROMPT = """\
Below are a math problem, its reference answer, and the final answer a student gave. Decide whether the \
student's final answer says the same thing as the reference answer.

Count them as the same when they name the same value, set, interval or expression, however it is written: in \
words instead of digits, as an equivalent fraction, decimal or simplified form, with units or "x =" around it, \
in LaTeX or in plain text. Count them as different when the value differs, when the student's answer is missing \
or cut off, or when it offers several answers that disagree. Do not solve the problem yourself and do not grade \
any working: compare the two answers only.

## Problem
{problem}

## Reference answer
{gold}

## Student's final answer
{answer}

Explain in one or two sentences. Then end your reply with a line that reads exactly "Judgement: Yes" if the \
answers are the same, or "Judgement: No" if they are not."""


def check_env_name(name: str | None) -> None:
    """Raise ValueError unless ``name`` looks like an environment variable's name (it is never echoed: someone
    may have put the key itself there)."""
    if name is not None and not _ENV_NAME.match(name):
        raise ValueError("judge_api_key_env must be the NAME of an environment variable (letters, digits and _, "
                         "e.g. JUDGE_API_KEY), not the key itself: export the key in that variable")


def safe_url(url: str) -> str:
    """``url`` without any user:password part (for records and messages)."""
    parsed = urlparse(url)
    if parsed.username is None and parsed.password is None:
        return url
    return parsed._replace(netloc=(parsed.hostname or "") + (f":{parsed.port}" if parsed.port else "")).geturl()


@dataclass(frozen=True)
class JudgeSettings:
    """Where the judge is and how it is asked (see :data:`JUDGE_HELP` for each field).

    Example:
        >>> JudgeSettings("http://127.0.0.1:8000/v1", "m", when=["unparsed"]).when
        ('unparsed',)
        >>> JudgeSettings("http://127.0.0.1:8000/v1", "m", when=["sometimes"])
        Traceback (most recent call last):
        ...
        ValueError: judge_when: 'sometimes' is not one of unparsed, uncomparable, incorrect
    """

    base_url: str
    model: str
    api_key_env: str | None = None
    when: tuple[str, ...] = JUDGE_WHEN
    concurrency: int = 8
    timeout: float = 120.0
    retries: int = 4
    backoff: float = 1.0
    max_tokens: int = 2048
    cache: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", tuple(self.when))
        if not self.when:
            raise ValueError(f"judge_when names no case: give one or more of {', '.join(JUDGE_WHEN)}")
        for case in self.when:
            if case not in JUDGE_WHEN:
                raise ValueError(f"judge_when: {case!r} is not one of {', '.join(JUDGE_WHEN)}")
        check_env_name(self.api_key_env)
        if self.concurrency < 1 or self.retries < 0 or self.max_tokens < 1:
            raise ValueError("judge_concurrency and judge_max_tokens must be >= 1 and judge_retries >= 0")
        if not self.timeout > 0 or self.backoff < 0:
            raise ValueError("judge_timeout must be > 0 seconds and judge_backoff >= 0")

    def api_key(self) -> str | None:
        """The key from ``$api_key_env`` (None when no variable is named); a named variable that is unset is a
        :class:`~distill.errors.ConfigError`."""
        import os

        from distill.errors import ConfigError

        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(f"--judge-api-key-env {self.api_key_env}: the environment variable {self.api_key_env} "
                              "is not set (or empty); export the judge's API key in it, or leave "
                              "--judge-api-key-env out for a server that needs no key")
        return key

    def describe(self) -> dict[str, Any]:
        """The settings as recorded (the key variable by name only; no credentials in the URL)."""
        return {**asdict(self), "base_url": safe_url(self.base_url), "when": list(self.when),
                "prompt_version": PROMPT_VERSION}


def judge_settings(options: Any, default_cache: str) -> JudgeSettings | None:
    """The judge a stage config asks for (its ``judge_*`` options), or None when ``judge_base_url`` is not set;
    ``judge_cache`` defaults to ``default_cache``. Raises ValueError for options that do not fit together."""
    unknown = [case for case in options.judge_when if case not in JUDGE_WHEN]
    if unknown:
        raise ValueError(f"judge_when: {unknown[0]!r} is not one of {', '.join(JUDGE_WHEN)}")
    if options.judge_base_url is None and options.judge_model is None:
        return None
    if options.judge_base_url is None or options.judge_model is None:
        raise ValueError("the generative judge needs both --judge-base-url and --judge-model")
    return JudgeSettings(options.judge_base_url, options.judge_model, options.judge_api_key_env,
                         tuple(options.judge_when), options.judge_concurrency, options.judge_timeout,
                         options.judge_retries, options.judge_backoff, options.judge_max_tokens,
                         options.judge_cache or default_cache)


# ---------------------------------------------------------------- which answers, what it sees, what it said


def plain_number(text: str) -> bool:
    """Whether an answer is a plain number (``12``, ``-0.5``, ``7/2``, ``\\frac{7}{2}``, ``x = 3``, units dropped).

    Example:
        >>> [plain_number(t) for t in ("12", "\\\\frac{7}{2}", "x = 3", "seven halves", "2\\\\sqrt{2}")]
        [True, True, True, False, False]
    """
    body = comparable_form(text).replace("$", "").replace("\\left", "").replace("\\right", "").strip()
    return bool(_PLAIN.match(body))


def judge_reason(status: str, extracted: str | None, gold: str, when: Sequence[str]) -> str | None:
    """The case (of ``when``) a rule verdict falls in, or None when the rules settled it."""
    if status == "incorrect" and (extracted is None or (plain_number(extracted) and plain_number(gold))):
        return None
    case = next((c for c, statuses in WHEN_STATUSES.items() if status in statuses), None)
    return case if case in when else None


def clip_answer(text: str) -> str:
    """The last :data:`ANSWER_CHARS` characters of an answer."""
    text = text.strip()
    return text if len(text) <= ANSWER_CHARS else "..." + text[-ANSWER_CHARS:]


def judge_prompt(problem: str, gold: str, answer: str) -> str:
    """The one user message the judge gets."""
    problem = problem.strip() or "(not available: compare the two answers as they stand)"
    if len(problem) > PROBLEM_CHARS:
        problem = problem[:PROBLEM_CHARS] + "..."
    return PROMPT.format(problem=problem, gold=gold.strip(), answer=clip_answer(answer) or "(empty)")


def read_judgement(reply: str) -> str:
    """``"yes"``/``"no"`` from the reply's last ``Judgement:`` line (after any reasoning), else ``"unclear"``."""
    if "</think>" in reply:
        reply = reply.rsplit("</think>", 1)[1]
    elif reply.lstrip().startswith("<think>"):
        return "unclear"                     # it never finished thinking
    found = _JUDGEMENT.findall(reply)
    return found[-1].lower() if found else "unclear"


@dataclass(frozen=True)
class Question:
    """One answer for the judge: the problem, gold and answer it sees, and why it is asked."""

    problem: str
    gold: str
    answer: str
    reason: str              # the case of JUDGE_WHEN
    rule_status: str         # the rules' verdict


@dataclass
class Judgement:
    """What the judge said about one answer. ``decision``: yes, no, unclear or failed (see the module doc)."""

    decision: str
    reply: str | None
    reason: str
    rule_status: str
    cached: bool = False
    error: str | None = None

    @property
    def decided(self) -> bool:
        """Whether the judge settled the verdict (yes or no): its source is then ``judge``."""
        return self.decision in ("yes", "no")

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "reason": self.reason, "rule_status": self.rule_status,
                "reply": self.reply, "cached": self.cached, **({"error": self.error} if self.error else {})}


@dataclass
class JudgeCounts:
    """What the judge did in a run (``filter_stats.json`` and ``results.json`` carry it)."""

    questions: int = 0
    calls: int = 0
    cache_hits: int = 0
    yes: int = 0
    no: int = 0
    unclear: int = 0
    failures: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None

    def add(self, j: Judgement) -> None:
        self.questions += 1
        self.cache_hits += j.cached
        setattr(self, "failures" if j.decision == "failed" else j.decision,
                getattr(self, "failures" if j.decision == "failed" else j.decision) + 1)
        self.by_reason[j.reason] = self.by_reason.get(j.reason, 0) + 1
        if j.error:
            self.last_error = j.error

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.failures == 0}



def summary_line(counts: dict[str, Any]) -> str:
    """One line for a run's summary from :meth:`JudgeCounts.to_dict` (plus ``settings``, when there).

    Example:
        >>> summary_line(JudgeCounts(questions=2, calls=1, cache_hits=1, yes=1, unclear=1).to_dict())
        'generative judge: 2 answer(s) asked (1 call(s), 1 from the cache): yes 1, no 0, unclear 1, failed 0'
    """
    model = (counts.get("settings") or {}).get("model")
    text = (f"generative judge{f' {model}' if model else ''}: {counts['questions']:,} answer(s) asked "
            f"({counts['calls']:,} call(s), {counts['cache_hits']:,} from the cache): yes {counts['yes']:,}, "
            f"no {counts['no']:,}, unclear {counts['unclear']:,}, failed {counts['failures']:,}")
    if counts["failures"]:
        text += (f"; JUDGE FAILED on {counts['failures']:,}: those keep the rules' verdict (last error: "
                 f"{counts['last_error']})")
    return text


def apply_judgement(verdict: Verdict, j: Judgement | None) -> Verdict:
    """The verdict after the judge: correct on yes, incorrect on no, the rules' verdict otherwise.

    Example:
        >>> v = Verdict("incorrect", "seven halves", "7/2")
        >>> apply_judgement(v, Judgement("yes", "Judgement: Yes", "incorrect", "incorrect")).status
        'correct'
        >>> apply_judgement(v, Judgement("unclear", "hmm", "incorrect", "incorrect")) == v
        True
    """
    if j is None or not j.decided:
        return verdict
    status = "correct" if j.decision == "yes" else "incorrect"
    return Verdict(status, verdict.extracted, verdict.gold, f"judge: {j.decision} (rules: {verdict.status})",
                   verdict.seconds)


def answer_part(completion: str, settings: VerifySettings, *, prompt_has_think: bool = False) -> str:
    """The text after the reasoning (the whole completion when it has none): what an unparsed answer shows."""
    parts = split_reasoning(completion, settings.reasoning_format, prompt_has_think=prompt_has_think,
                            custom=settings.reasoning_delimiters)
    return parts.answer if parts.finished else ""


def questions_for(verdicts: Sequence[Verdict], completions: Sequence[str], problems: Sequence[str],
                  settings: VerifySettings, when: Sequence[str], *,
                  prompt_has_think: bool = False) -> list[tuple[int, Question]]:
    """``(index, question)`` for each verdict the judge is asked about (see :func:`judge_reason`)."""
    out = []
    for i, v in enumerate(verdicts):
        reason = judge_reason(v.status, v.extracted, v.gold, when)
        if reason is None:
            continue
        shown = v.extracted if v.extracted is not None else answer_part(completions[i], settings,
                                                                        prompt_has_think=prompt_has_think)
        if shown.strip():
            out.append((i, Question(problems[i], v.gold, shown, reason, v.status)))
    return out
