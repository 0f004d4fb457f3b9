"""GRPO reward functions in TRL's signature, built on :mod:`distill.verify`.

TRL's ``GRPOTrainer`` calls each reward as ``fn(completions, **kwargs) -> list[float | None]``, where
``completions`` are strings (plain prompts) or chat lists ``[{"role": "assistant", "content": ...}]``, and
``kwargs`` hold ``prompts``, ``completion_ids``, ``trainer_state`` and every dataset column (one value per
completion). ``None`` means "no reward for this row" (TRL ignores it in the sum).

Because dataset columns arrive as keyword arguments, a reward's own settings can't be keyword arguments
of the call (a column named ``mode`` would silently override them). Settings are bound once, by a
factory: ``REWARDS[name](...)`` returns a configured reward (the accuracy reward takes a
:class:`~distill.verify.VerifySettings` whole); :func:`build_rewards` does it from a recipe's ``rewards:``
mapping. The module-level ``accuracy_reward`` etc. are the factories' defaults.

The paper's rewards: accuracy (rule-based, final answer vs ground truth) and format (``<think>``). R1 adds a
language-consistency reward; ``code`` runs the answer's program against the row's tests in the sandbox
(:func:`make_code_reward`); ``overlong_penalty`` is DAPO's soft length penalty, a departure from the paper
offered for long-CoT runs with a length cap.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

from distill.verify import VerifySettings, language_consistency, split_think, verify_batch
from distill.verify.code_tests import code_tests_of_row
from distill.verify.readability import LANGUAGES
from distill.verify.settings import SETTING_NAMES

RewardFn = Callable[..., list[float | None]]

# Keyword arguments TRL itself adds; everything else in **kwargs is a dataset column.
_TRL_KWARGS = {"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric"}


def completion_text(completion: Any) -> str:
    """The text of one completion, whether a string or a chat list (assistant turns joined).

    Example:
        >>> completion_text([{"role": "assistant", "content": "hi"}]), completion_text("hi")
        ('hi', 'hi')
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, Sequence):
        messages = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"]
        return "".join(_content_text(m.get("content")) for m in (assistant or messages))
    raise TypeError(
        f"a completion must be a string or a list of chat messages, got {type(completion).__name__}"
    )


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _named(fn: RewardFn, name: str) -> RewardFn:
    fn.__name__ = name
    fn.__qualname__ = name
    return fn



def make_accuracy_reward(
    settings: VerifySettings = VerifySettings(),
    *,
    answer_column: str = "answer",
    prompt_has_think: bool = False,
) -> RewardFn:
    """1.0 when the completion's final answer equals the gold in ``answer_column``, else 0.0.

    ``None`` for a row whose gold is missing. Verification runs through :func:`distill.verify.verify_batch`
    with ``settings`` (worker processes, a hard ``settings.timeout`` per answer; ``workers=0`` for
    in-process). ``prompt_has_think``: the prompts end with a prefilled ``<think>``. In a recipe the
    settings are the entry's own keys (``accuracy: {mode: aime, workers: 0}``; see :func:`build_rewards`).

    Example:
        >>> reward = make_accuracy_reward(VerifySettings(mode="aime", workers=0))
        >>> reward(["\\\\boxed{025}", "\\\\boxed{7}", "no"], answer=["25", "8", None])
        [1.0, 0.0, None]
    """

    def accuracy_reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        golds = kwargs.get(answer_column)
        if golds is None:
            columns = sorted(k for k in kwargs if k not in _TRL_KWARGS)
            raise ValueError(
                f"accuracy reward: no dataset column {answer_column!r} in this batch (columns: {columns}); "
                "set the reward's answer_column parameter to the column that holds the gold answer"
            )
        if len(golds) != len(completions):
            raise ValueError(f"accuracy reward: {len(completions)} completions but {len(golds)} gold answers")
        rows = [i for i, g in enumerate(golds) if g is not None and str(g).strip()]
        verdicts = verify_batch(
            [completion_text(completions[i]) for i in rows],
            [str(golds[i]) for i in rows],
            settings,
            prompt_has_think=prompt_has_think,
        )
        rewards: list[float | None] = [None] * len(completions)
        for i, verdict in zip(rows, verdicts, strict=True):
            rewards[i] = 1.0 if verdict.correct else 0.0
        return rewards

    return accuracy_reward


