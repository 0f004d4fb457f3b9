"""Shared data layer: problem sets, prompt templates, trace records and their shard files."""
