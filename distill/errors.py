"""Errors a user can act on. The CLI prints their message (no traceback) and exits with code 2."""

from __future__ import annotations

from distill.config import ConfigError


class DistillError(Exception):
    """Base class for input problems the user can fix: say what was wrong, where, and what to do."""


class DataError(DistillError):
    """A data file, row or column is missing or malformed."""


USER_ERRORS: tuple[type[BaseException], ...] = (DistillError, ConfigError)
