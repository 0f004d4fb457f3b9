"""``distill nano-task``: the nano tasks (``task``: problems and warm-up traces): arithmetic, or code
(``--kind code``, one-line Python functions and stdin/stdout programs with tests).
"""