_R1_ZERO_RE = re.compile(r"<think>(?P<reasoning>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>", re.DOTALL)


def _with_open_tag(text: str, prompt_has_think: bool) -> str:
    text = text.strip()
    if prompt_has_think and not text.startswith("<think>"):
        text = "<think>" + text
    return text


def _think_format_ok(text: str, prompt_has_think: bool) -> bool:
    text = _with_open_tag(text, prompt_has_think)
    if not text.startswith("<think>") or text.count("<think>") != 1 or text.count("</think>") != 1:
        return False
    return bool(text.split("</think>", 1)[1].strip())


def make_format_reward(*, prompt_has_think: bool = False) -> RewardFn:
    """1.0 when the completion is ``<think>...</think>`` followed by a non-empty answer, else 0.0.

    Exactly one of each tag. With ``prompt_has_think=True`` (the prompt ends with a prefilled ``<think>``)
    the completion is expected to start inside the reasoning.

    Example:
        >>> make_format_reward()(["<think>ok</think> 4", "4", "<think>ok</think>  "])
        [1.0, 0.0, 0.0]
        >>> make_format_reward(prompt_has_think=True)(["reasoning</think> 4"])
        [1.0]
    """

    def format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        return [1.0 if _think_format_ok(completion_text(c), prompt_has_think) else 0.0 for c in completions]

    return format_reward


def make_r1_zero_format_reward(*, prompt_has_think: bool = False) -> RewardFn:
    """1.0 for exactly ``<think> reasoning </think> <answer> answer </answer>`` (R1-Zero template), else 0.0.

    Example:
        >>> make_r1_zero_format_reward()(["<think>r</think> <answer>4</answer>", "<think>r</think> 4"])
        [1.0, 0.0]
    """

    def r1_zero_format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        out: list[float | None] = []
        for c in completions:
            text = _with_open_tag(completion_text(c), prompt_has_think)
            m = _R1_ZERO_RE.fullmatch(text)
            ok = (
                m is not None
                and bool(m.group("answer").strip())
                and all(text.count(tag) == 1 for tag in ("<think>", "</think>", "<answer>", "</answer>"))
            )
            out.append(1.0 if ok else 0.0)
        return out

    return r1_zero_format_reward



def make_language_consistency_reward(
    *, lang: str = "en", problem_column: str = "problem", prompt_has_think: bool = False
) -> RewardFn:
    """Share of ``lang`` words in the chain of thought (the ``<think>`` part; the whole text without tags).

    The filter's measure (:func:`distill.verify.language.language_consistency`): ``lang`` is a code of the
    language identifier, or ``"auto"``: each row's problem (column ``problem_column``) sets the target. A
    quotation of the problem in the chain of thought does not count against it.

    Example:
        >>> make_language_consistency_reward()(["<think>We add 面积</think> 5"])
        [0.5]
    """
    if lang != "auto" and lang not in LANGUAGES:
        raise ValueError(f"lang must be one of 'auto' or the identifier's codes ({' '.join(LANGUAGES)}), got {lang!r}")

    def language_consistency_reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        problems = kwargs.get(problem_column)
        out: list[float | None] = []
        for i, c in enumerate(completions):
            text = completion_text(c)
            parts = split_think(text, prompt_has_think=prompt_has_think)
            cot = parts.reasoning if parts.reasoning is not None else text
            problem = problems[i] if problems is not None else None
            out.append(language_consistency(cot, lang, problem=problem if isinstance(problem, str) else None))
        return out

    return language_consistency_reward



