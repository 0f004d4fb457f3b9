"""PNG curves of a GRPO run, redrawn from its metrics files: the two the R1-Zero paper shows, and rewards.

- ``accuracy.png``: held-out pass@1 against step (the paper's AIME curve), with the training batch's
  accuracy (moving average) beside it;
- ``response_length.png``: mean completion length in tokens against step (the paper's length curve);
- ``rewards.png``: the total reward and each reward's batch mean;
- ``watch.png``: each watcher's share of the rollouts and of the held-out samples (reflection, mixed language).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distill.plots import line_plot


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over up to ``window`` values.

    >>> moving_average([0, 2, 4, 6], 2)
    [0.0, 1.0, 3.0, 5.0]
    """
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pts], [float(p[1]) for p in pts]


def draw(out_dir: str | Path, metrics: Sequence[dict[str, Any]], evals: Sequence[dict[str, Any]],
         reward_labels: Sequence[str], *, window: int = 10) -> list[Path]:
    """Write the PNGs into ``out_dir``; returns the paths written (a plot with no data is skipped)."""
    out = Path(out_dir)
    written: list[Path] = []
    acc: dict[str, tuple[list[float], list[float]]] = {}
    ex, ey = _series(evals, "pass@1")
    if ex:
        acc["held-out pass@1"] = (ex, ey)
    tx, ty = _series(metrics, "accuracy")
    if tx:
        acc[f"training accuracy ({window}-step mean)"] = (tx, moving_average(ty, window))
    if acc:
        written.append(line_plot(out / "accuracy.png", acc, title="Accuracy during GRPO", xlabel="step",
                                 ylabel="accuracy"))
    lx, ly = _series(metrics, "completion_length")
    if lx:
        written.append(line_plot(out / "response_length.png", {"mean completion length": (lx, ly)},
                                 title="Mean response length during GRPO", xlabel="step", ylabel="tokens",
                                 smooth=window))
    rewards: dict[str, tuple[list[float], list[float]]] = {}
    rx, ry = _series(metrics, "reward")
    if rx:
        rewards["total (weighted)"] = (rx, moving_average(ry, window))
    for label in reward_labels:
        x, y = _series(metrics, f"reward/{label}/mean")
        if x:
            rewards[label] = (x, moving_average(y, window))
    if rewards:
        written.append(line_plot(out / "rewards.png", rewards, title=f"Rewards ({window}-step mean)",
                                 xlabel="step", ylabel="reward"))
    watched: dict[str, tuple[list[float], list[float]]] = {}
    for key in sorted({k for r in metrics for k in r if k.startswith("watch/")}):
        x, y = _series(metrics, key)
        watched[f"{key[6:]}: rollouts ({window}-step mean)"] = (x, moving_average(y, window))
        x, y = _series(evals, key)
        if x:
            watched[f"{key[6:]}: held-out samples"] = (x, y)
    if watched:
        written.append(line_plot(out / "watch.png", watched, title="Share of completions showing a behaviour",
                                 xlabel="step", ylabel="share"))
    return written
