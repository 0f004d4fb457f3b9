"""Errors a user can act on. The CLI prints their message (no traceback) and exits with code 2.

One root: every error here is a :class:`DistillError`, so ``except DistillError`` catches them all.
"""

from __future__ import annotations


class DistillError(Exception):
    """Base class for input problems the user can fix: say what was wrong, where, and what to do."""


class ConfigError(DistillError):
    """A recipe, override or flag the user can fix."""


class DataError(DistillError):
    """A data file, row or column is missing or malformed."""


USER_ERRORS: tuple[type[BaseException], ...] = (DistillError,)
