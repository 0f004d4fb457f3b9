"""The truth layer: is this answer right? One implementation for GRPO rewards, the filter and the eval.

- :mod:`~distill.verify.split` cuts a completion into reasoning and answer (``</think>``);
- :mod:`~distill.verify.extract` finds the final answer (last ``\\boxed{}``, ``<answer>``, optional phrases);
- :mod:`~distill.verify.equivalence` decides equality (math-verify, or integers for AIME) -> :class:`Verdict`;
- :mod:`~distill.verify.pool` does it for many items with a hard per-item time bound;
- :mod:`~distill.verify.readability` measures language mixing, paragraphs, code and repetition.

Importing this package is cheap: math-verify (and sympy) load on first use.

Example:
    >>> from distill.verify import verify_completion
    >>> verify_completion("<think>...</think> The answer is $\\\\boxed{025}$.", "25", mode="aime").correct
    True
"""

from distill.verify.equivalence import (
    MODES,
    STATUSES,
    THINK_MODES,
    Verdict,
    answers_equivalent,
    verify_answer,
    verify_completion,
)
from distill.verify.extract import extract_answer, extract_boxed, normalize_aime
from distill.verify.pool import VerifyPool, close_shared_pools, verify_batch
from distill.verify.readability import (
    has_code_block,
    is_mixed_language,
    language_consistency,
    longest_paragraph,
    repetition_ratio,
)
from distill.verify.split import ThinkSplit, split_think

__all__ = [
    "MODES",
    "STATUSES",
    "THINK_MODES",
    "ThinkSplit",
    "Verdict",
    "VerifyPool",
    "answers_equivalent",
    "close_shared_pools",
    "extract_answer",
    "extract_boxed",
    "has_code_block",
    "is_mixed_language",
    "language_consistency",
    "longest_paragraph",
    "normalize_aime",
    "repetition_ratio",
    "split_think",
    "verify_answer",
    "verify_batch",
    "verify_completion",
]
