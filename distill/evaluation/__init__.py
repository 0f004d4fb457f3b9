"""The pieces of ``distill eval`` and ``distill card``.

- :mod:`~distill.evaluation.tasks`: the benchmark registry (aime24, aime25, math500, custom) and where the
  lm-eval task YAMLs live (``eval/``);
- :mod:`~distill.evaluation.hooks`: what those YAMLs call (dataset loading, the prompt, per-problem metrics);
- :mod:`~distill.evaluation.completions`: reading a completions file to re-score without a model;
- :mod:`~distill.evaluation.scoring`: verdicts through :mod:`distill.verify`, metrics through
  :mod:`distill.metrics`;
- :mod:`~distill.evaluation.harness`: running lm-eval (vllm or hf backend) in resumable chunks;
- :mod:`~distill.evaluation.report`: ``results.json``, ``samples.jsonl``, ``problems.jsonl``, ``summary.md``;
- :mod:`~distill.evaluation.lineage` and :mod:`~distill.evaluation.model_card`: the model card.

Nothing here imports lm_eval, torch or datasets at module level.
"""
