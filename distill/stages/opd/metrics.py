"""The per-step metrics of ``distill opd`` (``metrics.jsonl``, one flat row per logged step) and their PNG curves.

A row::

    {"step": 12, "time_s": 30.2, "loss": 0.41, "on_policy_loss": 0.41, "off_policy_loss": null,
     "learning_rate": 1e-06, "grad_norm": 0.8, "student_logprob": -0.52, "teacher_logprob": -0.95,
     "logprob_gap": 0.43, "accuracy": 0.62, "completion_length": 88.0, "truncated_fraction": 0.02, ...}

``loss`` is TRL's divergence, averaged over the step's completion tokens: with ``beta`` 1.0 and ``loss_top_k`` 0
the per-token reverse KL(student || teacher) over the whole vocabulary. ``student_logprob`` and ``teacher_logprob``
are the mean log-probabilities the two models give the student's own sampled tokens; ``logprob_gap`` (their
difference) is the sampled-token estimate of the same reverse KL, the quantity on-policy distillation drives to 0.
``accuracy`` is the share of the student's on-policy samples whose final answer equals the gold.

>>> row = metrics_row({"loss": 0.5, "on_policy/student_logprob": -1.0, "on_policy/teacher_logprob": -1.5},
...                   step=3, time_s=1.0)
>>> row["loss"], row["logprob_gap"]
(0.5, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distill.plots import line_plot

RENAMES = {
    "loss": "loss", "on_policy_loss": "on_policy_loss", "off_policy_loss": "off_policy_loss",
    "learning_rate": "learning_rate", "grad_norm": "grad_norm", "epoch": "epoch",
    "on_policy/student_logprob": "student_logprob", "on_policy/teacher_logprob": "teacher_logprob",
    "off_policy/student_logprob": "offpolicy_student_logprob", "off_policy/teacher_logprob": "offpolicy_teacher_logprob",
    "on_policy/accuracy": "accuracy",
    "completions/on_policy_mean_length": "completion_length", "completions/on_policy_max_length": "completion_length_max",
    "completions/truncated_fraction": "truncated_fraction", "completions/off_policy_mean_length": "offpolicy_length",
}


def metrics_row(logs: dict[str, Any], *, step: int, time_s: float) -> dict[str, Any]:
    row: dict[str, Any] = {"step": step, "time_s": round(time_s, 3)}
    for src, dst in RENAMES.items():
        if src in logs:
            row[dst] = _num(logs[src])
    if row.get("student_logprob") is not None and row.get("teacher_logprob") is not None:
        row["logprob_gap"] = round(row["student_logprob"] - row["teacher_logprob"], 6)
    return row


def is_training_row(logs: dict[str, Any]) -> bool:
    """A per-step log (not the end-of-training summary, which has ``train_runtime`` and no ``loss``)."""
    return "loss" in logs and "train_runtime" not in logs


def _num(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:       # NaN -> null
        return None
    return value


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pts], [float(p[1]) for p in pts]


def draw(out_dir: str | Path, rows: Sequence[dict[str, Any]], *, window: int = 10) -> list[Path]:
    """``loss.png``, ``logprobs.png``, ``accuracy.png``, ``length.png`` in ``out_dir`` (a curve without data is
    skipped); returns the paths written."""
    out = Path(out_dir)
    smooth = window if len(rows) > 3 * window else 0
    plots = [
        ("loss.png", "Divergence to the teacher (TRL's loss)", "per-token divergence",
         {"loss": "all batches", "on_policy_loss": "on-policy", "off_policy_loss": "off-policy"}),
        ("logprobs.png", "Log-probability of the student's samples", "mean log-prob per token",
         {"student_logprob": "student", "teacher_logprob": "teacher"}),
        ("accuracy.png", "Accuracy of the student's samples (gold answers)", "accuracy", {"accuracy": "accuracy"}),
        ("length.png", "Mean sampled completion length", "tokens", {"completion_length": "on-policy samples"}),
    ]
    written = []
    for name, title, ylabel, keys in plots:
        series = {label: _series(rows, key) for key, label in keys.items()}
        series = {label: xy for label, xy in series.items() if xy[0]}
        if series:
            written.append(line_plot(out / name, series, title=title, xlabel="step", ylabel=ylabel, smooth=smooth))
    return written
