"""Dedup: drop a trace that repeats an earlier trace of the same problem, exactly or up to whitespace and case.

The assistant turn (what the student trains on) is compared; the first occurrence in input order is kept.
Texts are held as 16-byte hashes, so memory stays small on long traces.

>>> from types import SimpleNamespace as T
>>> rows = [T(index=0, id="p", assistant_text="A  b"), T(index=1, id="p", assistant_text="A  b"),
...         T(index=2, id="p", assistant_text="a b"), T(index=3, id="q", assistant_text="A  b")]
>>> duplicates(rows)
{1: 'exact', 2: 'normalized'}
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any


def normalize(text: str) -> str:
    """Lower-case, whitespace runs collapsed to one space, ends stripped."""
    return " ".join(text.lower().split())


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def duplicates(traces: Iterable[Any]) -> dict[int, str]:
    """``{trace.index: "exact" | "normalized"}`` for each trace that repeats an earlier one of its problem."""
    seen_exact: dict[str, set[bytes]] = {}
    seen_norm: dict[str, set[bytes]] = {}
    out: dict[int, str] = {}
    for t in traces:
        text = t.assistant_text
        exact, norm = _digest(text), _digest(normalize(text))
        exact_set = seen_exact.setdefault(t.id, set())
        norm_set = seen_norm.setdefault(t.id, set())
        if exact in exact_set:
            out[t.index] = "exact"
            continue
        if norm in norm_set:
            out[t.index] = "normalized"
            continue
        exact_set.add(exact)
        norm_set.add(norm)
    return out
