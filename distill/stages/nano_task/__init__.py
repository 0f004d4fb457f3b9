"""``distill nano-task``: the nano arithmetic task (``task``: problems and warm-up traces).
"""
