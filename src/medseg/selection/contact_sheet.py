"""A contact sheet of the picks: their images in a grid, each titled with its id and why, for the annotator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from medseg.atomic import atomic_path
from medseg.selection.pool import Pick

__all__ = ["write_contact_sheet"]

COLUMNS = 8
LIMIT = 96  # pictures on one sheet; the CSV lists every pick


def write_contact_sheet(path: str | Path, picks: Sequence[Pick], image: Callable[[str], np.ndarray]) -> None:
    """A PNG of the first `LIMIT` picks.

    Args:
        image: case id → its preprocessed image `(C, H, W)` (one channel shown grey, three as RGB, else the first).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = list(picks[:LIMIT])
    rows = max(1, -(-len(shown) // COLUMNS))
    figure, axes = plt.subplots(rows, COLUMNS, figsize=(2 * COLUMNS, 2.5 * rows + 0.5), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, pick in zip(axes.flat, shown, strict=False):
        picture = np.asarray(image(pick.id), np.float32)
        picture = np.moveaxis(picture, 0, -1) if picture.shape[0] == 3 else picture[0]
        low, high = np.percentile(picture, [1, 99])
        axis.imshow(np.clip((picture - low) / max(high - low, 1e-6), 0, 1), cmap="gray")
        axis.set_title(f"{pick.id}\n{pick.why[:28]}", fontsize=7)
    more = f" (first {LIMIT} of {len(picks)})" if len(picks) > LIMIT else ""
    figure.suptitle(f"{len(picks)} case(s) to annotate{more}", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.4 / figure.get_figheight()), h_pad=1.5)  # room for titles
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=80)
    plt.close(figure)
