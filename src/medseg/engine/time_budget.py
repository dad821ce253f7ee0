"""Training to a time budget (`train.max_minutes`): after each epoch, how many more epochs fit at the pace so far."""

from __future__ import annotations

__all__ = ["Budget"]


class Budget:
    """The epochs a run may still train.

    Args:
        minutes: the budget (None: no time limit, every planned epoch runs).
        planned_epochs: `train.epochs`.
        start_epoch: epochs already done when this session started (resume).
        start_seconds: their training time.

    Attributes:
        last_epoch: the epoch the run is now planned to end with (re-planned under a budget).
    """

    def __init__(self, minutes: float | None, planned_epochs: int, start_epoch: int, start_seconds: float) -> None:
        self.minutes, self.planned_epochs = minutes, planned_epochs
        self.start_epoch, self.start_seconds = start_epoch, start_seconds
        self.validation_total = 0.0  # this session's validations
        self.validation_last = 0.0  # the latest one
        self.last_epoch = planned_epochs

    def validated(self, seconds: float) -> None:
        """A validation took `seconds`."""
        self.validation_last = seconds
        self.validation_total += seconds

    def epochs_that_fit(self, epoch: int, seconds: float) -> int:
        """After `epoch`, at `seconds` of training: the planned epochs left, or fewer where the budget ends first,
        counting each at this session's mean training pace plus one validation like the latest."""
        left = self.planned_epochs - epoch
        if not self.minutes or not left:
            return left
        pace = (seconds - self.start_seconds - self.validation_total) / (epoch - self.start_epoch)
        fit = int((self.minutes * 60 - seconds) // (pace + self.validation_last))
        return max(0, min(left, fit))
