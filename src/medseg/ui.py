"""Terminal progress for long jobs (rich): preprocessing, then training with loss, val Dice and ETA."""

from __future__ import annotations

import math
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

__all__ = ["TrainingProgress", "console", "labelled"]

# user text (paths, names, labels, messages) is printed literally: no markup, no highlighting, so a path like
# `pm[/x]` is text, never a style tag
console = Console(stderr=True, markup=False, highlight=False)


def labelled(label: str, style: str, text: str) -> Text:
    """`label` in `style`, then `text` as it is: `console.print(labelled("error:", "bold red", message))`."""
    return Text.assemble((label, style), " ", text)


def _score(value: float) -> str:
    """A validation score for display: "—" for an epoch that was not validated (NaN)."""
    return "—" if math.isnan(value) else f"{value:.4f}"


class TrainingProgress:
    """Progress bars for a training run; silent when disabled."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None
        self._prep = None
        self._epoch = 0
        self._epochs = 0
        self._loss = float("nan")
        self._val = float("nan")
        self._metric = "Dice"

    def _ensure(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                disable=not self.enabled,
                transient=False,
            )
            self._progress.start()
        return self._progress

    def preprocessing(self, done: int, total: int) -> None:
        progress = self._ensure()
        if self._prep is None:
            self._prep = progress.add_task("preprocessing (once per dataset)", total=total)
        progress.update(self._prep, completed=done)

    def start(self, epochs: int, steps_per_epoch: int, start_epoch: int, metric: str = "dice") -> None:
        progress = self._ensure()
        self._epochs, self._epoch = epochs, start_epoch + 1
        self._metric = "Dice" if metric == "dice" else metric
        self._task = progress.add_task(
            self._describe(), total=epochs * steps_per_epoch, completed=start_epoch * steps_per_epoch
        )

    def _describe(self) -> str:
        return f"epoch {self._epoch}/{self._epochs}  loss {self._loss:.4f}  val {self._metric} {_score(self._val)}"

    def step(self, loss: float) -> None:
        self._loss = loss
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1, description=self._describe())

    def epoch_done(self, epoch: int, loss: float, val_score: float) -> None:
        self._loss, self._val, self._epoch = loss, val_score, min(epoch + 1, self._epochs)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=self._describe())
        if self.enabled and not sys.stderr.isatty():  # logs and CI: one line per epoch
            score = _score(val_score)
            console.print(f"epoch {epoch}/{self._epochs}: train loss {loss:.4f}, val {self._metric} {score}")

    def note(self, message: str) -> None:
        console.print(message, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
