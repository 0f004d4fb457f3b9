"""``distill pipeline``: a recipe's steps in order, resumable, then a report (``report``).

The pipeline runs other commands through the registry in :mod:`distill.stages`, never by importing them.
"""
