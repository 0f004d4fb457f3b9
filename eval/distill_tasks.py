"""Hooks named by the task YAMLs in this folder (``!function distill_tasks.NAME``).

lm-eval imports this file by its path, so it holds no logic of its own: everything lives in
:mod:`distill.stages.evaluate.hooks`, which needs ``distill`` installed in the environment that runs lm-eval.
"""

from distill.stages.evaluate.hooks import (
    doc_to_text,
    keep_all_samples,
    load_dataset,
    process_results,
)

__all__ = ["doc_to_text", "keep_all_samples", "load_dataset", "process_results"]
