"""The ``hf`` engine: transformers ``generate``, batched with left padding. The CPU fallback.

Each batch holds up to ``batch_size`` prompts with the same ``n`` and is sampled with
``num_return_sequences=n`` under the run's temperature / top-p / max new tokens; generation stops at EOS.
Seeding is per batch (``torch.manual_seed`` with the first request's seed, recorded as every sample's
seed), so a rerun reproduces a batch exactly only when the batch holds the same prompts. ``completion_tokens`` counts up to and including EOS,
as vLLM does; the text is decoded without special tokens.

Context: every prompt is tokenized on its own first and must leave room for ``max_tokens`` new tokens in the
model's context (``max_position_embeddings`` of its config; the tokenizer's ``model_max_length`` only when the
config names none). A prompt that does not fit is never padded into a batch or generated from (a 1 MB problem
would otherwise ask for a terabyte of attention and take the whole batch down): it is yielded as a
``RequestError(permanent=True)`` naming its length and the limit, and the rest of the batch goes on. When
``max_tokens`` alone fills the context no prompt can fit and the run stops at once with that message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from distill.engines import BaseEngine, Completion, EngineError, Request, RequestError, Sampling, batched
from distill.runinfo import scrub

log = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "bfloat16", "float16")


class HFEngine(BaseEngine):
    name = "hf"

    def __init__(self, model: str, *, dtype: str = "auto", batch_size: int = 8, trust_remote_code: bool = False,
                 device: str | None = None, tokenizer: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_name = model
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer: Any
        self.model: Any
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or model, trust_remote_code=trust_remote_code)
            self.model = AutoModelForCausalLM.from_pretrained(
                model, dtype=dtype if dtype == "auto" else getattr(torch, dtype),
                trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise EngineError(scrub(f"hf engine: could not load {model!r}: {exc}")) from None
        self.model.to(self.device)
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        if not self.eos_ids:
            raise EngineError(f"hf engine: {model!r} defines no EOS token; generation could never stop")
        self.context, self.context_source = _context_length(self.model, self.tokenizer)

    def stream(self, requests: Sequence[Request],
               sampling: Sampling) -> Iterator[tuple[int, list[Completion] | RequestError]]:
        import torch

        groups: dict[tuple[int, bool], list[int]] = {}
        for i, req in enumerate(requests):
            if not isinstance(req.prompt, str):
                raise EngineError("hf engine: prompts must be text (chat messages are for the openai chat API)")
            groups.setdefault((req.n, req.add_special_tokens), []).append(i)
        if self.context is not None and sampling.max_tokens >= self.context:
            raise EngineError(f"hf engine: --max-tokens {sampling.max_tokens} leaves no room for a prompt in "
                              f"{self.model_name}'s context of {self.context} tokens ({self.context_source}); "
                              "lower --max-tokens")
        for (n, add_special), indices in groups.items():
            for batch in batched(indices, self.batch_size):
                encoded = self.tokenizer([requests[i].prompt for i in batch], add_special_tokens=add_special,
                                         padding=False, verbose=False)["input_ids"]
                fits = []
                for index, prompt_ids in zip(batch, encoded):
                    refusal = self._refusal(len(prompt_ids), sampling)
                    if refusal is None:
                        fits.append((index, prompt_ids))
                    else:
                        yield index, refusal
                if not fits:
                    continue
                batch = [index for index, _ in fits]
                enc = self._left_padded([prompt_ids for _, prompt_ids in fits])
                seed = requests[batch[0]].seed
                if seed is not None:
                    torch.manual_seed(seed)
                with torch.inference_mode():
                    out = self.model.generate(**enc, **self._generation_kwargs(sampling, n))
                prompt_len = enc["input_ids"].shape[1]
                prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
                generated = out[:, prompt_len:].tolist()
                for j, index in enumerate(batch):
                    rows = generated[j * n:(j + 1) * n]
                    yield index, [self._completion(ids, int(prompt_tokens[j]), seed) for ids in rows]

    def _left_padded(self, ids: list[list[int]]) -> dict[str, Any]:
        """``input_ids`` and ``attention_mask`` tensors, padded on the left to the longest prompt."""
        import torch

        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = [[pad] * (width - len(x)) + list(x) for x in ids]
        mask = [[0] * (width - len(x)) + [1] * len(x) for x in ids]
        return {"input_ids": torch.tensor(input_ids, dtype=torch.long, device=self.device),
                "attention_mask": torch.tensor(mask, dtype=torch.long, device=self.device)}

    def _refusal(self, prompt_tokens: int, sampling: Sampling) -> RequestError | None:
        """A ``RequestError`` for a prompt that leaves no room for ``max_tokens`` new tokens, else None."""
        if self.context is None or prompt_tokens + sampling.max_tokens <= self.context:
            return None
        return RequestError(f"hf engine: the prompt has {prompt_tokens} tokens; with --max-tokens "
                            f"{sampling.max_tokens} it needs {prompt_tokens + sampling.max_tokens}, more than "
                            f"{self.model_name}'s context of {self.context} tokens ({self.context_source}), so it "
                            "can never fit with these settings", permanent=True)

    def _generation_kwargs(self, sampling: Sampling, n: int) -> dict[str, Any]:
        from transformers import GenerationConfig

        greedy = sampling.temperature <= 0
        config = GenerationConfig(
            max_new_tokens=sampling.max_tokens, do_sample=not greedy, num_return_sequences=n,
            eos_token_id=sorted(self.eos_ids), pad_token_id=self.tokenizer.pad_token_id,
            **({} if greedy else {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}),
        )
        if greedy and n > 1:
            log.warning("hf engine: temperature 0 gives %d identical greedy samples per prompt", n)
        return {"generation_config": config}

    def _completion(self, ids: list[int], prompt_tokens: int, seed: int | None) -> Completion:
        stop = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
        if stop is None:
            kept, n_tokens, reason = ids, len(ids), "length"
        else:
            kept, n_tokens, reason = ids[:stop], stop + 1, "stop"
        text = str(self.tokenizer.decode(kept, skip_special_tokens=True))
        return Completion(text, None, reason, prompt_tokens, n_tokens, seed)

    def close(self) -> None:
        self.model = None


# Config fields that hold a model's context length, by architecture family (the first one set wins).
CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
# Tokenizers without a limit report a huge sentinel (int(1e30)) as model_max_length.
_NO_LIMIT = 10**9


def _context_length(model: Any, tokenizer: Any) -> tuple[int | None, str]:
    """The context (prompt + completion tokens) the model takes, and where that number came from.

    The model config's position limit (extended by a linear/dynamic/YaRN ``rope_scaling`` factor when the
    config keeps the original length); the tokenizer's ``model_max_length`` only when the config names none
    (it is often a training-time limit shorter than the model's, e.g. 16384 for the R1 distills).
    """
    config = getattr(model, "config", None)
    for name in CONTEXT_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            scaling = getattr(config, "rope_scaling", None)
            if isinstance(scaling, dict):
                kind = scaling.get("rope_type") or scaling.get("type")
                factor = scaling.get("factor")
                original = scaling.get("original_max_position_embeddings")
                if kind in ("linear", "dynamic", "yarn") and isinstance(factor, (int, float)) and factor > 1 \
                        and isinstance(original, int) and original >= value:
                    return int(original * factor), f"{name} with {kind} rope scaling x{factor:g}"
            return value, name
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < _NO_LIMIT:
        return limit, "tokenizer model_max_length"
    return None, "unknown"


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids
