"""The truth layer: is this answer right? One implementation for GRPO rewards, the filter and the eval.

- :mod:`~distill.verify.split` cuts a completion into reasoning and answer (``<think>``, Sky-T1's and s1's
  delimiters, a custom pair);
- :mod:`~distill.verify.extract` finds the final answer (last ``\\boxed{}``, ``<answer>``, optional phrases);
- :mod:`~distill.verify.normalize` holds the purely textual normal forms of an answer;
- :mod:`~distill.verify.equivalence` decides equality (math-verify, or integers for AIME) -> :class:`Verdict`,
  in this process under :mod:`~distill.verify.deadline`'s alarm;
- :mod:`~distill.verify.settings` holds :class:`VerifySettings`, how checks are done (mode, think, fallback,
  timeout, workers), which every stage passes whole;
- :mod:`~distill.verify.batch` (:func:`verify_batch`) does it for many items with a hard per-item time bound,
  on the worker processes of :mod:`~distill.verify.pool` (:mod:`~distill.verify.worker_handle`: one
  worker; :mod:`~distill.verify.dispatch`: one batch through the workers);
- :mod:`~distill.verify.readability` measures language mixing, paragraphs, code, truncation, leftover special
  tokens and repetition;
- :mod:`~distill.verify.sandbox` runs model-written programs in a sandbox, and :mod:`~distill.verify.code_tests`
  checks them against a problem's tests (:func:`verify_code_batch`); :mod:`~distill.verify.code_extract` finds
  the program in an answer;
- :mod:`~distill.verify.judge` asks an LLM judge about the answers the rules cannot settle (the paper's
  generative reward), through :mod:`~distill.verify.judge_client` with :mod:`~distill.verify.judge_cache`.

Importing this package is cheap: math-verify (and sympy) load on first use.

Example:
    >>> from distill.verify import verify_completion
    >>> verify_completion("<think>...</think> The answer is $\\\\boxed{025}$.", "25", mode="aime").correct
    True
"""

from distill.verify.batch import verify_batch
from distill.verify.code_extract import extract_program, program_of
from distill.verify.code_tests import CodeVerdict, run_tests, verify_code_batch
from distill.verify.equivalence import (
    STATUSES,
    Verdict,
    answers_equivalent,
    verify_answer,
    verify_completion,
)
from distill.verify.extract import extract_answer, extract_boxed, normalize_aime
from distill.verify.pool import VerifyPool, close_shared_pools
from distill.verify.readability import (
    has_code_block,
    is_mixed_language,
    language_consistency,
    leftover_special_tokens,
    longest_paragraph,
    looks_truncated,
    repetition_ratio,
)
from distill.verify.sandbox import ExecResult, Limits, run_program
from distill.verify.settings import MODES, THINK_MODES, VerifySettings
from distill.verify.split import REASONING_FORMATS, ThinkSplit, detect_format, split_reasoning, split_think

__all__ = [
    "MODES",
    "REASONING_FORMATS",
    "CodeVerdict",
    "ExecResult",
    "Limits",
    "detect_format",
    "extract_program",
    "program_of",
    "leftover_special_tokens",
    "looks_truncated",
    "run_program",
    "run_tests",
    "split_reasoning",
    "verify_code_batch",
    "STATUSES",
    "THINK_MODES",
    "ThinkSplit",
    "Verdict",
    "VerifyPool",
    "VerifySettings",
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
