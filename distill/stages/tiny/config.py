"""Config of ``distill tiny``: a real, tiny Qwen2 or Llama checkpoint made offline."""

from __future__ import annotations

from dataclasses import dataclass

from distill.config import option


@dataclass
class TinyConfig:
    arch: str = option("qwen2", "model architecture", choices=["qwen2", "llama"])
    out: str = option("tiny-model", "output folder for the checkpoint")
    layers: int = option(2, "decoder layers")
    hidden: int = option(256, "hidden size")
    heads: int = option(4, "attention heads (hidden / heads must be a head_dim vLLM has kernels for: 64, 128)")
    kv_heads: int = option(2, "key/value heads (grouped-query attention)")
    intermediate: int = option(512, "MLP intermediate size")
    vocab_size: int = option(1024, "BPE vocabulary size, special tokens included")
    max_positions: int = option(4096, "max_position_embeddings")
    corpus_size: int = option(4000, "synthetic math texts the tokenizer is trained on")
    seed: int = option(0, "seed for the corpus and the weights")
    overwrite: bool = option(False, "replace an existing checkpoint in --out")

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "heads", "kv_heads", "intermediate", "max_positions", "corpus_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must be divisible by kv_heads ({self.kv_heads})")
        if self.vocab_size < 300:
            raise ValueError(f"vocab_size ({self.vocab_size}) must be at least 300 (256 bytes + special tokens)")
