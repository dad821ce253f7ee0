"""Checkpoints: atomic writes, `weights_only=True` loading, and the config to rebuild the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from medseg.atomic import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "training_finished"]

# 2: the config's model and method are resolved (every argument), `history` holds metrics.csv's rows, and a WSR
# checkpoint holds its classifier; 1 (no "format" key): earlier checkpoints, which still load
CHECKPOINT_FORMAT = 2


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` through a temporary file, so a crash never leaves a half-written checkpoint.

    `state` holds only tensors, numbers, strings and containers of them (loadable with weights_only=True);
    the engine stores `format`, `config` (the resolved config as a dict), `model` (state dict), `optimizer`,
    `scheduler`, `method`, `epoch`, `step`, `best`, `seconds`, `history`.
    """
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (`weights_only=True`).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a medseg checkpoint or is corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path}: cannot load checkpoint (truncated or not a medseg checkpoint): {error}") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{path}: not a medseg checkpoint (expected keys 'model' and 'config')")
    return state


def training_finished(checkpoint: dict[str, Any], planned_epochs: int) -> bool:
    """Whether the run that wrote `checkpoint` has nothing left to train: its planned epochs are done, or
    `train.max_minutes` ended it earlier (recorded as `last_epoch`; older checkpoints lack it)."""
    return checkpoint["epoch"] >= checkpoint.get("last_epoch", planned_epochs)
