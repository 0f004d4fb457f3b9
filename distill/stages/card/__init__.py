"""``distill card``: MODEL_CARDS/<student>.md from the run chain (``lineage``) rendered by ``model_card``.
"""
