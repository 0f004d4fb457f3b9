"""Stopping a Trainer run cleanly, shared by ``distill sft``, ``distill grpo`` and ``distill opd``.

:class:`GracefulStop` turns the first SIGINT or SIGTERM (Ctrl-C; a Slurm preemption or ``docker stop``) into
"finish this optimizer step, write a checkpoint, stop"; a second signal restores the previous handlers and
raises ``KeyboardInterrupt`` at once. With several processes the request is all-reduced at every step, so every
rank stops at the same step and the collective checkpoint save completes. A SIGKILL leaves the last periodic
checkpoint to resume from.

:class:`OnSave` calls a function on the main process after each checkpoint (the stages refresh run.json with it);
:func:`write_line` prints one line to stderr without breaking tqdm progress bars.

The classes subclass ``transformers.TrainerCallback``, so this module imports transformers at module level: only
the training code imports it.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback


def write_line(text: str) -> None:
    """``text`` on stderr, through ``tqdm.write`` so that a progress bar on screen is redrawn below it."""
    try:
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)
    except Exception:  # pragma: no cover - tqdm missing or closed stream
        print(text, file=sys.stderr)


class GracefulStop(TrainerCallback):
    """First SIGINT/SIGTERM: finish this step, checkpoint, stop. Second: restore the handlers, KeyboardInterrupt.

    The handlers are installed on ``on_train_begin`` (or earlier by :meth:`install`), only from the main thread
    (Python allows no other), and the previous ones are put back on ``on_train_end``. ``requested`` says a stop
    was asked for; ``stopped_at`` is the step the run stopped at (``None`` when it was not stopped).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.stopped_at: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:                          # second signal: stop now
            self.restore()
            raise KeyboardInterrupt
        self.requested = True
        write_line(f"{signal.Signals(signum).name}: finishing this step and saving a checkpoint (send it again to "
                   "stop at once)")

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (from the main thread only; a second call changes nothing)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            if sig not in self._previous:
                self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # None: not set from Python
        self._previous.clear()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.install()

    def _agreed(self) -> bool:
        """Whether any rank has a stop requested (every rank must call this at the same step)."""
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self.requested
        device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
        flag = torch.tensor([1.0 if self.requested else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._agreed():
            self.requested = True
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.restore()


class OnSave(TrainerCallback):
    """Calls ``fn(step)`` on the main process after each checkpoint (the stages refresh run.json)."""

    def __init__(self, fn: Callable[[int], None]):
        self.fn = fn

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.fn(state.global_step)
