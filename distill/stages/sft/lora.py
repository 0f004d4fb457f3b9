"""LoRA / QLoRA for ``distill sft`` (peft), and the merged export.

The adapter is saved in ``OUT/adapter``; with ``merge_lora`` (the default) the base model is loaded again in
bf16 (float32 on CPU), the adapter merged in, and the result saved in ``OUT`` as an ordinary HF model, so
``distill eval`` and vLLM load the student without peft. A QLoRA adapter trained on the 4-bit base is merged into
the bf16 base (the usual practice; the merged weights differ from the quantized ones by the quantization error).
When the chat template had to add tokens (a base without chat tokens; the paper's six students need none), the
embedding matrix and LM head are trained in full beside the adapters (peft ``modules_to_save``): new rows start at
the mean embedding and the EOS row must be learnt for the student to stop. (peft's lighter
``trainable_token_indices`` does not reach TRL's fused LM head, which reads ``lm_head.weight`` directly.)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.stages.sft.chat import sync_model_tokens

log = logging.getLogger(__name__)


def lora_config(*, r: int, alpha: int, dropout: float, targets: list[str], new_token_ids: list[int]) -> Any:
    from peft import LoraConfig

    kwargs: dict[str, Any] = {}
    if new_token_ids:
        log.warning("LoRA: the chat template added %d token(s); the embeddings and LM head are trained in full",
                    len(new_token_ids))
        kwargs.update(modules_to_save=["embed_tokens", "lm_head"], ensure_weight_tying=True)
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), bias="none",
                      task_type="CAUSAL_LM", **kwargs)


def quantization_config() -> Any:
    """NF4 4-bit base for QLoRA; needs CUDA and bitsandbytes (checked first, with the fix in the message)."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise DistillError("qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); use lora without qlora on CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise DistillError("qlora needs bitsandbytes: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_storage=torch.bfloat16)


def merge_adapter(base: str, adapter_dir: str | Path, out_dir: str | Path, *, config: Any, tokenizer: Any,
                  dtype: Any, trust_remote_code: bool = False) -> Path:
    """Load ``base`` (with the run's config overrides), apply the adapter, merge, and save to ``out_dir``."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM


    model = AutoModelForCausalLM.from_pretrained(base, config=config, dtype=dtype,
                                                 trust_remote_code=trust_remote_code)
    sync_model_tokens(model, tokenizer)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.generation_config = model.generation_config
    out = Path(out_dir)
    merged.save_pretrained(out, safe_serialization=True)
    log.info("merged LoRA adapter %s into %s -> %s", adapter_dir, base, out)
    return out
