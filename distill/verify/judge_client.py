"""The generative judge's client: :class:`Judge` asks questions (:class:`~distill.verify.judge.Question`) on a
thread pool through :class:`~distill.engines.openai_engine.OpenAIEngine`, with the on-disk cache of
:mod:`distill.verify.judge_cache`. What it asks and how replies are read: :mod:`distill.verify.judge`.

The API key is read from its environment variable when the judge starts and goes only into the engine's
``Authorization`` header; replies and errors are scrubbed of it (and of any secret-looking environment value)
before they are kept, cached or shown.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from distill.verify.judge import (
    BREAKER,
    PROMPT_VERSION,
    JudgeCounts,
    Judgement,
    JudgeSettings,
    Question,
    judge_prompt,
    read_judgement,
    safe_url,
)
from distill.verify.judge_cache import JudgeCache, cache_key

REDACTED = "<redacted>"
# The engine's messages name its own flags; for the judge, these are the ones to change.
_FLAGS = {"--teacher": "--judge-model", "--api-key-env": "--judge-api-key-env", "--max-retries": "--judge-retries",
          "--request-timeout": "--judge-timeout", "--max-tokens": "--judge-max-tokens", "--base-url": "--judge-base-url"}
_FLAG = re.compile(r"(?<![\w-])(" + "|".join(re.escape(f) for f in _FLAGS) + r")\b")


class Judge:
    """One judge for a run: ``ask`` as often as needed, then ``close`` (or use it as a context manager).

    Raises :class:`~distill.errors.ConfigError` when ``settings.api_key_env`` names a variable that is not
    set, and :class:`~distill.engines.EngineError` for a base URL that is not http(s)."""

    def __init__(self, settings: JudgeSettings) -> None:
        from distill.engines.openai_engine import OpenAIEngine

        key = settings.api_key()
        self.settings = settings
        self.counts = JudgeCounts()
        self._secrets = [key] if key else []
        self.engine = OpenAIEngine(settings.model, base_url=settings.base_url,
                                   api_key_env=settings.api_key_env or "", concurrency=settings.concurrency,
                                   request_timeout=settings.timeout, max_retries=settings.retries,
                                   backoff=settings.backoff, max_backoff=max(60.0, settings.backoff))
        self.cache = JudgeCache(settings.cache) if settings.cache else None
        self._lock = threading.Lock()
        self._streak = 0
        self._broken: str | None = None

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:   # never shows the key
        return f"Judge(model={self.settings.model!r}, base_url={safe_url(self.settings.base_url)!r})"

    @property
    def cache_path(self) -> Path | None:
        return self.cache.path if self.cache is not None else None

    def describe(self) -> dict[str, Any]:
        """Settings and counts, as ``filter_stats.json`` / ``results.json`` record them."""
        return {"settings": self.settings.describe(), **self.counts.to_dict()}

    # ------------------------------------------------------------------------------------------------ asking
    def ask(self, questions: Sequence[Question], *, progress: bool = True) -> list[Judgement]:
        """One :class:`Judgement` per question, in order. Cached answers are reused; the same question asked
        twice is one call; a failed call is a ``failed`` judgement (never an exception)."""
        keys = [cache_key(self.settings.model, PROMPT_VERSION, q.problem, q.gold, q.answer) for q in questions]
        out: list[Judgement | None] = [None] * len(questions)
        todo: dict[str, list[int]] = {}
        for i, (q, key) in enumerate(zip(questions, keys, strict=True)):
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                out[i] = Judgement(hit["decision"], hit["reply"], q.reason, q.rule_status, cached=True)
            else:
                todo.setdefault(key, []).append(i)
        if todo:
            self._ask_all(todo, questions, out, progress=progress)
        done = [j for j in out if j is not None]
        assert len(done) == len(questions)
        for j in done:
            self.counts.add(j)
        return done

    def _ask_all(self, todo: dict[str, list[int]], questions: Sequence[Question], out: list[Judgement | None],
                 *, progress: bool) -> None:
        bar = _bar(len(todo), progress)
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="judge")
        try:
            futures: dict[Future[tuple[str, str | None, str | None]], str] = {
                pool.submit(self._one, questions[idx[0]]): key for key, idx in todo.items()}
            for fut in as_completed(futures):
                key = futures[fut]
                decision, reply, error = fut.result()
                if decision != "failed" and self.cache is not None:
                    self.cache.put(key, {"decision": decision, "reply": reply, "model": self.settings.model})
                for i in todo[key]:
                    q = questions[i]
                    out[i] = Judgement(decision, reply, q.reason, q.rule_status, error=error)
                bar.update(1)
        except BaseException:
            self.engine.close()          # stops retry waits; in-flight calls end within the timeout
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            if self.cache is not None:
                self.cache.flush()
            bar.close()

    def _one(self, q: Question) -> tuple[str, str | None, str | None]:
        """``(decision, reply, error)`` for one question: one call (with the engine's retries)."""
        from distill.engines import EngineError, RequestError, Sampling

        with self._lock:
            if self._broken is not None:
                return "failed", None, f"not asked: {self._broken}"
            self.counts.calls += 1
        messages = [{"role": "user", "content": judge_prompt(q.problem, q.gold, q.answer)}]
        sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=self.settings.max_tokens)
        try:
            completion = self.engine.complete(messages, sampling, None)
        except RequestError as exc:        # this question refused (e.g. too long): the others go on
            return "failed", None, self._error(exc)
        except EngineError as exc:
            error = self._error(exc)
            with self._lock:
                self._streak += 1
                if self._streak >= BREAKER and self._broken is None:
                    self._broken = f"the judge failed {self._streak} times in a row (last: {error})"
            return "failed", None, error
        with self._lock:
            self._streak = 0
        reply = self._safe(completion.text)
        return read_judgement(reply), reply, None

    def _error(self, exc: Exception) -> str:
        """An engine error as the judge reports it: its flags named as the judge's, no secret in it."""
        return _FLAG.sub(lambda m: _FLAGS[m.group(1)], self._safe(str(exc)))

    def _safe(self, text: str) -> str:
        from distill.runinfo import scrub

        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return str(scrub(text))

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        self.engine.close()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="judge", unit="answer", mininterval=1.0)
