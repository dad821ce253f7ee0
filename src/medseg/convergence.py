"""Whether a finished training had converged, read from its `metrics.csv` history: the check the semi-supervised
protocol applies to every run (validation flat over the last 30% of training), and the warning `medseg train`
prints when a run fails it."""

from __future__ import annotations

import math
import statistics

__all__ = [
    "validation_scores",
    "validation_change",
    "convergence_warning",
    "checkpoint_by_drift",
    "checkpoint_for_change",
]

TAIL = 0.3  # the share of training, at its end, over which validation should be flat
TOLERANCE = 0.02  # how far validation may move over that stretch and still count as flat


def validation_scores(history: list[dict[str, str]]) -> tuple[str, list[tuple[int, float]]]:
    """The history's validation column and its (epoch, score) points, epochs without validation (NaN) left out
    ("" and no points when nothing was validated)."""
    column = next((c for c in (history[0] if history else {}) if c.startswith("val_")), None)
    if column is None:
        return "", []
    scores = [(int(r["epoch"]), float(r.get(column) or "nan")) for r in history]  # empty: not logged that epoch
    points = [(epoch, score) for epoch, score in scores if not math.isnan(score)]
    return column, points


def validation_change(history: list[dict[str, str]], tail: float = TAIL) -> float | None:
    """How much the validation score still moved over the last `tail` of training: the least-squares slope of
    the validated epochs in that stretch, times its length (None with fewer than 3 such epochs)."""
    return _change(validation_scores(history)[1], tail)


def _change(points: list[tuple[int, float]], tail: float) -> float | None:
    """`validation_change` of (epoch, score) points."""
    if not points:
        return None
    last = points[-1][0]
    stretch = [(x, y) for x, y in points if x > last * (1 - tail)]
    if len(stretch) < 3:
        return None
    mean_x = statistics.mean(x for x, _ in stretch)
    mean_y = statistics.mean(y for _, y in stretch)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in stretch) / sum((x - mean_x) ** 2 for x, _ in stretch)
    return slope * (stretch[-1][0] - stretch[0][0])


def convergence_warning(history: list[dict[str, str]], tolerance: float = TOLERANCE) -> str | None:
    """A sentence for the user when validation still moved by more than `tolerance` over the last 30% of training
    (None when it was flat, or too few epochs were validated to say).

    Rising: more epochs may help. Falling: the network drifted from its best (with few masks, a semi-supervised
    student can learn its own mistakes), so the last checkpoint may be worse than the best-validated one.
    """
    column, points = validation_scores(history)
    change = _change(points, TAIL)
    if change is None or abs(change) <= tolerance:
        return None
    name = column.removeprefix("val_")
    if change > 0:
        return (
            f"validation {name} still rose {change:+.3f} over the last {TAIL:.0%} of training: "
            "more epochs (train.epochs) may help"
        )
    best_epoch, best = max(points, key=lambda point: point[1])
    return (
        f"validation {name} fell {-change:.3f} over the last {TAIL:.0%} of training (best {best:.4f} at epoch "
        f"{best_epoch}, last {points[-1][1]:.4f}): last.pt may be worse than best.pt, which evaluate, predict "
        "and export use unless eval.checkpoint=last (eval.checkpoint=auto takes best.pt after such a fall)"
    )


def checkpoint_by_drift(history: list[dict[str, str]], tolerance: float = TOLERANCE) -> str:
    """`eval.checkpoint: auto`, a rule fixed before any test figure is seen: "last", unless validation fell by more
    than `tolerance` over the last 30% of training (the drift `convergence_warning` reports), then "best" (the
    best-validated epoch's weights). Too few validated epochs to tell: "last"."""
    return checkpoint_for_change(validation_change(history), tolerance)


def checkpoint_for_change(change: float | None, tolerance: float = TOLERANCE) -> str:
    """`checkpoint_by_drift` from the validation change over the last 30% alone (as a run's row records it)."""
    return "best" if change is not None and change < -tolerance else "last"
