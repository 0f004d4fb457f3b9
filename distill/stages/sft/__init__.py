"""``distill sft``: fine-tune a student on the filtered traces (TRL SFTTrainer).

- ``config``: :class:`SFTStageConfig`; ``stage``: ``run(cfg)`` (plan, relaunch, train, save);
- ``trainer``: TRL's SFTConfig arguments, the model and the SFTTrainer (``build``), the training loop (``fit``);
- ``export``: after training, the student's files (LoRA merge, bf16 shards, tokenizer) and run.json's final counts;
- ``data``: the SFT rows read back through :mod:`distill.data.sft_rows`, tokenised for training;
- ``chat``: the chat template that reproduces the training format; ``context``: position/RoPE extension;
- ``lora``: adapters and their merge (``--plan``'s estimates are the shared :mod:`distill.memory_plan`);
- ``output``: the output folder, resume and fingerprints; ``callbacks``: loss recording (the stop on Ctrl-C or
  SIGTERM is the shared :mod:`distill.training_stop`).

The heavy libraries (torch, transformers, trl, peft, datasets) load inside the functions that use them, except in
``callbacks`` (its classes subclass ``transformers.TrainerCallback``), which only the training code imports.
"""
