"""Trainer callbacks of ``distill sft``: the loss record and curve, and a graceful stop on Ctrl-C / SIGTERM.

``LossRecorder`` appends every logged step to ``OUT/loss.jsonl`` (so a crash loses nothing that was logged) and
redraws ``OUT/loss.png`` at every checkpoint and at the end. On resume it first drops the records past the
checkpoint's step, so the curve has no duplicated steps.

``GracefulStop`` turns the first SIGINT or SIGTERM (Ctrl-C, or a Slurm preemption) into "finish this optimizer
step, write a checkpoint, stop"; a second signal interrupts at once. With several processes the flag is
all-reduced at every step, so every rank stops at the same step and the collective checkpoint save completes.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)

LOSS_FILE = "loss.jsonl"
LOSS_PLOT = "loss.png"
_KEYS = ("loss", "eval_loss", "learning_rate", "grad_norm", "num_tokens", "mean_token_accuracy", "epoch")


def read_losses(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        return []
    rows = []
    for line in p.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue                                # a line cut by a crash
    return rows


def plot_losses(out_dir: str | Path, title: str) -> Path | None:
    from distill.plots import line_plot

    rows = read_losses(Path(out_dir) / LOSS_FILE)
    series = {}
    for key, name in (("loss", "train"), ("eval_loss", "eval")):
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            series[name] = ([p[0] for p in pts], [p[1] for p in pts])
    if not series:
        return None
    smooth = 5 if len(series.get("train", ([], []))[0]) > 50 else 0
    return line_plot(Path(out_dir) / LOSS_PLOT, series, title=title, xlabel="optimizer step", ylabel="loss",
                     smooth=smooth)


class LossRecorder(TrainerCallback):
    def __init__(self, out_dir: str | Path, title: str):
        self.out_dir = Path(out_dir)
        self.title = title
        self.path = self.out_dir / LOSS_FILE

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_losses(self.path) if r.get("step", 0) <= state.global_step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, **{k: logs[k] for k in _KEYS if k in logs}}
        if len(row) == 1:
            return
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            plot_losses(self.out_dir, self.title)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            plot_losses(self.out_dir, self.title)


class GracefulStop(TrainerCallback):
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
        log.warning("%s received: finishing this step and writing a checkpoint (send it again to stop at once)",
                    signal.Signals(signum).name)

    def install(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.install()

    def _agreed(self) -> bool:
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self.requested
        device = "cpu"
        if dist.get_backend() == "nccl":
            device = f"cuda:{torch.cuda.current_device()}"
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
