"""Verify many completions with a hard per-item time bound: a small pool of killable worker processes.

Why not ``multiprocessing.Pool`` or ``concurrent.futures``: neither can stop one stuck task (math-verify on
``9^{9^{9^9}}`` runs for hours) without losing the pool, and ``multiprocessing`` refuses to start children
from a daemonic process. Here each worker is a plain ``subprocess`` with one job at a time and a deadline;
a worker that overruns is killed (SIGKILL) and replaced while the others keep going. It works from any
thread (no signals in the parent) and from inside daemonic processes. POSIX only (it waits on pipes with
``selectors``).

Workers are started lazily and kept for reuse (GRPO scores a batch every step): :func:`verify_batch`
shares one pool per worker count and process, closed at interpreter exit. Use :class:`VerifyPool`
directly (as a context manager) to control the lifetime yourself.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import subprocess
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from distill.verify._worker import BOOTSTRAP
from distill.verify.equivalence import (
    Verdict,
    answer_from_completion,
    check_gold,
    check_mode,
    decide_without_sympy,
    judge_inprocess,
)

DEFAULT_MEMORY_MB = 4096
# A worker stops a job itself at its timeout (an alarm inside the worker, which keeps the worker and its warm
# caches); only a job stuck where the alarm cannot reach it (C code) is killed, this long after its timeout.
HARD_KILL_GRACE_S = 0.5


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen[bytes]
    started: float
    ready: bool = False
    broken: bool = False  # its stdin pipe broke: it is dead or dying, and will be replaced
    inflight: deque[int] = field(default_factory=deque)  # jobs sent, in order; the first one is running
    head_since: float = 0.0  # when the first in-flight job started (time.monotonic, shared by processes)
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class JobResult:
    status: str
    detail: str
    seconds: float


class VerifyPool:
    """``workers`` killable processes that run :func:`~distill.verify.equivalence.compare_math`.

    Each worker runs one job at a time; a job gets ``timeout`` seconds. The worker stops it then by itself
    (an alarm inside the worker: the worker and its caches survive); a job that does not stop within
    ``HARD_KILL_GRACE_S`` more has its worker killed and replaced (jobs queued behind it go back to the
    queue). Each worker is sent ``prefetch`` jobs beyond the running one, so it never waits for this process to be scheduled between jobs (on a busy machine
    that wait can be as long as the job). Jobs are spread by gold answer (same gold, same worker: its
    parse is cached there), idle workers taking work from the busiest queue. ``memory_limit_mb`` caps
    each worker's address space (``RLIMIT_AS``; ``None`` for no cap): an answer that blows up memory
    fails alone, as "timeout".

    Example:
        >>> with VerifyPool(2) as pool:  # doctest: +SKIP
        ...     pool.run([("0.5", r"\\frac12"), ("9^{9^{9^9}}", "1")], timeout=2.0)
        [JobResult(status='correct', ...), JobResult(status='timeout', ...)]
    """

    def __init__(
        self,
        workers: int,
        *,
        memory_limit_mb: int | None = DEFAULT_MEMORY_MB,
        start_timeout: float = 120.0,
        prefetch: int = 2,
    ) -> None:
        if workers < 1:
            raise ValueError(f"VerifyPool needs at least 1 worker, got {workers}")
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}")
        self.size = workers
        self.prefetch = prefetch
        self.memory_limit_mb = memory_limit_mb
        self.start_timeout = start_timeout
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    # -- lifecycle

    def _spawn(self) -> _Worker:
        env = dict(os.environ)
        env["DISTILL_VERIFY_MEMORY_MB"] = str(self.memory_limit_mb or 0)
        env.setdefault("OMP_NUM_THREADS", "1")
        proc = subprocess.Popen(
            [sys.executable, "-c", BOOTSTRAP],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert proc.stdin is not None
        proc.stdin.write((json.dumps(sys.path) + "\n").encode())
        proc.stdin.flush()
        return _Worker(proc=proc, started=time.monotonic())

    @staticmethod
    def _kill(worker: _Worker) -> None:
        with contextlib.suppress(OSError):
            worker.proc.kill()
        worker.proc.wait()
        for stream in (worker.proc.stdin, worker.proc.stdout, worker.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def close(self) -> None:
        """Stop every worker (idle ones exit on EOF; anything still running is killed)."""
        if os.getpid() != self._pid:
            return  # a forked copy: the workers belong to the parent
        with self._lock:
            self._closed = True
            for worker in self._workers:
                try:
                    assert worker.proc.stdin is not None
                    worker.proc.stdin.close()
                    worker.proc.wait(timeout=2)
                except (OSError, subprocess.TimeoutExpired):
                    pass
                self._kill(worker)
            self._workers = []

    def __enter__(self) -> VerifyPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running jobs

    def run(
        self,
        jobs: Sequence[tuple[str, str]],
        *,
        timeout: float,
        on_result: Callable[[int, JobResult], None] | None = None,
    ) -> list[JobResult]:
        """Judge ``(pred, gold)`` pairs; each gets at most ``timeout`` s of a worker, then "timeout".

        The clock for a job starts when a ready worker starts it (worker start-up is not counted).
        """
        if os.getpid() != self._pid:
            raise RuntimeError("this VerifyPool belongs to another process (it was forked); create a new one")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        with self._lock:
            if self._closed:
                raise RuntimeError("this VerifyPool is closed")
            return self._run(list(jobs), timeout, on_result)

    def _run(
        self,
        jobs: list[tuple[str, str]],
        timeout: float,
        on_result: Callable[[int, JobResult], None] | None,
    ) -> list[JobResult]:
        results: list[JobResult | None] = [None] * len(jobs)
        if not jobs:
            return []
        while len(self._workers) < min(self.size, len(jobs)):
            self._workers.append(self._spawn())
        queues = _queues_by_gold(jobs, len(self._workers))
        selector = selectors.DefaultSelector()
        for worker in self._workers:
            self._register(selector, worker)
        remaining = len(jobs)
        hard_deadline = timeout + HARD_KILL_GRACE_S  # the worker's own alarm stops a job at ``timeout``

        def finish(worker: _Worker, result: JobResult) -> None:
            """Record the result of the worker's running job."""
            nonlocal remaining
            index = worker.inflight.popleft()
            results[index] = result
            remaining -= 1
            if on_result is not None:
                on_result(index, result)

        def replace(worker: _Worker, slot: int) -> None:
            """Kill ``worker``, requeue the jobs it had not started, start a fresh one in its slot."""
            queues[slot].extendleft(reversed(worker.inflight))
            worker.inflight.clear()
            for stream in (worker.proc.stdout, worker.proc.stderr):
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(stream)  # type: ignore[arg-type]
            self._kill(worker)
            fresh = self._spawn()
            self._workers[slot] = fresh
            self._register(selector, fresh)

        try:
            while remaining:
                for slot, worker in enumerate(self._workers):
                    while worker.ready and len(worker.inflight) <= self.prefetch:
                        index = _next_job(queues, slot)
                        if index is None:
                            break
                        if not self._send(worker, index, jobs, timeout):
                            queues[slot].appendleft(index)
                            break
                wait = self._next_wakeup(time.monotonic(), hard_deadline)
                for key, _ in selector.select(timeout=wait):
                    worker, stream = key.data
                    slot = next((k for k, w in enumerate(self._workers) if w is worker), -1)
                    if slot < 0:
                        continue  # replaced earlier in this round; its fd numbers may belong to the new one
                    chunk = os.read(key.fd, 1 << 16)
                    if stream == "err":
                        if not chunk:
                            selector.unregister(key.fileobj)  # stderr closed: the stdout EOF follows
                        worker.err += chunk
                        del worker.err[:-8192]
                        continue
                    if not chunk:  # the worker died
                        code = worker.proc.wait()
                        if worker.inflight:
                            secs = time.monotonic() - worker.head_since
                            finish(
                                worker, JobResult("timeout", f"verify worker died (exit code {code})", secs)
                            )
                        elif not worker.ready and not worker.broken:
                            raise RuntimeError(
                                f"a verify worker exited during start-up (exit code {code}):\n"
                                + worker.err.decode(errors="replace")
                            )
                        replace(worker, slot)
                        continue
                    worker.out += chunk
                    while b"\n" in worker.out:
                        line, _, rest = bytes(worker.out).partition(b"\n")
                        worker.out = bytearray(rest)
                        message = json.loads(line)
                        if "error" in message:
                            raise RuntimeError("a verify worker failed to start:\n" + message["error"])
                        if message.get("ready"):
                            worker.ready = True
                        elif worker.inflight and message.get("i") == worker.inflight[0]:
                            finish(worker, JobResult(message["s"], message["d"], message["e"]))
                            # The next queued job started when this one ended, by the worker's clock.
                            now = time.monotonic()
                            done = message["t"]
                            worker.head_since = done if now - 60.0 < done <= now else now
                now = time.monotonic()
                for slot, worker in enumerate(self._workers):
                    if worker.inflight and now - worker.head_since >= hard_deadline:
                        secs = now - worker.head_since
                        detail = f"no result within {hard_deadline:g} s (not stopped at {timeout:g} s); worker killed"
                        finish(worker, JobResult("timeout", detail, secs))
                        replace(worker, slot)
                    elif not worker.ready and now - worker.started > self.start_timeout:
                        raise RuntimeError(
                            f"a verify worker did not start within {self.start_timeout:g} s:\n"
                            + worker.err.decode(errors="replace")
                        )
        except BaseException:
            # Leave no half-done worker behind: the next run starts clean.
            for worker in self._workers:
                if worker.inflight or not worker.ready:
                    self._kill(worker)
            self._workers = [w for w in self._workers if w.proc.returncode is None]
            raise
        finally:
            selector.close()
        return [r for r in results if r is not None]

    @staticmethod
    def _register(selector: selectors.BaseSelector, worker: _Worker) -> None:
        selector.register(worker.proc.stdout, selectors.EVENT_READ, (worker, "out"))  # type: ignore[arg-type]
        selector.register(worker.proc.stderr, selectors.EVENT_READ, (worker, "err"))  # type: ignore[arg-type]

    @staticmethod
    def _send(worker: _Worker, index: int, jobs: list[tuple[str, str]], timeout: float) -> bool:
        """Hand job ``index`` to ``worker``; ``False`` if its pipe is broken (it gets replaced on EOF)."""
        pred, gold = jobs[index]
        assert worker.proc.stdin is not None
        try:
            job = {"i": index, "p": pred, "g": gold, "to": timeout}
            worker.proc.stdin.write((json.dumps(job) + "\n").encode())
            worker.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            worker.ready, worker.broken = False, True
            return False
        if not worker.inflight:
            worker.head_since = time.monotonic()
        worker.inflight.append(index)
        return True

    def _next_wakeup(self, now: float, timeout: float) -> float:
        deadlines = [w.head_since + timeout for w in self._workers if w.inflight]
        deadlines += [w.started + self.start_timeout for w in self._workers if not w.ready]
        if not deadlines:
            return 1.0
        return max(0.0, min(deadlines) - now)


