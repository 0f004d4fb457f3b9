"""The ``openai`` engine: any OpenAI-compatible endpoint (``vllm serve``, SGLang, a hosted R1).

Two APIs, chosen by the prompt's type:

- chat messages -> ``POST {base_url}/chat/completions``: the server applies the model's chat template (the
  default, and the only API hosted reasoning models offer). A conversation that ends with an assistant
  message (``--force-think``: ``<think>\\n``) is continued rather than answered, through the
  ``continue_final_message`` / ``add_generation_prompt`` extension vLLM and SGLang accept.
- text -> ``POST {base_url}/completions``: the prompt rendered locally, sent as is (with
  ``add_special_tokens: false`` when a chat template rendered it, so the server does not add a second BOS).

Every sample is its own request with ``n=1`` (sample ``k`` seeded ``seed + k``, as vLLM seeds ``n > 1``): servers
report token usage per request, so each completion gets its exact token counts, and hosted APIs that
reject ``n > 1`` still work; a server's prefix cache shares the prompt between samples.

Servers with a reasoning parser return the reasoning separately (``reasoning_content``, or ``reasoning`` in
newer vLLM): it is re-joined as ``<think>\\n{reasoning}\\n</think>\\n\\n{content}``, and left unclosed when
the answer never came (cut off by ``max_tokens``), so the truth layer sees the same text a local engine
would produce.

Concurrency is bounded by a thread pool. HTTP 429 and 5xx, timeouts and connection errors are retried
with exponential backoff and jitter (``Retry-After`` is honoured). A 400/413/422 refuses that request only:
it is yielded as a ``RequestError`` and the stream goes on. Other 4xx (a bad key, an unknown model) stop the
run at once. After the last retry the error names the endpoint and the final status. The API key is read from an environment variable
(``api_key_env``) when the engine starts and is sent only in the ``Authorization`` header: it is never
logged, stored in a config or written to disk. Whatever a server sends back (a 401 body that echoes the
``Authorization`` header, a completion that quotes it), every message this engine logs or raises and every
completion it returns has the key, and the value of any secret-looking environment variable
(``distill.runinfo.scrub``), replaced by ``<redacted>``.

Answers are checked before they become completions: a message whose content is null (with no separate
reasoning) or not text, or a response without choices, refuses that request (a ``RequestError``: counted,
nothing written, retried by a rerun) rather than passing on an empty completion; token counts that are not
whole numbers are left empty (one warning) rather than stopping the run.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlparse

from distill.engines import BaseEngine, Completion, EngineError, Request, RequestError, Sampling
from distill.runinfo import scrub

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Client errors about one request (its prompt, its length): that request is skipped, the run goes on. Other
# 4xx (401/403 key, 404 model name ...) would fail every request: they stop the run.
REQUEST_STATUSES = frozenset({400, 413, 422})
# Longest server text quoted in a message (after the key is taken out of it).
QUOTE_CHARS = 300
# Shorter keys are not scrubbed from text (they would mangle ordinary words; no real key is that short).
MIN_SECRET_CHARS = 8
REDACTED = "<redacted>"


class OpenAIEngine(BaseEngine):
    name = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 16, request_timeout: float = 600.0, max_retries: int = 5,
                 backoff: float = 1.0, max_backoff: float = 60.0) -> None:
        import httpx

        if not base_url:
            raise EngineError("the openai engine needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise EngineError(f"--base-url {base_url!r} is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)")
        if concurrency < 1 or max_retries < 0 or request_timeout <= 0:
            raise ValueError("concurrency must be >= 1, max_retries >= 0 and request_timeout > 0")
        self.model = model
        self.base_url = base_url.rstrip("/")
        if parsed.path in ("", "/"):
            self.base_url += "/v1"
            log.info("no path in --base-url: using %s", self.base_url)
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        self._secrets = [key] if key and len(key) >= MIN_SECRET_CHARS else []
        self._warned_usage = False
        if key:
            headers["Authorization"] = f"Bearer {key}"
        else:
            log.info("$%s is not set: sending requests without an API key", api_key_env)
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(request_timeout),
                                    limits=httpx.Limits(max_connections=concurrency,
                                                        max_keepalive_connections=concurrency))
        self._stop = threading.Event()

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIEngine(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    def _safe(self, text: str, limit: int | None = None) -> str:
        """``text`` without the API key or any secret-looking environment value, then cut to ``limit`` chars
        (cut after scrubbing, so a key is never left half-quoted)."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = str(scrub(text))
        return text if limit is None or len(text) <= limit else text[:limit] + "..."

    # ------------------------------------------------------------------------------------------ stream
    def stream(self, requests: Sequence[Request],
               sampling: Sampling) -> Iterator[tuple[int, list[Completion] | RequestError]]:
        """Run the samples of all requests with at most ``concurrency`` HTTP calls at a time."""
        jobs = ((i, k) for i, req in enumerate(requests) for k in range(req.n))
        results: dict[int, dict[int, Completion]] = {}
        failed: set[int] = set()
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai")
        running: dict[Future[Completion], tuple[int, int]] = {}
        self._stop.clear()
        try:
            exhausted = False
            while True:
                while not exhausted and len(running) < 2 * self.concurrency:
                    job = next(jobs, None)
                    if job is None:
                        exhausted = True
                        break
                    i, k = job
                    if i in failed:
                        continue
                    req = requests[i]
                    seed = None if req.seed is None else req.seed + k
                    running[pool.submit(self.complete, req.prompt, sampling, seed, req.add_special_tokens)] = job
                if not running:
                    return
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    i, k = running.pop(fut)
                    if i in failed:
                        continue
                    try:
                        results.setdefault(i, {})[k] = fut.result()  # an EngineError here stops the run
                    except RequestError as exc:
                        failed.add(i)
                        results.pop(i, None)
                        yield i, exc
                        continue
                    if len(results[i]) == requests[i].n:
                        got = results.pop(i)
                        yield i, [got[s] for s in range(requests[i].n)]
        finally:
            self._stop.set()  # stop retry loops; in-flight calls end within request_timeout
            pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------------------------------ one call
    def complete(self, prompt: str | list[dict[str, str]], sampling: Sampling, seed: int | None,
                 add_special_tokens: bool = True) -> Completion:
        """One completion for one prompt (retrying as documented above)."""
        chat = not isinstance(prompt, str)
        url = f"{self.base_url}/{'chat/completions' if chat else 'completions'}"
        body: dict[str, Any] = {"model": self.model, "max_tokens": sampling.max_tokens,
                                "temperature": sampling.temperature, "top_p": sampling.top_p, "n": 1}
        if seed is not None:
            body["seed"] = seed
        if isinstance(prompt, list):
            body["messages"] = prompt
            if prompt and prompt[-1].get("role") == "assistant":
                body.update(continue_final_message=True, add_generation_prompt=False)
        else:
            body["prompt"] = prompt
            if not add_special_tokens:  # text from a chat template already holds BOS etc. (vLLM, SGLang option)
                body["add_special_tokens"] = False
        data = self._post(url, body)
        try:
            completion = _parse(data, url, chat, quote=lambda text: self._safe(text, QUOTE_CHARS))
        except RequestError as exc:
            raise RequestError(self._safe(str(exc))) from None
        if not _usage_ok(data.get("usage")) and not self._warned_usage:
            self._warned_usage = True
            log.warning("%s: the response's token usage is not a pair of whole numbers (%s); token counts are "
                        "left empty for such responses", url, self._safe(repr(data.get("usage")), 100))
        for secret in self._secrets:
            if secret in completion.text or secret in (completion.reasoning or ""):
                log.warning("%s: the server quoted the API key in a completion; it is replaced by %s", url, REDACTED)
                completion.text = completion.text.replace(secret, REDACTED)
                if completion.reasoning is not None:
                    completion.reasoning = completion.reasoning.replace(secret, REDACTED)
        completion.seed = seed
        return completion

    def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        last = ""
        for attempt in range(self.max_retries + 1):
            if self._stop.is_set() and attempt:
                raise EngineError(f"{url}: stopped before retry {attempt} (the run was interrupted)")
            retry_after: float | None = None
            try:
                resp = self._client.post(url, json=body)
            except httpx.TimeoutException:
                last = f"no response within {self.request_timeout:g} s (--request-timeout)"
            except httpx.TransportError as exc:
                last = f"connection failed ({type(exc).__name__}: {self._safe(str(exc), QUOTE_CHARS)})"
            else:
                if resp.status_code == 200:
                    try:
                        data = resp.json()
                    except ValueError:
                        raise EngineError(f"{url}: HTTP 200 but the body is not JSON: "
                                          f"{self._safe(resp.text, QUOTE_CHARS)!r}") from None
                    if not isinstance(data, dict):
                        raise EngineError(f"{url}: unexpected response body {self._safe(str(data), QUOTE_CHARS)!r}")
                    return data
                detail = self._safe(_error_detail(resp), QUOTE_CHARS)
                if resp.status_code in REQUEST_STATUSES:
                    raise RequestError(f"{url}: HTTP {resp.status_code}: {detail}{self._hint(resp.status_code)}")
                if resp.status_code not in RETRY_STATUSES:
                    raise EngineError(f"{url}: HTTP {resp.status_code}: {detail}{self._hint(resp.status_code)}")
                last = f"HTTP {resp.status_code}: {detail}"
                retry_after = _retry_after(resp)
            if attempt == self.max_retries:
                break
            delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
            if retry_after is not None:
                delay = min(self.max_backoff, max(delay, retry_after))
            log.warning("%s: %s; retry %d/%d in %.1f s", url, last, attempt + 1, self.max_retries, delay)
            if self._stop.wait(delay):
                raise EngineError(f"{url}: stopped while waiting to retry (the run was interrupted)")
        raise EngineError(f"{url}: gave up after {self.max_retries + 1} attempt(s); last error: {last}. "
                          "Is the server up and the model name right? Raise --max-retries or --request-timeout "
                          "for a slow or busy server.")

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            return f" (check the API key in ${self.api_key_env}, or name another variable with --api-key-env)"
        if status == 404:
            return f" (is --teacher {self.model!r} the served model's name? GET {self.base_url}/models lists them)"
        if status == 400:
            return " (the server rejected the request: check --max-tokens against its context length)"
        return ""

    def close(self) -> None:
        self._stop.set()
        self._client.close()


