"""distill: reproduce the DeepSeek-R1 reasoning-distillation pipeline, from GRPO teacher to measured students."""

__version__ = "0.1.0"
