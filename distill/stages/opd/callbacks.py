"""TrainerCallbacks of ``distill opd``: the metrics file and curves, and a progress bar.

Only the main process writes files. The clean stop on Ctrl-C / SIGTERM and the run.json refresh at each
checkpoint are the shared :class:`distill.training_stop.GracefulStop` and :class:`distill.training_stop.OnSave`. A
SIGKILL leaves the last periodic checkpoint, and rerunning the same command resumes from it (the metrics rows
logged after it are dropped and redone).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from distill.data.jsonl import read_jsonl
from distill.stages.opd.metrics import draw, is_training_row, metrics_row

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
PLOTS_DIR = "plots"


def keep_until(path: Path, step: int) -> list[dict[str, Any]]:
    """Keep the rows of ``path`` logged at or before ``step`` (a resumed run redoes the later ones)."""
    rows = read_jsonl(path) if path.is_file() else []
    kept = [r for r in rows if int(r.get("step", 0)) <= step]
    if len(kept) != len(rows):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, path)
        log.info("resume from step %d: dropped %d metrics rows logged after it", step, len(rows) - len(kept))
    return kept


class MetricsCallback(TrainerCallback):
    """One row per logged step in ``metrics.jsonl`` (appended and flushed as it comes); PNGs now and then."""

    def __init__(self, out_dir: str | Path, *, plot_every: int = 10):
        self.out = Path(out_dir)
        self.plot_every = max(1, plot_every)
        self.rows: list[dict[str, Any]] = []
        self.clock = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.rows = keep_until(self.out / METRICS_FILE, state.global_step)
        offset = float(self.rows[-1].get("time_s", 0.0)) if self.rows else 0.0
        self.clock = time.time() - offset                  # time_s keeps counting across a resume

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or not is_training_row(logs):
            return
        row = metrics_row(logs, step=state.global_step, time_s=time.time() - self.clock)
        with (self.out / METRICS_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
        self.rows.append(row)
        if len(self.rows) % self.plot_every == 0:
            self.draw()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.draw()

    def draw(self) -> list[Path]:
        try:
            return draw(self.out / PLOTS_DIR, self.rows)
        except Exception as exc:  # a plot must never stop training
            log.warning("could not draw the plots: %s", exc)
            return []


class ProgressCallback(TrainerCallback):
    """One tqdm bar with the numbers worth watching (replaces transformers' bar, which prints whole dicts)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps or None, initial=state.global_step, desc="opd", unit="step",
                            dynamic_ncols=True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.bar is None or not logs or not is_training_row(logs):
            return
        row = metrics_row(logs, step=state.global_step, time_s=0.0)
        post = {k: row.get(k) for k in ("loss", "logprob_gap", "accuracy", "completion_length")}
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in post.items() if isinstance(v, (int, float))}, refresh=False)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
