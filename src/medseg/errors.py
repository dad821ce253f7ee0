"""Errors that speak the user's language: the file or field, the problem, what was expected."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DataError", "ConfigError", "RunFolderError", "TrainingDivergedError", "MemoryBudgetError"]


class DataError(ValueError):
    """A source file that cannot be used.

    Args:
        path: the offending file.
        problem: what is wrong and, where it helps, what was expected.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the field."""


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked: an existing run, one another process is training, or none."""


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite: a user's setting (learning rate, data) rather than a programming error."""


class MemoryBudgetError(MemoryError):
    """A size that cannot fit in the memory available, found before trying (the message says what to lower)."""
