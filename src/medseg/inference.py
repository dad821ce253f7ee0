"""A trained model ready to predict, rebuilt from nothing but its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medseg.config import Config, load_config
from medseg.engine.checkpoint import load_checkpoint
from medseg.engine.device import autocast_dtype, pick_device
from medseg.engine.trainer import build_method, predict_probabilities
from medseg.models import inference_modes
from medseg.postprocess import keep_largest_component, masks_from_probabilities

__all__ = ["Predictor", "resolve_checkpoint", "run_checkpoint", "keep_largest_component"]


def run_checkpoint(run_dir: str | Path, overrides: list[str] | None = None) -> str:
    """The checkpoint ("best" or "last") a run folder stands for: its config's `eval.checkpoint`, after
    `overrides`; "best" for a folder without config.yaml."""
    config = Path(run_dir) / "config.yaml"
    if not config.is_file():
        return "best"
    return load_config(config, overrides).eval.checkpoint


def resolve_checkpoint(target: str | Path, which: str | None = None) -> Path:
    """A run folder → its `<which>.pt` (by default the run's `eval.checkpoint`); a `.pt` file → itself.

    Raises:
        FileNotFoundError: neither a checkpoint nor a run folder holding one.
    """
    target = Path(target)
    if target.is_dir():
        which = which or run_checkpoint(target)
        path = target / f"{which}.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{target}: no {which}.pt in this run folder (has training finished an epoch?)")
        return path
    if not target.is_file():
        raise FileNotFoundError(f"{target}: no such run folder or checkpoint")
    return target


@dataclass
class Predictor:
    cfg: Config
    method: object
    model: torch.nn.Module
    device: torch.device
    amp: torch.dtype | None
    epoch: int

    @classmethod
    def load(
        cls, target: str | Path, which: str | None = None, device: str = "auto", mode: str | None = None
    ) -> Predictor:
        """Rebuild the model of a checkpoint.

        Args:
            target: a `.pt` file, or a run folder (its `which`.pt: "best", "last", or None for its `eval.checkpoint`).
            mode: inference mode of a multi-head model: "ensemble", "head=K" or "prune=L" (see the checkpoint's
                `inference_modes`); None keeps the configured one.

        Raises:
            ValueError: a mode the checkpoint's model does not support (the message lists those it does).
        """
        state = load_checkpoint(resolve_checkpoint(target, which))
        cfg = load_config(state["config"])
        method = build_method(cfg)
        method.model.load_state_dict(state["model"])
        if mode is not None:
            supported = inference_modes(method.model)
            if mode not in supported:
                raise ValueError(
                    f"inference mode {mode!r} is not supported by this {cfg.model['name']} checkpoint; "
                    f"supported: {supported}"
                )
            name, _, level = mode.partition("=")
            method.model.set_inference(name, int(level) if level else None)
        torch_device = pick_device(device)
        model = method.model.to(torch_device).eval()
        if cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        method.model = model
        return cls(cfg, method, model, torch_device, autocast_dtype(torch_device, cfg.train.amp), state["epoch"])

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` preprocessed images → `(B, K, H, W)` float32 probabilities on the CPU (a classifier's:
        `(B, K)`).

        With `eval.tta`, the mean over the image and its horizontal and vertical flips.
        """
        images = images.to(self.device, dtype=torch.float32)
        flips = [(), (-1,), (-2,)] if self.cfg.eval.tta else [()]
        total = None
        for dims in flips:
            flipped = images.flip(dims) if dims else images
            probs = predict_probabilities(self.method, self.model, flipped, self.amp, self.cfg.train.channels_last)
            probs = probs.flip(dims) if dims and probs.dim() == 4 else probs  # image-level outputs stay as they are
            total = probs if total is None else total + probs
        return (total / len(flips)).cpu()

    def masks(self, images: torch.Tensor) -> np.ndarray:
        """`(B, C, H, W)` preprocessed images → `(B, H, W)` uint8 class indices, post-processed per `eval`."""
        return self.masks_from(self.probabilities(images))

    def masks_from(self, probs: torch.Tensor) -> np.ndarray:
        """Probabilities `(B, K, H, W)` → `(B, H, W)` uint8 class indices, post-processed per `eval`."""
        return masks_from_probabilities(probs, self.cfg.eval.threshold, self.cfg.eval.largest_component)
