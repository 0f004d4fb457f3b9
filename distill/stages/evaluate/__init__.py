"""``distill eval``: pass@1 over n samples, cons@n and pass@k, the DeepSeek-R1 way (lm-eval + :mod:`distill.verify`).

- ``tasks``: the benchmark registry and where the lm-eval task YAMLs live (``eval/``);
- ``hooks``: what those YAMLs call (dataset loading, the prompt, per-problem metrics);
- ``completions``: reading a completions file to re-score without a model;
- ``scoring``: verdicts through :mod:`distill.verify`, metrics through :mod:`distill.metrics`;
- ``harness``: running lm-eval (vllm or hf backend) in resumable chunks;
- ``outputs``: ``results.json``, ``samples.jsonl``, ``problems.jsonl``, ``summary.md``.

Nothing here imports lm_eval, torch or datasets at module level.
"""
