"""Rejection sampling for ``distill filter``: pure filters over trace rows, and the dataset they leave.

- :mod:`~distill.filtering.trace` — a trace row split once into reasoning and answer (:class:`Trace`);
- :mod:`~distill.filtering.rules` — the per-row filters, each ``(trace, context) -> reason | None``;
- :mod:`~distill.filtering.decontaminate` — the n-gram index of eval problems;
- :mod:`~distill.filtering.dedup`, :mod:`~distill.filtering.selection` — filters over a problem's rows;
- :mod:`~distill.filtering.pipeline` — verdicts, token counts, the filters in order (rows in parallel);
- :mod:`~distill.filtering.dataset` — the SFT rows (``messages`` + id, source, teacher, num_tokens);
- :mod:`~distill.filtering.stats` — ``filter_stats.json`` and the printed table.

Only the stage (:mod:`distill.stages.filter`) reads and writes files.
"""

from distill.filtering.decontaminate import NgramIndex, build_index
from distill.filtering.dedup import duplicates
from distill.filtering.pipeline import Outcome, count_tokens, fill_verdicts, filter_traces
from distill.filtering.rules import ROW_FILTERS, FilterContext, check_row, enabled_row_filters
from distill.filtering.selection import selected
from distill.filtering.trace import Trace, prepare

__all__ = [
    "ROW_FILTERS",
    "FilterContext",
    "NgramIndex",
    "Outcome",
    "Trace",
    "build_index",
    "check_row",
    "count_tokens",
    "duplicates",
    "enabled_row_filters",
    "fill_verdicts",
    "filter_traces",
    "prepare",
    "selected",
]