def _error_detail(resp: Any) -> str:
    """The server's error message, whole (the caller scrubs secrets out of it before cutting it short)."""
    try:
        data = resp.json()
        if isinstance(data, dict):
            err = data.get("error", data)
            msg = err.get("message") if isinstance(err, dict) else err
            if msg:
                return str(msg)
    except ValueError:
        pass
    return str(resp.text or resp.reason_phrase or "")


def _retry_after(resp: Any) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _cut(text: str) -> str:
    return text[:QUOTE_CHARS]


def _parse(data: dict[str, Any], url: str, chat: bool, quote: Callable[[str], str] = _cut) -> Completion:
    """One completion from a 200 response; a ``RequestError`` when it holds no text to keep. ``quote`` turns the
    server's text into what a message may show (the engine's scrubs secrets out before cutting it short)."""

    def kind(value: Any) -> str:
        return "null" if value is None else f"{type(value).__name__} {quote(str(value))[:60]!r}"

    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise RequestError(f"{url}: response has no choices: {quote(str(data))!r}")
    choice = choices[0]
    finish = choice.get("finish_reason")
    finish = finish if isinstance(finish, str) else None
    if chat:
        message = choice.get("message")
        if not isinstance(message, dict):
            raise RequestError(f"{url}: the choice has no message (got {kind(message)}): nothing to keep")
        content = message.get("content")
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if reasoning is not None and not isinstance(reasoning, str):
            raise RequestError(f"{url}: the message's reasoning is {kind(reasoning)}, not text")
        if content is not None and not isinstance(content, str):
            raise RequestError(f"{url}: the message content is {kind(content)}, not text")
        if reasoning:
            answer = content.strip() if content is not None else None
            closed = answer is not None and (answer != "" or finish != "length")
            text = f"<think>\n{reasoning}\n</think>\n\n{answer}" if closed else f"<think>\n{reasoning}"
        elif content is None:
            raise RequestError(f"{url}: the message content is null and there is no reasoning: the server "
                               f"returned no text (finish_reason {finish!r})")
        else:
            text, reasoning = content, None
    else:
        raw, reasoning = choice.get("text"), None
        if not isinstance(raw, str):
            raise RequestError(f"{url}: the choice's text is {kind(raw)}, not text")
        text = raw
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return Completion(text, reasoning, finish, _token_count(usage.get("prompt_tokens")),
                      _token_count(usage.get("completion_tokens")))


def _token_count(value: Any) -> int | None:
    """A usage count as a non-negative int (``12``, ``"12"``, ``12.0``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _usage_ok(usage: Any) -> bool:
    """Whether a response's ``usage`` gives both token counts as whole numbers (absent usage is fine too)."""
    if usage is None:
        return True
    return isinstance(usage, dict) and all(_token_count(usage.get(k)) is not None
                                           for k in ("prompt_tokens", "completion_tokens"))
