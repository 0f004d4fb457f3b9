"""Shared data layer: problem sets (``problems``), prompt templates (``prompts``), and one contract per hand-over
between stages: the trace row generate -> filter (``traces``, in shard files: ``shards``, ``jsonl``) and the SFT
row filter -> sft (``sft_rows``)."""
