"""Verify many completions with a hard per-item time bound: a small pool of killable worker processes.

Why not ``multiprocessing.Pool`` or ``concurrent.futures``: neither can stop one stuck task (math-verify on
``9^{9^{9^9}}`` runs for hours) without losing the pool, and ``multiprocessing`` refuses to start children
from a daemonic process. Here each worker is a plain ``subprocess`` with one job at a time and a deadline;
a worker that overruns is killed (SIGKILL) and replaced while the others keep going. It works from any
thread (no signals in the parent) and from inside daemonic processes. POSIX only (it waits on pipes with
``selectors``).

Workers are started lazily and kept for reuse (GRPO scores a batch every step):
:func:`distill.verify.verify_batch` shares one pool per worker count and process (:func:`shared_pool`),
closed at interpreter exit. Use :class:`VerifyPool` directly (as a context manager) to control the lifetime
yourself.

The parts: :mod:`~distill.verify.worker_handle` starts, feeds and kills one worker process;
:mod:`~distill.verify.dispatch` runs one batch through the workers (queues, results, deadlines).
"""

from __future__ import annotations

import atexit
import os
import subprocess
import threading
from collections.abc import Callable, Sequence

from distill.verify.dispatch import BatchRun
from distill.verify.worker_handle import JobResult, WorkerHandle, kill_worker, spawn_worker

DEFAULT_MEMORY_MB = 4096


class VerifyPool:
    """``workers`` killable processes that run :func:`~distill.verify.equivalence.compare_math`.

    Each worker runs one job at a time; a job gets ``timeout`` seconds. The worker stops it then by itself
    (an alarm inside the worker: the worker and its caches survive); a job that does not stop within
    ``HARD_KILL_GRACE_S`` more (:mod:`~distill.verify.dispatch`) has its worker killed and replaced (jobs
    queued behind it go back to the queue). Each worker is sent ``prefetch`` jobs beyond the running one, so
    it never waits for this process to be scheduled between jobs (on a busy machine that wait can be as long
    as the job). Jobs are spread by gold answer (same gold, same worker: its parse is cached there), idle
    workers taking work from the busiest queue. ``memory_limit_mb`` caps each worker's address space
    (``RLIMIT_AS``; ``None`` for no cap): an answer that blows up memory fails alone, as "timeout".

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
        self._workers: list[WorkerHandle] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    # -- lifecycle

    def _spawn(self) -> WorkerHandle:
        return spawn_worker(self.memory_limit_mb)

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
                kill_worker(worker)
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
        if not jobs:
            return []
        while len(self._workers) < min(self.size, len(jobs)):
            self._workers.append(self._spawn())
        batch = BatchRun(self._workers, jobs, timeout=timeout, on_result=on_result, prefetch=self.prefetch,
                         start_timeout=self.start_timeout, spawn=self._spawn)
        try:
            return batch.run()
        except BaseException:
            # Leave no half-done worker behind: the next run starts clean.
            for worker in self._workers:
                if worker.inflight or not worker.ready:
                    kill_worker(worker)
            self._workers = [w for w in self._workers if w.proc.returncode is None]
            raise


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
