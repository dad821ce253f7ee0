"""Choose how a trained run turns probabilities into masks, on its validation split (as nnU-Net does for its
post-processing): the probability threshold (binary masks), flip test-time augmentation and keeping only the largest
connected component, the combination with the best mean validation Dice. The choice goes into the run's config
(`eval.threshold`, `eval.tta`, `eval.largest_component`), so evaluate, predict and export use it; the test split is
never read. A threshold other than 0.5 matters where the network's probabilities are not calibrated, as when it
learnt from pseudo-masks."""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Any

from medseg.evaluation import mean_dice_by_settings
from medseg.run_folder import RunFolder

__all__ = ["PLAIN", "THRESHOLDS", "candidates", "choose_postprocessing", "as_overrides"]

PLAIN: dict[str, Any] = {"threshold": 0.5, "tta": False, "largest_component": False}
THRESHOLDS = (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8)


def candidates(binary: bool) -> dict[str, dict[str, Any]]:
    """Every combination, simplest first (threshold 0.5, no flips, every component): a later one is chosen only
    when it scores strictly higher. Multi-class masks are an argmax: no threshold to choose."""
    thresholds = THRESHOLDS if binary else THRESHOLDS[:1]
    grid = {}
    for threshold, tta, largest in product(thresholds, (False, True), (False, True)):
        parts = [f"p≥{threshold:g}"] + ["flips"] * tta + ["largest component"] * largest
        grid[" + ".join(parts)] = {"threshold": threshold, "tta": tta, "largest_component": largest}
    return grid


def as_overrides(settings: dict[str, Any]) -> list[str]:
    """`{"threshold": 0.4, "tta": True}` → `["eval.threshold=0.4", "eval.tta=true"]`."""
    return [f"eval.{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in settings.items()]


def choose_postprocessing(
    run_dir: str | Path, split: str = "val", which: str | None = None, apply: bool = True
) -> dict:
    """Evaluate the run's checkpoint `which` (default: its `eval.checkpoint`) on `split`, against the true masks,
    with each of `candidates` (the network runs once without and once with flips); the one with the best mean Dice is
    written into the run's config when `apply`.

    Returns:
        {"split", "checkpoint", "chosen": name, "settings": {threshold, tta, largest_component},
        "dice": {name: mean Dice}}.

    Raises:
        ValueError: the split holds no case with a mask.
    """
    run = RunFolder(run_dir)
    which = which or run.config.eval.checkpoint
    grid = candidates(binary=run.config.model.get("out_channels", 1) == 1)
    scores = mean_dice_by_settings(run.path, split, grid, which)
    chosen = max(grid, key=scores.__getitem__)  # the first, simplest, of equals
    if apply:
        cfg = run.config
        run.write_config(cfg.model_copy(update={"eval": cfg.eval.model_copy(update=grid[chosen])}))
    return {"split": split, "checkpoint": which, "chosen": chosen, "settings": grid[chosen], "dice": scores}
