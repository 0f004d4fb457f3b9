"""Trainer callbacks of ``distill sft``: the loss record and curve.

``LossRecorder`` appends every logged step to ``OUT/loss.jsonl`` (so a crash loses nothing that was logged) and
redraws ``OUT/loss.png`` at every checkpoint and at the end. On resume it first drops the records past the
checkpoint's step, so the curve has no duplicated steps.

The graceful stop on Ctrl-C / SIGTERM is the shared :class:`distill.training_stop.GracefulStop`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

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
