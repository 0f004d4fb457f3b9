"""Summarise `distill pipeline --recipe recipes/nano-r1-zero.yaml` runs over several seeds: one table, one figure.

    python scripts/r1_zero_seeds.py out/r1z-seed0 out/r1z-seed1 out/r1z-seed2 --plot docs/nano-r1-zero/seeds.png

Each folder is one pipeline run (its `--out`). Printed, as Markdown:
- per seed and GRPO run (`grpo`: accuracy + format; `grpo-lc`: + language consistency): distill eval pass@1 of
  the base and of the run's final model; the in-training held-out pass@1 at the first and last eval; the mean
  response length, reflection share and correction share over the first and the last 10 training steps; the
  mixed-language share of the held-out samples at the first and last eval;
- each step's wall time from pipeline.json, and their sum.
The figure has four panels over GRPO steps (held-out pass@1, training response length, reflection share,
held-out mixed-language share), one colour per seed, solid for `grpo` and dashed for `grpo-lc`.
Reads only the files the pipeline wrote; a missing run or step is reported, not guessed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RUNS = {"grpo": "accuracy + format", "grpo-lc": "+ language consistency"}
WINDOW = 10


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else float("nan")


def _pass1(folder: Path) -> float | None:
    results = folder / "results.json"
    if not results.is_file():
        return None
    return float(json.loads(results.read_text(encoding="utf-8"))["pass@1"]) * 100


def summarise_run(root: Path, run: str) -> dict | None:
    """The figures of one GRPO run of one pipeline folder (None when the run is not there)."""
    metrics, evals = root / run / "metrics.jsonl", root / run / "eval.jsonl"
    if not (metrics.is_file() and evals.is_file()):
        return None
    steps, held = _jsonl(metrics), _jsonl(evals)
    first, last = steps[:WINDOW], steps[-WINDOW:]
    return {
        "base": _pass1(root / "eval-base"), "final": _pass1(root / f"eval-{run}"),
        "curve": (held[0]["pass@1"] * 100, held[-1]["pass@1"] * 100, held[-1]["step"]),
        "length": (_mean(first, "completion_length"), _mean(last, "completion_length")),
        "reflection": (_mean(first, "watch/reflection") * 100, _mean(last, "watch/reflection") * 100),
        "correction": (_mean(first, "watch/correction") * 100, _mean(last, "watch/correction") * 100),
        "mixed": (held[0].get("watch/mixed_language", float("nan")) * 100,
                  held[-1].get("watch/mixed_language", float("nan")) * 100),
        "steps": steps, "held": held,
    }


def _fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def table(roots: list[Path]) -> str:
    lines = ["| seed folder | run | distill eval pass@1: base → final | held-out pass@1 (curve), first → last eval "
             "| mean length (tokens) | reflection share (%) | correction share (%) | mixed-language share, held-out (%) |",
             "|---|---|---|---|---|---|---|---|"]
    for root in roots:
        for run, title in RUNS.items():
            s = summarise_run(root, run)
            if s is None:
                lines.append(f"| {root.name} | {title} | (not run) | | | | | |")
                continue
            base, final = s["base"], s["final"]
            gain = f" ({final - base:+.1f})" if base is not None and final is not None else ""
            c0, c1, step = s["curve"]
            (l0, l1), (r0, r1), (k0, k1), (m0, m1) = s["length"], s["reflection"], s["correction"], s["mixed"]
            lines.append(f"| {root.name} | {title} | {_fmt(base)} → {_fmt(final)}{gain} | {c0:.1f} → {c1:.1f} "
                         f"(step {step}) | {l0:.1f} → {l1:.1f} ({(l1 / l0 - 1) * 100:+.0f}%) | {r0:.1f} → {r1:.1f} "
                         f"| {k0:.1f} → {k1:.1f} | {m0:.1f} → {m1:.1f} |")
    return "\n".join(lines)


def walls(roots: list[Path]) -> str:
    out = []
    for root in roots:
        plan = root / "pipeline.json"
        if not plan.is_file():
            out.append(f"{root.name}: no pipeline.json")
            continue
        steps = json.loads(plan.read_text(encoding="utf-8"))["steps"]
        parts = [f"{name} {step.get('wall_time_s', 0):.0f}s" for name, step in steps.items()]
        total = sum(step.get("wall_time_s", 0) for step in steps.values())
        out.append(f"{root.name}: {', '.join(parts)}; steps total {total:.0f} s ({total / 60:.1f} min)")
    return "\n".join(out)


def plot(roots: list[Path], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), dpi=110)
    panels = [(axes[0][0], "held-out pass@1 (16 samples)", "held", "pass@1"),
              (axes[0][1], f"response length on training prompts (tokens, {WINDOW}-step mean)", "steps",
               "completion_length"),
              (axes[1][0], f"share of rollouts that reflect ({WINDOW}-step mean)", "steps", "watch/reflection"),
              (axes[1][1], "mixed-language share of held-out samples", "held", "watch/mixed_language")]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, root in enumerate(roots):
        for run, style in (("grpo", "-"), ("grpo-lc", "--")):
            s = summarise_run(root, run)
            if s is None:
                continue
            for ax, _, source, key in panels:
                rows = s[source]
                xs = [r["step"] for r in rows if r.get(key) is not None]
                ys = [r[key] for r in rows if r.get(key) is not None]
                if source == "steps":
                    ys = [sum(ys[max(0, j - WINDOW + 1): j + 1]) / len(ys[max(0, j - WINDOW + 1): j + 1])
                          for j in range(len(ys))]
                ax.plot(xs, ys, style, color=colours[i % len(colours)], label=f"{root.name} {RUNS[run]}")
    for ax, title, _, _ in panels:
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="pipeline output folders, one per seed")
    parser.add_argument("--plot", type=Path, help="write the four-panel figure here (PNG)")
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        print(f"error: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    print(table(args.folders))
    print()
    print(walls(args.folders))
    if args.plot:
        plot(args.folders, args.plot)
        print(f"figure: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
