"""The ``hf`` engine: transformers ``generate``, batched with left padding. The CPU fallback.

Each batch holds up to ``batch_size`` prompts with the same ``n`` and is sampled with
``num_return_sequences=n`` under the run's temperature / top-p / max new tokens; generation stops at EOS.
Seeding is per batch (``torch.manual_seed`` with the first request's seed, recorded as every sample's
seed), so a rerun reproduces a batch exactly only when the batch holds the same prompts. ``completion_tokens`` counts up to and including EOS,
as vLLM does; the text is decoded without special tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from distill.engines import BaseEngine, Completion, EngineError, Request, RequestError, Sampling, batched

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
            raise EngineError(f"hf engine: could not load {model!r}: {exc}") from None
        self.model.to(self.device)
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        if not self.eos_ids:
            raise EngineError(f"hf engine: {model!r} defines no EOS token; generation could never stop")

    def stream(self, requests: Sequence[Request],
               sampling: Sampling) -> Iterator[tuple[int, list[Completion] | RequestError]]:
        import torch

        groups: dict[tuple[int, bool], list[int]] = {}
        for i, req in enumerate(requests):
            if not isinstance(req.prompt, str):
                raise EngineError("hf engine: prompts must be text (chat messages are for the openai chat API)")
            groups.setdefault((req.n, req.add_special_tokens), []).append(i)
        for (n, add_special), indices in groups.items():
            for batch in batched(indices, self.batch_size):
                prompts = [requests[i].prompt for i in batch]
                enc = self.tokenizer(prompts, add_special_tokens=add_special, padding=True, return_tensors="pt")
                enc = {k: v.to(self.device) for k, v in enc.items()}
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


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids
