"""TrainerCallbacks of ``distill grpo``: metrics file, held-out eval, progress line.

Only the main process writes files; every process takes part in the held-out eval (its generation is
sharded). The clean stop on Ctrl-C or SIGTERM (a stop requested on any process stops all of them at the same
step) and the run.json refresh at each checkpoint are the shared :class:`distill.training_stop.GracefulStop` and
:class:`distill.training_stop.OnSave`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from distill.data.jsonl import ShardWriter, read_jsonl
from distill.stages.grpo import plots
from distill.stages.grpo.heldout import HeldOutEval
from distill.stages.grpo.metrics import metrics_row
from distill.stages.grpo.reward_setup import RewardSetup
from distill.stages.grpo.watch import Watcher, shares
from distill.training_stop import write_line

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.jsonl"
EVAL_SAMPLES_DIR = "eval"
PLOTS_DIR = "plots"
BEST_DIR = "best"            # keep_best: the policy at the best held-out eval so far
BEST_FILE = "selected.json"  # inside BEST_DIR: its step and pass@1


class MetricsCallback(TrainerCallback):
    """Appends one row per logged step to ``metrics.jsonl`` (fsynced) and redraws the plots now and then."""

    def __init__(self, out_dir: str | Path, rewards: RewardSetup, *, plot_every: int = 10):
        self.out = Path(out_dir)
        self.rewards = rewards
        self.plot_every = max(1, plot_every)
        self.rows: list[dict[str, Any]] = []
        self.writer: ShardWriter | None = None
        self.clock = 0.0

    @property
    def path(self) -> Path:
        return self.out / METRICS_FILE

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.rows = read_jsonl(self.path) if self.path.is_file() else []
        offset = float(self.rows[-1].get("time_s", 0.0)) if self.rows else 0.0
        self.clock = time.time() - offset          # time_s keeps counting across a resume
        self.writer = ShardWriter(self.path)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or "reward" not in logs or self.writer is None:
            return
        row = metrics_row(logs, step=state.global_step, time_s=time.time() - self.clock, labels=self.rewards.labels,
                          accuracy_label=self.rewards.accuracy_label, format_label=self.rewards.format_label)
        self.writer.write_rows([row])
        self.rows.append(row)
        if len(self.rows) % self.plot_every == 0:
            self.draw()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.draw()

    def draw(self) -> list[Path]:
        evals = read_jsonl(self.out / EVAL_FILE) if (self.out / EVAL_FILE).is_file() else []
        try:
            return plots.draw(self.out / PLOTS_DIR, self.rows, evals, self.rewards.labels)
        except Exception as exc:  # a plot must never stop training
            log.warning("could not draw the plots: %s", exc)
            return []


class HeldOutCallback(TrainerCallback):
    """Runs :class:`HeldOutEval` at the start, every ``every`` steps and at the end; writes ``eval.jsonl``
    (one summary row per eval) and ``eval/step-NNNNNN.jsonl`` (every sample with its verdict)."""

    def __init__(self, evaluator: HeldOutEval, out_dir: str | Path, *, every: int, at_start: bool,
                 stopping: Callable[[], bool] = lambda: False, keep_best: bool = False,
                 watchers: Sequence[Watcher] = ()):
        self.evaluator = evaluator
        self.watchers = list(watchers)         # their shares of the samples join each summary row
        self.out = Path(out_dir)
        self.every = every
        self.at_start = at_start
        self.stopping = stopping
        self.keep_best = keep_best
        self.best: float | None = None
        self.last_step: int | None = None
        self.results: list[dict[str, Any]] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.keep_best and state.is_world_process_zero:
            self.best = _resume_best(self.out)
        if self.at_start:
            self._run(model, 0, state)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.every and state.global_step % self.every == 0 and not self.stopping():
            self._run(model, state.global_step, state)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.last_step != state.global_step and not self.stopping():
            self._run(model, state.global_step, state)

    def _run(self, model: Any, step: int, state: Any) -> None:
        result = self.evaluator.run(model, step)
        self.last_step = step
        if result is None or not state.is_world_process_zero:
            return
        summary, records = result
        if self.watchers:
            found = shares(self.watchers, [r["completion"] for r in records])
            summary.update({f"watch/{name}": round(share, 4) for name, share in found.items()})
        with ShardWriter(self.out / EVAL_FILE) as w:
            w.write_rows([summary])
        samples = self.out / EVAL_SAMPLES_DIR / f"step-{step:06d}.jsonl"
        samples.parent.mkdir(parents=True, exist_ok=True)
        samples.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        self.results.append(summary)
        if self.keep_best and (self.best is None or summary["pass@1"] > self.best):
            self.best = summary["pass@1"]
            save_best(model, self.out / BEST_DIR, step, summary["pass@1"])
        msg = (f"held-out eval at step {step}: pass@1 {summary['pass@1']:.3f} ± {summary['pass@1_stderr']:.3f} "
               f"({summary['num_problems']} problems x {summary['n']} samples, mean "
               f"{summary['mean_completion_tokens']:.0f} tokens, {summary['eval_time_s']:.0f} s)")
        log.debug(msg)
        write_line(msg)


def save_best(model: Any, folder: Path, step: int, pass_at_1: float) -> None:
    """Save the policy's weights and config to ``folder`` (replaced whole, so a crash leaves the old one)."""
    import shutil

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    (tmp / BEST_FILE).write_text(json.dumps({"step": step, "pass@1": pass_at_1}) + "\n", encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)


def _resume_best(out: Path) -> float | None:
    """The best pass@1 so far when a run resumes; a saved best from after the checkpoint is discarded."""
    import shutil

    evals = read_jsonl(out / EVAL_FILE) if (out / EVAL_FILE).is_file() else []
    best_file = out / BEST_DIR / BEST_FILE
    if not best_file.is_file():
        return None
    selected = json.loads(best_file.read_text(encoding="utf-8"))
    if not any(e.get("step") == selected["step"] for e in evals):
        shutil.rmtree(out / BEST_DIR, ignore_errors=True)  # its eval row was dropped: that step is redone
        return None
    return max(e["pass@1"] for e in evals)


class ProgressCallback(TrainerCallback):
    """One tqdm bar with the numbers worth watching (replaces transformers' bar, which prints whole dicts)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps or None, desc="grpo", unit="step", dynamic_ncols=True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            if self.bar.total != state.max_steps:
                self.bar.total = state.max_steps
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.bar is None or not logs or "reward" not in logs:
            return
        post = {"reward": logs.get("reward"), "len": logs.get("completions/mean_length"), "kl": logs.get("kl")}
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in post.items() if isinstance(v, (int, float))}, refresh=False)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
