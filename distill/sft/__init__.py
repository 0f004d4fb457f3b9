"""The pieces of ``distill sft``: data, chat template, context extension, planning, LoRA export, callbacks.

The heavy libraries (torch, transformers, trl, peft, datasets) load inside the functions that use them, except in
``callbacks`` (its classes subclass ``transformers.TrainerCallback``), which only the training code imports.
"""
