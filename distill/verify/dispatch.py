"""One batch of jobs through a pool's workers: who gets which job, reading results, and the deadlines.

:class:`BatchRun` is the event loop behind :meth:`distill.verify.pool.VerifyPool.run`. Each worker runs one
job at a time with ``prefetch`` more queued behind it; jobs are spread by gold answer
(:func:`queues_by_gold`). The deadline bookkeeping: a job's clock starts when its worker starts it (the
end of the job before it, by the worker's own clock); a job with no result ``HARD_KILL_GRACE_S`` after its
timeout has its worker killed and replaced, and a worker that is not ready ``start_timeout`` seconds after
it was started is an error.
"""

from __future__ import annotations

import json
import os
import selectors
import time
import zlib
from collections import deque
from collections.abc import Callable

from distill.verify.worker_handle import JobResult, WorkerHandle, kill_worker, register, send_job, unregister

# A worker stops a job itself at its timeout (an alarm inside the worker, which keeps the worker and its warm
# caches); only a job stuck where the alarm cannot reach it (C code) is killed, this long after its timeout.
HARD_KILL_GRACE_S = 0.5


def queues_by_gold(jobs: list[tuple[str, str]], slots: int) -> list[deque[int]]:
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


def next_job(queues: list[deque[int]], slot: int) -> int | None:
    """The next job for ``slot``: its own queue first, else the tail of the longest other queue."""
    if queues[slot]:
        return queues[slot].popleft()
    longest = max(queues, key=len)
    return longest.pop() if longest else None


class BatchRun:
    """Judge ``jobs`` on ``workers``, a list this run changes in place (a killed worker is replaced in its
    slot by ``spawn()``). :meth:`run` returns one :class:`JobResult` per job, in order."""

    def __init__(
        self,
        workers: list[WorkerHandle],
        jobs: list[tuple[str, str]],
        *,
        timeout: float,
        on_result: Callable[[int, JobResult], None] | None,
        prefetch: int,
        start_timeout: float,
        spawn: Callable[[], WorkerHandle],
    ) -> None:
        self.workers, self.jobs, self.timeout, self.on_result = workers, jobs, timeout, on_result
        self.prefetch, self.start_timeout, self.spawn = prefetch, start_timeout, spawn
        self.hard_deadline = timeout + HARD_KILL_GRACE_S  # the worker's own alarm stops a job at ``timeout``
        self.results: list[JobResult | None] = [None] * len(jobs)
        self.remaining = len(jobs)
        self.queues = queues_by_gold(jobs, len(workers))
        self.selector = selectors.DefaultSelector()

    def run(self) -> list[JobResult]:
        for worker in self.workers:
            register(self.selector, worker)
        try:
            while self.remaining:
                self._dispatch()
                for key, _ in self.selector.select(timeout=self._next_wakeup(time.monotonic())):
                    self._read(key)
                self._enforce_deadlines(time.monotonic())
        finally:
            self.selector.close()
        return [r for r in self.results if r is not None]

    # -- sending

    def _dispatch(self) -> None:
        """Top up every ready worker to one running job plus ``prefetch`` queued ones."""
        for slot, worker in enumerate(self.workers):
            while worker.ready and len(worker.inflight) <= self.prefetch:
                index = next_job(self.queues, slot)
                if index is None:
                    break
                if not send_job(worker, index, self.jobs[index], self.timeout):
                    self.queues[slot].appendleft(index)
                    break

    # -- receiving

    def _read(self, key: selectors.SelectorKey) -> None:
        worker, stream = key.data
        slot = next((k for k, w in enumerate(self.workers) if w is worker), -1)
        if slot < 0:
            return  # replaced earlier in this round; its fd numbers may belong to the new one
        chunk = os.read(key.fd, 1 << 16)
        if stream == "err":
            if not chunk:
                self.selector.unregister(key.fileobj)  # stderr closed: the stdout EOF follows
            worker.err += chunk
            del worker.err[:-8192]
        elif not chunk:
            self._on_exit(worker, slot)
        else:
            self._on_output(worker, chunk)

    def _on_exit(self, worker: WorkerHandle, slot: int) -> None:
        """The worker died: its running job is a "timeout" (or start-up failed), and it is replaced."""
        code = worker.proc.wait()
        if worker.inflight:
            secs = time.monotonic() - worker.head_since
            self._finish(worker, JobResult("timeout", f"verify worker died (exit code {code})", secs))
        elif not worker.ready and not worker.broken:
            raise RuntimeError(
                f"a verify worker exited during start-up (exit code {code}):\n" + worker.err.decode(errors="replace")
            )
        self._replace(worker, slot)

    def _on_output(self, worker: WorkerHandle, chunk: bytes) -> None:
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
                self._finish(worker, JobResult(message["s"], message["d"], message["e"]))
                # The next queued job started when this one ended, by the worker's clock.
                now = time.monotonic()
                done = message["t"]
                worker.head_since = done if now - 60.0 < done <= now else now

    # -- deadlines

    def _next_wakeup(self, now: float) -> float:
        """Seconds until the nearest deadline: a running job's hard deadline or a worker's start-up."""
        deadlines = [w.head_since + self.hard_deadline for w in self.workers if w.inflight]
        deadlines += [w.started + self.start_timeout for w in self.workers if not w.ready]
        if not deadlines:
            return 1.0
        return max(0.0, min(deadlines) - now)

    def _enforce_deadlines(self, now: float) -> None:
        for slot, worker in enumerate(self.workers):
            if worker.inflight and now - worker.head_since >= self.hard_deadline:
                secs = now - worker.head_since
                detail = (
                    f"no result within {self.hard_deadline:g} s (not stopped at {self.timeout:g} s); worker killed"
                )
                self._finish(worker, JobResult("timeout", detail, secs))
                self._replace(worker, slot)
            elif not worker.ready and now - worker.started > self.start_timeout:
                raise RuntimeError(
                    f"a verify worker did not start within {self.start_timeout:g} s:\n"
                    + worker.err.decode(errors="replace")
                )

    # -- bookkeeping

    def _finish(self, worker: WorkerHandle, result: JobResult) -> None:
        """Record the result of the worker's running job."""
        index = worker.inflight.popleft()
        self.results[index] = result
        self.remaining -= 1
        if self.on_result is not None:
            self.on_result(index, result)

    def _replace(self, worker: WorkerHandle, slot: int) -> None:
        """Kill ``worker``, requeue the jobs it had not started, start a fresh one in its slot."""
        self.queues[slot].extendleft(reversed(worker.inflight))
        worker.inflight.clear()
        unregister(self.selector, worker)
        kill_worker(worker)
        fresh = self.spawn()
        self.workers[slot] = fresh
        register(self.selector, fresh)
