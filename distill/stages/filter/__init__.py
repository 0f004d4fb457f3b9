"""``distill filter``: rejection sampling, from trace rows to an SFT dataset.

- ``config``: :class:`FilterConfig`, every option documented once;
- ``stage``: ``run(cfg)``, the only module here that reads and writes files;
- ``trace``: a trace row split once into reasoning and answer (``Trace``);
- ``rules``: the per-row filters, each ``(trace, context) -> reason | None``;
- ``decontaminate``: the n-gram index of eval problems; ``dedup``, ``selection``: filters over a problem's rows;
- ``apply``: verdicts, token counts, the filters in order (rows in parallel);
- ``dataset``: the SFT rows it writes (the row contract itself is :mod:`distill.data.sft_rows`);
- ``stats``: ``filter_stats.json`` and the printed table.
"""
