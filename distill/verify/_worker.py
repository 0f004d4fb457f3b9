"""One verify worker process: reads jobs as JSON lines on stdin, writes results as JSON lines.

Started by :class:`distill.verify.pool.VerifyPool` as ``python -c BOOTSTRAP``. Each job runs under an
alarm of its own timeout (the worker answers "timeout" and carries on, its caches intact); the parent kills
the worker only when a job overruns that by more than a grace period (stuck in C code, where no alarm
reaches). Protocol (one JSON object per line):

- worker -> parent, once, after imports: ``{"ready": true}`` (or ``{"error": "..."}`` and exit);
- parent -> worker: ``{"i": job_id, "p": pred, "g": gold, "to": timeout_seconds}``;
- worker -> parent: ``{"i": job_id, "s": status, "d": detail, "e": seconds, "t": time.monotonic()}``.

The parent may queue several jobs; the worker runs them in order. ``t`` (the end of a job, which is the
start of the next queued one) uses the system-wide monotonic clock, so the parent can time the next job.

Results go to a private copy of fd 1; fd 1 itself is pointed at stderr so stray prints can't corrupt the
protocol.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

# sys.path for the worker arrives as the first stdin line, as multiprocessing's spawn does.
BOOTSTRAP = (
    "import sys, json; sys.path[:] = json.loads(sys.stdin.readline()); "
    "from distill.verify._worker import main; main()"
)


def _limit_memory(megabytes: int) -> None:
    try:
        import resource

        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # pragma: no cover - platform without RLIMIT_AS
        pass


def main() -> None:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        memory_mb = int(os.environ.get("DISTILL_VERIFY_MEMORY_MB", "0"))
        if memory_mb > 0:
            _limit_memory(memory_mb)
        from distill.verify.equivalence import judge_inprocess, warm_up

        warm_up()  # import and exercise math-verify now, not inside the first job's deadline
    except BaseException:  # noqa: BLE001 - report anything that stops the worker from starting
        try:
            message = json.dumps({"error": traceback.format_exc()})
        except BaseException:  # noqa: BLE001 - out of memory even to format the traceback
            message = '{"error": "the worker failed while starting and could not say why (out of memory?)"}'
        out.write(message + "\n")
        return
    out.write('{"ready": true}\n')
    for line in sys.stdin:
        job = json.loads(line)
        start = time.monotonic()
        try:
            status, detail, _ = judge_inprocess(job["p"], job["g"], job.get("to"))
        except Exception as exc:  # noqa: BLE001 - one bad item must not end the batch
            status, detail = "unparsable", f"{type(exc).__name__}: {exc}"[:300]
        end = time.monotonic()
        out.write(json.dumps({"i": job["i"], "s": status, "d": detail, "e": end - start, "t": end}) + "\n")