def _queues_by_gold(jobs: list[tuple[str, str]], slots: int) -> list[deque[int]]:
    """One queue of job indices per worker slot, jobs with the same gold in the same queue.

    Each worker keeps a cache of parsed answers (and sympy keeps caches of its own), and a gold parse
    costs about as much as the rest of a check. A gold always goes to the same slot, chosen by a stable
    hash of its text (not by its place in the batch), so it is parsed once per pool rather than once per
    worker: GRPO, evaluation and the filter call this batch after batch on the same golds. Idle workers
    steal from the busiest queue at the end, which keeps the load even.
    """
    queues: list[deque[int]] = [deque() for _ in range(slots)]
    for index, (_, gold) in enumerate(jobs):
        queues[zlib.crc32(gold.encode("utf-8", "surrogatepass")) % slots].append(index)
    return queues


def _next_job(queues: list[deque[int]], slot: int) -> int | None:
    """The next job for ``slot``: its own queue first, else the tail of the longest other queue."""
    if queues[slot]:
        return queues[slot].popleft()
    longest = max(queues, key=len)
    return longest.pop() if longest else None


# ---------------------------------------------------------------- one shared pool per process

_SHARED: dict[tuple[int, int, int | None], VerifyPool] = {}
_SHARED_LOCK = threading.Lock()
_ATEXIT_REGISTERED = False


