"""An in-process time bound: ``SIGALRM`` on the main thread, nothing elsewhere.

math-verify bounds its own run time with ``signal.alarm``, which breaks off the main thread, so its timeouts
are switched off (:mod:`distill.verify.equivalence`) and time is bounded here instead. Off the main thread
nothing can interrupt a running check; a hard bound for any thread comes from the worker processes of
:func:`distill.verify.verify_batch`, which are killed when they overrun.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any


class Deadline(BaseException):
    """Raised by the in-process alarm. A BaseException so math-verify's ``except Exception`` can't eat it."""


def run_with_deadline(fn: Any, *args: Any, timeout: float | None) -> Any:
    """Call ``fn(*args)``; raise :class:`Deadline` after ``timeout`` s (main thread only, else unbounded).

    A timer already armed by someone else (pytest-timeout, math-verify) is restored afterwards.
    """
    if (
        not timeout
        or timeout <= 0
        or threading.current_thread() is not threading.main_thread()
        or not hasattr(signal, "setitimer")
    ):
        return fn(*args)

    def _on_alarm(signum: int, frame: Any) -> None:
        raise Deadline()

    start = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            remaining = max(old_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, old_interval)
