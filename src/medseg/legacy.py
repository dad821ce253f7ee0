"""Bringing run folders and checkpoints of medseg 0.1 (checkpoint format 1) up to date when they are loaded.

- MSGA's loss weights were options of the model, trained by `method: supervised`; they belong to `method: msga`.
- A WSR checkpoint named its stage-1 classifier's run folder (`classifier_run`) instead of holding the
  classifier: its weights are taken from that folder once, while it is still where the run recorded it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medseg.checkpoint_io import load_checkpoint

__all__ = ["upgrade_specs", "upgrade_checkpoint"]


def upgrade_specs(model: dict[str, Any], method: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A config's `model:` and `method:` sections in today's form. A `model: msga` with `method: supervised` (the
    default) is trained by `method: msga`, which takes the loss weights the model used to hold."""
    legacy = {key: model.pop(key) for key in ("guided_weight", "reconstruction_weight") if key in model}
    if model.get("name") == "msga" and method.get("name") == "supervised":
        kept = {k: v for k, v in method.items() if k in ("ce_weight", "dice_weight", "dice")}
        method = {**kept, **legacy, "name": "msga"}
    return model, method


def upgrade_checkpoint(state: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """A loaded checkpoint in today's form (format 2 and later come back unchanged).

    Raises:
        FileNotFoundError: a format-1 WSR checkpoint whose classifier run is no longer where it was.
    """
    if state.get("format", 1) >= 2:
        return state
    method = state["config"].get("method", {})
    if method.get("name") != "wsr" or "classifier_run" not in method:
        return state
    classifier_run = Path(method["classifier_run"])
    best = classifier_run / "best.pt"
    if not best.is_file():
        raise FileNotFoundError(
            f"{path}: this WSR checkpoint (medseg 0.1) reads its classifier from {classifier_run}, which is gone; "
            "retrain the run with this version, whose checkpoints carry their classifier"
        )
    classifier = load_checkpoint(best)
    config = {**state["config"]}
    config["method"] = {k: v for k, v in method.items() if k != "classifier_run"}
    config["method"]["classifier"] = classifier["config"]["model"]
    # the model spec recorded the data's channel count; the network was built with embedding_dim outputs
    config["model"] = {**config["model"], "out_channels": method.get("embedding_dim", 16)}
    weights = {f"embedding.{k}": v for k, v in state["model"].items()}
    weights.update({f"classifier.{k}": v for k, v in classifier["model"].items()})
    return {**state, "config": config, "model": weights}
