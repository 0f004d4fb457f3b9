"""One dataclass per stage. Each field's ``help`` is the single place an option is documented.

These modules import nothing heavy: the CLI builds its flags from them on every start.
"""
