"""The student registry: the paper's six distilled students plus two tiny local ones.

Each row carries its base model's shape, so planning (``distill sft --plan``) and validation work offline,
without downloading a config. Shapes are those of the base models' published ``config.json`` files.

>>> get_student("qwen-7b").base_model
'Qwen/Qwen2.5-Math-7B'
>>> round(get_student("qwen-7b").num_parameters() / 1e9, 1)
7.6
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from distill.errors import DistillError


@dataclass(frozen=True)
class Student:
    name: str
    base_model: str            # hub id, or "" for local models made by `distill tiny`
    arch: str                  # "qwen2" | "llama"
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied_embeddings: bool
    max_positions: int         # the base model's max_position_embeddings
    rope_theta: float
    paper_aime24: tuple[float, float] | None = None   # DeepSeek-R1 Table 5: (pass@1, cons@64)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def num_parameters(self) -> int:
        """Parameter count from the shape (embeddings, attention with Qwen2's q/k/v biases, SwiGLU MLP, norms)."""
        kv = self.kv_heads * self.head_dim
        attn = self.hidden * self.hidden * 2 + self.hidden * kv * 2        # q, o, k, v
        if self.arch == "qwen2":
            attn += self.hidden + 2 * kv                                   # q/k/v biases
        mlp = 3 * self.hidden * self.intermediate
        per_layer = attn + mlp + 2 * self.hidden
        embed = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + embed + self.hidden

    def to_dict(self) -> dict:
        return asdict(self)

    def hf_config(self, *, rope_theta: float | None = None, max_position_embeddings: int | None = None) -> Any:
        """A transformers config of the base's shape, with a recipe's context extension applied the way
        ``distill sft`` applies it (:func:`distill.stages.sft.context.apply_context_extension`): the
        ``config.json`` the trained student will carry, built offline. The shape and RoPE base only: the
        Llama bases' own rope scaling is not in the registry.

        >>> get_student("qwen-7b").hf_config(rope_theta=3e5, max_position_embeddings=131072).max_position_embeddings
        131072
        """
        from transformers import LlamaConfig, Qwen2Config

        from distill.stages.sft.context import apply_context_extension

        cls = Qwen2Config if self.arch == "qwen2" else LlamaConfig
        config = cls(vocab_size=self.vocab, hidden_size=self.hidden, intermediate_size=self.intermediate,
                     num_hidden_layers=self.layers, num_attention_heads=self.heads, num_key_value_heads=self.kv_heads,
                     max_position_embeddings=self.max_positions, tie_word_embeddings=self.tied_embeddings,
                     rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta})
        apply_context_extension(config, rope_theta=rope_theta, max_position_embeddings=max_position_embeddings)
        return config


#        name          base model                           arch    L   hidden heads kv  inter   vocab   tied   max_pos  rope_theta  paper AIME24
STUDENTS: dict[str, Student] = {s.name: s for s in [
    Student("qwen-1.5b", "Qwen/Qwen2.5-Math-1.5B",          "qwen2", 28, 1536,  12,  2,  8960,  151936, True,  4096,    10000.0,    (28.9, 52.7)),
    Student("qwen-7b",   "Qwen/Qwen2.5-Math-7B",            "qwen2", 28, 3584,  28,  4,  18944, 152064, False, 4096,    10000.0,    (55.5, 83.3)),
    Student("llama-8b",  "meta-llama/Llama-3.1-8B",         "llama", 32, 4096,  32,  8,  14336, 128256, False, 131072,  500000.0,   (50.4, 80.0)),
    Student("qwen-14b",  "Qwen/Qwen2.5-14B",                "qwen2", 48, 5120,  40,  8,  13824, 152064, False, 131072,  1000000.0,  (69.7, 80.0)),
    Student("qwen-32b",  "Qwen/Qwen2.5-32B",                "qwen2", 64, 5120,  40,  8,  27648, 152064, False, 131072,  1000000.0,  (72.6, 83.3)),
    Student("llama-70b", "meta-llama/Llama-3.3-70B-Instruct", "llama", 80, 8192, 64, 8,  28672, 128256, False, 131072,  500000.0,   (70.0, 86.7)),
    # Local tiny students: `distill tiny` makes them (shapes match TinyConfig's defaults).
    Student("tiny-qwen",  "",                               "qwen2", 2,  256,   4,   2,  512,   1024,   True,  4096,    10000.0),
    Student("tiny-llama", "",                               "llama", 2,  256,   4,   2,  512,   1024,   True,  4096,    10000.0),
]}  # fmt: skip


# Teachers the plan knows offline (`distill pipeline --plan`), by hub id: shapes of their published config.json files
# (the R1-Distill checkpoints keep their bases' shapes and carry 131072 positions).
TEACHERS: dict[str, Student] = {s.base_model: s for s in [
    Student("r1-distill-qwen-7b",  "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",  "qwen2", 28, 3584, 28, 4, 18944, 152064, False, 131072, 10000.0),
    Student("r1-distill-qwen-14b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "qwen2", 48, 5120, 40, 8, 13824, 152064, False, 131072, 1000000.0),
    Student("r1-distill-qwen-32b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "qwen2", 64, 5120, 40, 8, 27648, 152064, False, 131072, 1000000.0),
    Student("r1-distill-llama-70b", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "llama", 80, 8192, 64, 8, 28672, 128256, False, 131072, 500000.0),
]}  # fmt: skip


def get_student(name: str) -> Student:
    """The registry row for ``name``; an unknown name lists the valid ones."""
    try:
        return STUDENTS[name]
    except KeyError:
        raise DistillError(f"unknown student {name!r}. Valid students: {', '.join(STUDENTS)}") from None
