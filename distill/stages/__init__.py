"""Stages: one module per command; each exposes ``run(config)``. Stages never import each other."""
