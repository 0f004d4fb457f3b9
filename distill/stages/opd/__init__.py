"""``distill opd``: on-policy distillation of a student from a teacher (TRL's IW-OPD trainer in JSD mode).

- ``config``: :class:`OPDConfig`; ``stage``: ``run(cfg)`` (relaunch, tokenizer check, train, save, summary);
- ``args``: our config -> TRL's ``IWOPDConfig`` (student sampling with vLLM or transformers, teacher in-process or
  served, precision);
- ``data``: problems -> chat prompts (+ off-policy teacher traces) and the gold answers the samples are scored by;
- ``trainer``: the TRL trainer with a resumable data order, per-micro-batch loss normalisation and the extra
  metrics (imported only by the training code: it imports TRL at module level);
- ``metrics`` and ``callbacks``: ``metrics.jsonl``, ``plots/*.png``, progress (the clean stop and the run.json
  refresh are the shared :mod:`distill.training_stop`);
- ``output``: the output folder, resume, and the student's final files.

The GPU-scale estimate (memory per GPU for student + teacher, tokens, GPU-hours) is in the pipeline planner,
:mod:`distill.stages.pipeline.opd_plan` (``distill pipeline --recipe recipes/opd/<student>.yaml --plan``).
"""
