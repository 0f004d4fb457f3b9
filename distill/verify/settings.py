"""How answers are checked: :class:`VerifySettings`, the one set of options every verifying stage passes whole.

The GRPO accuracy reward, the rejection filter, ``distill generate``'s verdicts and ``distill eval`` all
build one :class:`VerifySettings` (a stage config's ``verify_settings()``) and hand it to
:func:`distill.verify.verify_batch`. Whether a prompt ended with ``<think>`` is not a setting: it belongs to
each prompt, so it travels beside the settings (``verify_batch(..., prompt_has_think=...)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from distill.verify.split import REASONING_FORMATS, check_reasoning_format

MODES = ("math", "aime")
__all__ = ["MODES", "REASONING_FORMATS", "SETTING_NAMES", "THINK_MODES", "VerifySettings", "check_mode", "check_think"]
THINK_MODES = ("auto", "required", "optional")


def check_mode(mode: str) -> None:
    """Raise ValueError unless ``mode`` is one of ``MODES``."""
    if mode not in MODES:
        raise ValueError(
            f"mode must be one of {MODES}, got {mode!r}: use 'aime' for integer answers 0-999, "
            "'math' for anything else"
        )


def check_think(think: str) -> None:
    """Raise ValueError unless ``think`` is one of ``THINK_MODES``."""
    if think not in THINK_MODES:
        raise ValueError(
            f"think must be one of {THINK_MODES}, got {think!r}: 'auto' requires a closed </think> when the "
            "completion or the prompt opens <think>"
        )


@dataclass(frozen=True)
class VerifySettings:
    """How completions are checked against gold answers.

    Attributes:
        mode: ``"math"`` (math-verify decides equality) or ``"aime"`` (integers 0..999, ``"025" == "25"``).
        think: ``"auto"`` (a closed ``</think>`` is required when the completion or the prompt opens
            ``<think>``), ``"required"`` (always) or ``"optional"`` (answer after ``</think>`` when there is
            one, else from the whole text).
        fallback: also accept "the answer is X" when there is no ``\\boxed{}`` (the paper does not).
        timeout: seconds allowed per answer check (> 0); a check that overruns gets status "timeout".
        workers: verification processes (``None``: one per CPU; ``0`` or ``1``: in this process).
        reasoning_format: how reasoning and answer are marked (:data:`REASONING_FORMATS`): ``"auto"``
            (detected per completion), ``"think"`` (``<think>...</think>``), ``"sky-t1"``
            (``<|begin_of_thought|>``/``<|begin_of_solution|>``), ``"s1"`` (``<|im_start|>think`` /
            ``<|im_start|>answer``) or ``"custom"``; the answer is taken from the answer part. ``think``
            applies to whichever markers these are.
        reasoning_delimiters: ``(open, close)`` for ``reasoning_format="custom"`` (a list is accepted).

    Example:
        >>> settings = VerifySettings(mode="aime", workers=0)
        >>> settings.mode, settings.think, settings.fallback, settings.timeout
        ('aime', 'auto', False, 5.0)
        >>> VerifySettings(reasoning_format="custom", reasoning_delimiters=["<r>", "</r>"]).reasoning_delimiters
        ('<r>', '</r>')
        >>> VerifySettings(timeout=0)
        Traceback (most recent call last):
        ...
        ValueError: timeout must be a number of seconds > 0, got 0: e.g. timeout=5.0
    """

    mode: str = "math"
    think: str = "auto"
    fallback: bool = False
    timeout: float = 5.0
    workers: int | None = None
    reasoning_format: str = "auto"
    reasoning_delimiters: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        check_mode(self.mode)
        check_think(self.think)
        if isinstance(self.reasoning_delimiters, list):  # from a recipe (YAML/JSON has no tuples)
            object.__setattr__(self, "reasoning_delimiters", tuple(self.reasoning_delimiters))
        check_reasoning_format(self.reasoning_format, self.reasoning_delimiters)
        if not isinstance(self.fallback, bool):
            raise ValueError(f"fallback must be true or false, got {self.fallback!r}")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or not self.timeout > 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {self.timeout!r}: e.g. timeout=5.0")
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0
        ):
            raise ValueError(
                f"workers must be an integer >= 0 or None, got {self.workers!r}: None for one process per CPU, "
                "0 to verify in this process"
            )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> VerifySettings:
        """The settings named in ``options`` (other keys ignored), defaults for the rest.

        Example:
            >>> VerifySettings.from_options({"mode": "aime", "weight": 1.0}).mode
            'aime'
        """
        return cls(**{name: options[name] for name in SETTING_NAMES if name in options})


# The keys of a recipe mapping (a reward's parameters) that are settings.
SETTING_NAMES = tuple(f.name for f in fields(VerifySettings))
