"""Tiny, real Qwen2/Llama checkpoints made offline, for tests and the nano recipe.

A byte-level BPE tokenizer is trained on synthetic math text (for Qwen2 with Qwen2's own normalizer and split
regex, because transformers rebuilds a ``Qwen2Tokenizer`` for ``model_type: qwen2`` and the ids must survive a
reload). It has distinct BOS, EOS and PAD tokens (pad != eos, so the EOS label is trained), ``<think>`` and
``</think>`` as single tokens, and the R1 chat template with generation markers. The model is randomly
initialised with head_dim 64, which vLLM has kernels for.

>>> make_tiny(TinyConfig(out="/tmp/tiny"))          # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.chat_template import THINK_CLOSE, THINK_OPEN, r1_chat_template
from distill.stages.tiny.config import TinyConfig

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
ROLE_TAGS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = [BOS, EOS, PAD, *ROLE_TAGS]
THINK_TOKENS = [THINK_OPEN, THINK_CLOSE]
CHAT_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."

_WORDS = ("the answer is so we have let then first next add subtract multiply divide carry sum total digit "
          "column result check therefore because value solve for equation both sides step number write "
          "compute equals gives find simplify fraction remainder product difference quotient wait verify "
          "correct hence thus now this that which where since and or not a an of to in is are be it").split()


def synthetic_corpus(n: int, seed: int = 0) -> Iterator[str]:
    """Deterministic math-flavoured texts: prompts, ``<think>`` traces, LaTeX and plain sentences."""
    rng = random.Random(seed)
    for i in range(n):
        kind = i % 5
        a, b = rng.randint(0, 9999), rng.randint(0, 9999)
        if kind == 0:
            op = rng.choice(["+", "-", "\\times"])
            yield f"What is {a} {op} {b}? {CHAT_SUFFIX}"
        elif kind == 1:
            steps = "\n".join(f"{rng.randint(0, 9)}+{rng.randint(0, 9)}+{rng.randint(0, 1)}={rng.randint(0, 19)} "
                              f"-> {rng.randint(0, 999)}" for _ in range(rng.randint(1, 4)))
            yield f"{THINK_OPEN}\n{steps}\n{THINK_CLOSE}\n\nThe answer is $\\boxed{{{a + b}}}$."
        elif kind == 2:
            c = rng.randint(1, 12)
            yield (f"Solve for $x$: ${c}x + {a % 100} = {b % 1000}$. Subtract {a % 100} from both sides, then "
                   f"divide by {c}: $x = \\frac{{{b % 1000 - a % 100}}}{{{c}}}$, so \\boxed{{\\dfrac{{{b % 97}}}{{{c}}}}}.")
        elif kind == 3:
            yield " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 30))).capitalize() + "."
        else:
            yield (f"Let $f(x) = x^{{{rng.randint(2, 5)}}} - {a % 50}$. Then $f({b % 10}) = {(b % 10) ** 2 - a % 50}$ "
                   f"and $\\sqrt{{{a % 200}}} \\approx {(a % 200) ** 0.5:.3f}$; the set is $\\{{1, 2, {a % 9}\\}}$ "
                   f"on $[0, {b % 50})$.")


def train_tokenizer(arch: str, vocab_size: int, corpus_size: int, seed: int) -> Any:
    """Train the BPE and wrap it in the transformers class the folder will reload as."""
    from tokenizers import Tokenizer, decoders, models, trainers
    from tokenizers import pre_tokenizers as pt
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    reference = Qwen2Tokenizer()._tokenizer          # Qwen2's normalizer and split regex, as transformers rebuilds it
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = reference.normalizer
    bpe.pre_tokenizer = reference.pre_tokenizer
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS + THINK_TOKENS,
                                  initial_alphabet=pt.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(synthetic_corpus(corpus_size, seed), trainer=trainer)
    specials = dict(bos_token=BOS, eos_token=EOS, pad_token=PAD)

    if arch == "qwen2":
        model_state = json.loads(bpe.to_str())["model"]
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model_state["merges"]]
        tok = Qwen2Tokenizer(vocab=model_state["vocab"], merges=merges, unk_token=None, **specials)
        tok.add_special_tokens({"additional_special_tokens": list(ROLE_TAGS)})
        tok.add_tokens(THINK_TOKENS)
    else:
        tok = PreTrainedTokenizerFast(tokenizer_object=bpe, **specials)
        tok.add_special_tokens({"additional_special_tokens": list(ROLE_TAGS)})
        tok.add_tokens(THINK_TOKENS)
    tok.chat_template = r1_chat_template(system=ROLE_TAGS[0], user=ROLE_TAGS[1], assistant=ROLE_TAGS[2])
    tok.model_max_length = 1 << 20
    return tok


def build_model(cfg: TinyConfig, tok: Any) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    vocab = max(cfg.vocab_size, len(tok))
    vocab = ((vocab + 63) // 64) * 64
    model_type = "qwen2" if cfg.arch == "qwen2" else "llama"
    config = AutoConfig.for_model(
        model_type,
        vocab_size=vocab, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, num_key_value_heads=cfg.kv_heads, intermediate_size=cfg.intermediate,
        max_position_embeddings=cfg.max_positions, tie_word_embeddings=True, rms_norm_eps=1e-6,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        head_dim=cfg.hidden // cfg.heads, initializer_range=0.02, dtype="float32",
    )
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id, do_sample=True,
                                               temperature=0.6, top_p=0.95)
    return model


def make_tiny(cfg: TinyConfig) -> dict[str, Any]:
    """Write a tokenizer + model folder to ``cfg.out``; return counts for ``run.json``."""
    out = Path(cfg.out)
    tok = train_tokenizer(cfg.arch, cfg.vocab_size, cfg.corpus_size, cfg.seed)
    model = build_model(cfg, tok)
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": model.config.vocab_size,
        "tokenizer_tokens": len(tok),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
