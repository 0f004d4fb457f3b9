"""Selection: keep at most k traces per problem — the shortest, a seeded random sample, or all of them.

Length is ``num_tokens`` (characters of the assistant turn when unknown); ties keep input order. The random
draw of each problem is seeded with ``(seed, problem id)``, so it does not depend on the other problems.

>>> from types import SimpleNamespace as T
>>> rows = [T(index=i, id="p", num_tokens=n, assistant_text="") for i, n in enumerate([30, 10, 20])]
>>> sorted(selected(rows, "shortest", 2))
[1, 2]
>>> len(selected(rows, "random", 2, seed=1)), len(selected(rows, "all", 1))
(2, 3)
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

MODES = ("all", "shortest", "random")


def _length(t: Any) -> int:
    return t.num_tokens if t.num_tokens is not None else len(t.assistant_text)


def selected(traces: Iterable[Any], mode: str, k: int, *, seed: int = 0) -> set[int]:
    """Indices of the traces kept: per problem id, at most ``k`` (``mode`` "shortest" | "random"), or all."""
    if mode not in MODES:
        raise ValueError(f"selection mode must be one of {MODES}, got {mode!r}")
    groups: dict[str, list[Any]] = {}
    for t in traces:
        groups.setdefault(t.id, []).append(t)
    if mode == "all":
        return {t.index for group in groups.values() for t in group}
    if k < 1:
        raise ValueError(f"k must be >= 1 for selection mode {mode!r}, got {k}")
    kept: set[int] = set()
    for pid, group in groups.items():
        if len(group) <= k:
            chosen = group
        elif mode == "shortest":
            chosen = sorted(group, key=lambda t: (_length(t), t.index))[:k]
        else:
            chosen = random.Random(f"{seed}:{pid}").sample(group, k)
        kept.update(t.index for t in chosen)
    return kept
