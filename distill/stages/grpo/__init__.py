"""``distill grpo``: the R1-Zero teacher, GRPO (TRL) with rule-based rewards.

- ``config``: :class:`GRPOStageConfig`; ``stage``: ``run(cfg)``;
- ``data``: problems -> prompt rows (R1-Zero template or chat prompt) + a held-out set;
- ``reward_setup``: the recipe's ``rewards:`` -> TRL reward functions and weights (built on :mod:`distill.rewards`);
- ``trl_args``: our config -> TRL ``GRPOConfig`` (vLLM colocate/server or transformers);
- ``heldout``: the periodic held-out eval (pass@1 over n samples, scored by :mod:`distill.verify`);
- ``metrics`` and ``plots``: the per-step JSONL and its PNG curves;
- ``callbacks``: the TrainerCallbacks that tie them to training (the clean stop on Ctrl-C or SIGTERM is the
  shared :mod:`distill.training_stop`);
- ``serve``: the ``trl vllm-serve`` command for server mode (used by scripts/slurm/grpo.slurm).
"""
