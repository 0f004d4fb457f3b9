"""The parent's side of one verify worker process: start it, hand it a job, kill it.

The worker itself is :mod:`distill.verify._worker` (the protocol is described there); the pool that keeps
several of them is :class:`distill.verify.pool.VerifyPool`.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from distill.verify._worker import BOOTSTRAP


@dataclass(frozen=True)
class JobResult:
    status: str
    detail: str
    seconds: float


@dataclass(eq=False)
class WorkerHandle:
    proc: subprocess.Popen[bytes]
    started: float
    ready: bool = False
    broken: bool = False  # its stdin pipe broke: it is dead or dying, and will be replaced
    inflight: deque[int] = field(default_factory=deque)  # jobs sent, in order; the first one is running
    head_since: float = 0.0  # when the first in-flight job started (time.monotonic, shared by processes)
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)


def spawn_worker(memory_limit_mb: int | None) -> WorkerHandle:
    """Start a worker process (it reports ``ready`` once math-verify is imported and warm)."""
    env = dict(os.environ)
    env["DISTILL_VERIFY_MEMORY_MB"] = str(memory_limit_mb or 0)
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
    return WorkerHandle(proc=proc, started=time.monotonic())


def kill_worker(worker: WorkerHandle) -> None:
    """SIGKILL the worker, reap it and close its pipes."""
    with contextlib.suppress(OSError):
        worker.proc.kill()
    worker.proc.wait()
    for stream in (worker.proc.stdin, worker.proc.stdout, worker.proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def send_job(worker: WorkerHandle, index: int, job: tuple[str, str], timeout: float) -> bool:
    """Hand job ``index`` (``(pred, gold)``) to ``worker``; ``False`` if its pipe is broken (it gets replaced
    on EOF)."""
    pred, gold = job
    assert worker.proc.stdin is not None
    try:
        message = {"i": index, "p": pred, "g": gold, "to": timeout}
        worker.proc.stdin.write((json.dumps(message) + "\n").encode())
        worker.proc.stdin.flush()
    except (BrokenPipeError, OSError):
        worker.ready, worker.broken = False, True
        return False
    if not worker.inflight:
        worker.head_since = time.monotonic()
    worker.inflight.append(index)
    return True


def register(selector: selectors.BaseSelector, worker: WorkerHandle) -> None:
    """Watch the worker's stdout (results) and stderr (kept for error messages)."""
    selector.register(worker.proc.stdout, selectors.EVENT_READ, (worker, "out"))  # type: ignore[arg-type]
    selector.register(worker.proc.stderr, selectors.EVENT_READ, (worker, "err"))  # type: ignore[arg-type]


def unregister(selector: selectors.BaseSelector, worker: WorkerHandle) -> None:
    """Stop watching the worker's pipes (those still registered)."""
    for stream in (worker.proc.stdout, worker.proc.stderr):
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(stream)  # type: ignore[arg-type]
