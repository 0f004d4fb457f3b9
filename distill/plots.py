"""PNG plots for people who would rather look than read: curves, histograms, grouped bars.

matplotlib is imported inside each function with the non-interactive Agg backend, so this works headless.

>>> line_plot("loss.png", {"train": ([0, 1, 2], [2.0, 1.2, 0.9])}, title="loss", xlabel="step")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def line_plot(path: str | Path, series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str = "",
              xlabel: str = "step", ylabel: str = "", smooth: int = 0) -> Path:
    """One line per named series of (xs, ys); ``smooth`` > 1 overlays a moving average of that window."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, (xs, ys) in series.items():
        xs, ys = list(xs), list(ys)
        if not xs:
            continue
        if smooth > 1 and len(ys) > smooth:
            line = ax.plot(xs, ys, alpha=0.3, linewidth=1)[0]
            avg = [sum(ys[max(0, i - smooth + 1): i + 1]) / len(ys[max(0, i - smooth + 1): i + 1])
                   for i in range(len(ys))]
            ax.plot(xs, avg, label=name, color=line.get_color(), linewidth=2)
        else:
            ax.plot(xs, ys, label=name, marker="o" if len(xs) < 30 else None, linewidth=1.5)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return _save(fig, path)


def histogram(path: str | Path, values: Sequence[float], *, title: str = "", xlabel: str = "", bins: int = 40) -> Path:
    """A histogram with the median and 95th percentile marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    vals = sorted(values)
    if vals:
        ax.hist(vals, bins=bins, color="#4c72b0", alpha=0.85)
        med = vals[len(vals) // 2]
        p95 = vals[min(len(vals) - 1, int(0.95 * len(vals)))]
        ax.axvline(med, color="k", linestyle="--", linewidth=1, label=f"median {med:,.0f}")
        ax.axvline(p95, color="#c44e52", linestyle=":", linewidth=1.5, label=f"p95 {p95:,.0f}")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def grouped_bars(path: str | Path, groups: Sequence[str], series: Mapping[str, Sequence[float]], *,
                 title: str = "", ylabel: str = "", errors: Mapping[str, Sequence[float]] | None = None) -> Path:
    """Bars for each group (x) and series (colour), values printed on the bars; optional error bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups)), 4), dpi=110)
    width = 0.8 / max(1, len(series))
    for i, (name, vals) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        err = list(errors[name]) if errors and name in errors else None
        bars = ax.bar(xs, list(vals), width=width, label=name, yerr=err, capsize=3 if err else 0)
        for bar, v in zip(bars, vals):
            ax.annotate(f"{v:.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
