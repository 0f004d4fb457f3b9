"""The pieces of ``distill grpo`` (the stage itself is :mod:`distill.stages.grpo`).

- :mod:`~distill.grpo.data`: problems -> prompt rows (R1-Zero template or chat prompt) + a held-out set;
- :mod:`~distill.grpo.reward_setup`: the recipe's ``rewards:`` -> TRL reward functions and weights;
- :mod:`~distill.grpo.trl_args`: our config -> TRL ``GRPOConfig`` (vLLM colocate/server or transformers);
- :mod:`~distill.grpo.heldout`: the periodic held-out eval (pass@1 over n samples, scored by distill.verify);
- :mod:`~distill.grpo.metrics` and :mod:`~distill.grpo.plots`: the per-step JSONL and its PNG curves;
- :mod:`~distill.grpo.callbacks`: the TrainerCallbacks that tie them to training (and stop cleanly on Ctrl-C);
- :mod:`~distill.grpo.serve`: the ``trl vllm-serve`` command for server mode (used by scripts/slurm/grpo.slurm).
"""