def make_overlong_penalty(
    *, max_length: int = 32768, buffer: int | None = None, cache: int | None = None, unit: str = "auto"
) -> RewardFn:
    """DAPO's soft overlong punishment: 0 up to ``max_length - buffer``, then linearly down to -1 at
    ``max_length``, and -1 beyond.

    ``buffer`` is DAPO's L_cache (``cache`` is accepted as another name; default 4096, capped at
    ``max_length``). Length is counted in tokens from TRL's ``completion_ids`` when present
    (``unit="auto"``), else in characters; ``unit="tokens"`` makes ``completion_ids`` mandatory.

    Example:
        >>> penalty = make_overlong_penalty(max_length=10, buffer=4, unit="chars")
        >>> penalty(["x" * 6, "x" * 8, "x" * 10, "x" * 12])
        [0.0, -0.5, -1.0, -1.0]
    """
    if buffer is not None and cache is not None and buffer != cache:
        raise ValueError(
            f"overlong penalty: give buffer or cache (the same thing), not both ({buffer} vs {cache})"
        )
    size = buffer if buffer is not None else cache if cache is not None else min(4096, max_length)
    if max_length < 1:
        raise ValueError(f"overlong penalty: max_length must be >= 1, got {max_length}")
    if not 0 < size <= max_length:
        raise ValueError(f"overlong penalty: buffer must be in 1..max_length={max_length}, got {size}")
    if unit not in ("auto", "tokens", "chars"):
        raise ValueError(f"overlong penalty: unit must be 'auto', 'tokens' or 'chars', got {unit!r}")
    safe = max_length - size

    def overlong_penalty(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        ids = kwargs.get("completion_ids")
        if unit == "tokens" and ids is None:
            raise ValueError("overlong penalty with unit='tokens' needs TRL's completion_ids")
        if unit != "chars" and ids is not None:
            lengths = [len(x) for x in ids]
        else:
            lengths = [len(completion_text(c)) for c in completions]
        out: list[float | None] = []
        for length in lengths:
            if length <= safe:
                out.append(0.0)
            elif length <= max_length:
                out.append((safe - length) / size)
            else:
                out.append(-1.0)
        return out

    return overlong_penalty


def make_code_reward(
    *,
    tests_column: str | None = None,
    partial: bool = False,
    cpu_s: float = 10.0,
    wall_s: float = 15.0,
    memory_mb: int = 1024,
    workers: int | None = None,
    prompt_has_think: bool = False,
) -> RewardFn:
    """1.0 when the program in the completion's answer passes all of the row's tests, else 0.0 (with
    ``partial: true``, the share of tests that pass); ``None`` for a row without tests.

    The program is the last fenced code block of the answer part (after ``</think>``; a completion whose
    reasoning never closed has no answer, hence no code: 0.0). It runs in :mod:`distill.verify.sandbox`
    through :func:`distill.verify.verify_code_batch`, ``workers`` at a time (default: usable CPUs), each run
    bounded by ``cpu_s``, ``wall_s`` and ``memory_mb``: an endless loop scores 0.0 after ``wall_s`` at most.
    Tests come from ``tests_column`` or else the first of :data:`~distill.verify.code_tests.CODE_TEST_COLUMNS`. In a
    recipe: ``rewards: {code: {weight: 1.0}}``.

    Example:
        >>> reward = make_code_reward(workers=1)
        >>> reward(["```python\\nprint(int(input()) * 2)\\n```", "no code"],
        ...        tests=[{"inputs": ["2\\n"], "outputs": ["4\\n"]}, None])
        [1.0, None]
    """
    from distill.verify import Limits

    limits = Limits(cpu_s=cpu_s, wall_s=wall_s, memory_bytes=int(memory_mb) << 20)

    def code_reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        from distill.verify import extract_program, verify_code_batch

        rows, programs, tests = [], [], []
        for i, c in enumerate(completions):
            try:
                spec = code_tests_of_row(kwargs, i, tests_column)
            except ValueError as exc:
                raise ValueError(f"code reward: row {i}: tests are not valid JSON ({exc})") from None
            if spec is None:
                continue
            parts = split_think(completion_text(c), prompt_has_think=prompt_has_think)
            rows.append(i)
            programs.append(extract_program(parts.answer) if parts.finished else None)
            tests.append(spec)
        rewards: list[float | None] = [None] * len(completions)
        if not rows:
            return rewards
        try:
            verdicts = verify_code_batch(programs, tests, limits=limits, workers=workers, fail_fast=not partial)
        except TypeError as exc:
            raise ValueError(f"code reward: {exc}") from None
        for i, v in zip(rows, verdicts, strict=True):
            if v.correct:
                rewards[i] = 1.0
            else:
                rewards[i] = v.passed / v.total if partial and v.total else 0.0
        return rewards

    return code_reward


REWARDS: dict[str, Callable[..., RewardFn]] = {
    "accuracy": make_accuracy_reward,
    "format": make_format_reward,
    "r1_zero_format": make_r1_zero_format_reward,
    "language_consistency": make_language_consistency_reward,
    "overlong": make_overlong_penalty,
    "code": make_code_reward,
}

accuracy_reward = make_accuracy_reward()
format_reward = make_format_reward()
r1_zero_format_reward = make_r1_zero_format_reward()
language_consistency_reward = make_language_consistency_reward()
overlong_penalty = make_overlong_penalty()
code_reward = make_code_reward()


def build_rewards(spec: dict[str, dict[str, Any] | None]) -> tuple[list[RewardFn], list[float]]:
    """Reward functions and weights from a recipe mapping ``{name: {"weight": w, **params}}``.

    ``name`` is a key of :data:`REWARDS`, or any label when the entry says which reward it is with
    ``reward: <key>`` (to use one reward twice with different settings). Each function's ``__name__`` is
    its label, so TRL logs them apart. Unknown names or parameters are a ValueError listing valid ones.

    Example:
        >>> spec = {"accuracy": {"weight": 1.0, "mode": "aime"}, "format": {"weight": 0.2}}
        >>> fns, weights = build_rewards(spec)
        >>> [f.__name__ for f in fns], weights
        (['accuracy', 'format'], [1.0, 0.2])
    """
    if not spec:
        raise ValueError(f"no rewards given; choose from {sorted(REWARDS)}")
    fns: list[RewardFn] = []
    weights: list[float] = []
    for label, raw in spec.items():
        params = dict(raw or {})
        kind = params.pop("reward", label)
        if kind not in REWARDS:
            raise ValueError(
                f"unknown reward {kind!r} (in entry {label!r}); valid rewards: {sorted(REWARDS)}"
            )
        weight = params.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f"reward {label!r}: weight must be a number, got {weight!r}")
        factory = REWARDS[kind]
        fns.append(_named(factory(**_factory_kwargs(label, factory, params)), str(label)))
        weights.append(float(weight))
    return fns, weights


def _factory_kwargs(label: Any, factory: Callable[..., RewardFn], params: dict[str, Any]) -> dict[str, Any]:
    """A recipe entry's parameters as keyword arguments of ``factory``; unknown names are a ValueError.

    A factory that takes ``settings`` (the accuracy reward) gets the entry's verify options (``mode``,
    ``think``, ``fallback``, ``timeout``, ``workers``) as one :class:`~distill.verify.VerifySettings`.
    """
    valid = list(inspect.signature(factory).parameters)
    takes_settings = "settings" in valid
    if takes_settings:
        valid = [p for p in valid if p != "settings"] + list(SETTING_NAMES)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"reward {label!r}: unknown parameter(s) {unknown}; valid: {sorted([*valid, 'reward', 'weight'])}"
        )
    if not takes_settings:
        return params
    kwargs = {k: v for k, v in params.items() if k not in SETTING_NAMES}
    kwargs["settings"] = VerifySettings.from_options(params)
    return kwargs