def shared_pool(workers: int, *, memory_limit_mb: int | None = DEFAULT_MEMORY_MB) -> VerifyPool:
    """The process-wide pool of ``workers`` workers (created on first use, closed at exit)."""
    global _ATEXIT_REGISTERED
    key = (os.getpid(), workers, memory_limit_mb)
    with _SHARED_LOCK:
        pool = _SHARED.get(key)
        if pool is None:
            for stale in [k for k in _SHARED if k[0] != key[0]]:
                del _SHARED[stale]  # inherited through fork: not ours to close
            pool = _SHARED[key] = VerifyPool(workers, memory_limit_mb=memory_limit_mb)
            if not _ATEXIT_REGISTERED:
                atexit.register(close_shared_pools)
                _ATEXIT_REGISTERED = True
        return pool


def close_shared_pools() -> None:
    """Stop the shared workers of this process (also done automatically at exit)."""
    with _SHARED_LOCK:
        pools = [p for k, p in _SHARED.items() if k[0] == os.getpid()]
        _SHARED.clear()
    for pool in pools:
        pool.close()


# ---------------------------------------------------------------- the batch entry point


def verify_batch(
    completions: Sequence[str],
    golds: Sequence[str],
    *,
    mode: str = "math",
    think: str = "auto",
    prompt_has_think: bool = False,
    fallback: bool = False,
    timeout: float = 5.0,
    workers: int | None = None,
    progress: bool = False,
    pool: VerifyPool | None = None,
) -> list[Verdict]:
    """Verify ``completions[i]`` against ``golds[i]`` for every i; one :class:`Verdict` each, in order.

    Answers are extracted here; what needs no math-verify (no answer, unfinished, AIME integers, identical
    text) is decided here too. The rest is deduplicated on ``(pred, gold)`` and judged by worker
    processes (``workers=None``: one per CPU; ``0`` or ``1``: in this process, serially — then the
    ``timeout`` holds only on the main thread). In a pool, an item that takes longer than ``timeout``
    seconds becomes status "timeout" (its worker stops it; one stuck past a short grace is killed and
    replaced), and the batch goes on.
    Pass ``pool`` to use your own :class:`VerifyPool` instead of the shared one.

    Example:
        >>> verdicts = verify_batch(["\\\\boxed{025}", "no box"], ["25", "3"], mode="aime", workers=0)
        >>> [v.status for v in verdicts]
        ['correct', 'no_answer']
    """
    check_mode(mode)
    if len(completions) != len(golds):
        raise ValueError(f"got {len(completions)} completions but {len(golds)} gold answers")
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    gold_keys = []
    for i, gold in enumerate(golds):
        try:
            gold_keys.append(check_gold(gold, mode))
        except ValueError as exc:
            raise ValueError(f"item {i}: {exc}") from None

    verdicts: list[Verdict | None] = [None] * len(completions)
    todo: dict[tuple[str, str], list[int]] = {}
    for i, (completion, gold) in enumerate(zip(completions, golds, strict=True)):
        extracted, early, detail = answer_from_completion(
            completion, mode=mode, think=think, prompt_has_think=prompt_has_think, fallback=fallback
        )
        if early is not None:
            verdicts[i] = Verdict(early, None, gold, detail)
            continue
        decided = decide_without_sympy(extracted, gold, gold_keys[i], mode)
        if decided is not None:
            verdicts[i] = decided
            continue
        assert extracted is not None
        todo.setdefault((extracted, gold), []).append(i)

    jobs = list(todo)
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    bar = _progress_bar(len(jobs)) if progress and jobs else None

    def record(j: int, result: JobResult) -> None:
        pred, gold = jobs[j]
        for i in todo[jobs[j]]:
            verdicts[i] = Verdict(result.status, pred, gold, result.detail, result.seconds)
        if bar is not None:
            bar.update(1)

    try:
        if pool is None and n_workers <= 1:
            for j, (pred, gold) in enumerate(jobs):
                status, detail, seconds = judge_inprocess(pred, gold, timeout)
                record(j, JobResult(status, detail, seconds))
        elif jobs:
            runner = pool if pool is not None else shared_pool(n_workers)
            runner.run(jobs, timeout=timeout, on_result=record)
    finally:
        if bar is not None:
            bar.close()
    assert all(v is not None for v in verdicts)
    return [v for v in verdicts if v is not None]


class _StderrBar:
    def __init__(self, total: int) -> None:
        self.total, self.n, self.last = total, 0, 0.0

    def update(self, k: int) -> None:
        self.n += k
        now = time.monotonic()
        if now - self.last > 1.0 or self.n == self.total:
            self.last = now
            print(f"\rverify: {self.n}/{self.total}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr)


def _progress_bar(total: int) -> Any:
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc="verify", unit="answer")
    except ImportError:
        return _StderrBar(total)
