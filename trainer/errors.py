"""One root error for the trainer package; infrastructure errors are translated at the boundary."""

from __future__ import annotations


class TrainerError(Exception):
    """Training could not start or finish (bad config, empty window, busy lock, bad model dir)."""


class TrainingConfigError(TrainerError, ValueError):
    """A training option has a value it cannot take (still a ValueError for callers of the dataclass)."""


class EmptyDatasetError(TrainerError):
    """The window gave no usable examples for the chosen objective."""


class RunLockedError(TrainerError):
    """Another training run holds the lock file."""
