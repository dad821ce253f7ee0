"""A trained model ready to predict, rebuilt from nothing but its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medseg.checkpoint_io import load_checkpoint
from medseg.config import Config
from medseg.engine.device import autocast_dtype, pick_device, predict_probabilities
from medseg.errors import DataError
from medseg.legacy import upgrade_checkpoint
from medseg.methods import Method, build_method
from medseg.models import Prunable, inference_modes
from medseg.postprocess import average_over_flips, masks_from_probabilities
from medseg.resolve import resolve_config
from medseg.run_folder import RunFolder
from medseg.windows import window_probabilities, window_size

__all__ = ["Predictor", "resolve_checkpoint"]


def resolve_checkpoint(target: str | Path, which: str | None = None) -> Path:
    """A run folder → its `<which>.pt` (by default the run's `eval.checkpoint`); a `.pt` file → itself.

    Raises:
        FileNotFoundError: neither a checkpoint nor a run folder holding one.
    """
    target = Path(target)
    if target.is_dir():
        return RunFolder(target).chosen_checkpoint(which)
    if not target.is_file():
        raise FileNotFoundError(f"{target}: no such run folder or checkpoint")
    return target


@dataclass
class Predictor:
    cfg: Config
    method: Method
    model: torch.nn.Module
    device: torch.device
    amp: torch.dtype | None
    epoch: int
    checkpoint: Path

    @classmethod
    def load(
        cls, target: str | Path, which: str | None = None, device: str = "auto", mode: str | None = None
    ) -> Predictor:
        """Rebuild the model of a checkpoint.

        Args:
            target: a `.pt` file, or a run folder (its `which`.pt: "best", "last", or None for its `eval.checkpoint`).
            mode: inference mode of a multi-head model: "ensemble", "head=K" or "prune=L" (see `inference_modes`);
                None keeps the configured one.

        Raises:
            ValueError: a mode the checkpoint's model does not support (the message lists those it does).
        """
        path = resolve_checkpoint(target, which)
        state = upgrade_checkpoint(load_checkpoint(path), path)
        # a checkpoint of an earlier version holds its config as written; resolving completes it
        cfg = resolve_config(Config.model_validate(state["config"]), str(path))
        _check_config_fits_weights(cfg, state["model"], path)
        method = build_method(cfg.method, cfg.model)
        method.model.load_state_dict(state["model"])
        if mode is not None:
            _set_mode(method.model, mode, cfg.model["name"])
        torch_device = pick_device(device)
        model = method.model.to(torch_device).eval()
        if cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        method.model = model
        amp = autocast_dtype(torch_device, cfg.train.amp)
        return cls(cfg, method, model, torch_device, amp, state["epoch"], path)

    def probabilities(self, images: torch.Tensor, tta: bool | None = None) -> torch.Tensor:
        """`(B, C, H, W)` preprocessed images → `(B, K, H, W)` float32 probabilities on the CPU (a classifier's:
        `(B, K)`); with flip test-time augmentation (`tta`, by default the run's `eval.tta`), the mean over the image
        and its horizontal and vertical flips."""
        images = images.to(self.device, dtype=torch.float32)

        def predict(batch: torch.Tensor) -> torch.Tensor:
            return predict_probabilities(self.method, self.model, batch, self.amp, self.cfg.train.channels_last)

        window = window_size(self.cfg) if self.method.task == "segmentation" else None
        if window is not None:
            whole = predict
            predict = lambda batch: window_probabilities(whole, batch, window, self.cfg.eval.overlap)  # noqa: E731
        return average_over_flips(predict, images, self.cfg.eval.tta if tta is None else tta).cpu()

    def masks(self, images: torch.Tensor) -> np.ndarray:
        """`(B, C, H, W)` preprocessed images → `(B, H, W)` uint8 class indices, post-processed per `eval`."""
        return self.masks_from(self.probabilities(images))

    def masks_from(self, probs: torch.Tensor) -> np.ndarray:
        """Probabilities `(B, K, H, W)` → `(B, H, W)` uint8 class indices, post-processed per `eval`."""
        return masks_from_probabilities(probs, self.cfg.eval.threshold, self.cfg.eval.largest_component)


def _check_config_fits_weights(cfg: Config, weights: dict[str, torch.Tensor], path: Path) -> None:
    """The model the checkpoint's config describes, built without memory (on the meta device), must have exactly
    the stored weights' names and shapes: a config edited to ask for a far larger network is refused before
    anything is allocated.

    Raises:
        DataError: a weight missing, unexpected or of another shape.
    """
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_method(cfg.method, cfg.model).model.state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != stored:
        differ = sorted(k for k in expected.keys() | stored.keys() if expected.get(k) != stored.get(k))
        key = differ[0]
        raise DataError(
            path,
            f"its config does not describe its weights ({len(differ)} differ, e.g. {key}: the config builds "
            f"{expected.get(key, 'nothing')}, the checkpoint holds {stored.get(key, 'nothing')})",
        )


def _set_mode(model: torch.nn.Module, mode: str, name: str) -> None:
    supported = inference_modes(model)
    if mode not in supported:
        raise ValueError(f"inference mode {mode!r} is not supported by this {name} checkpoint; supported: {supported}")
    if not isinstance(model, Prunable):  # its one mode, "default"
        return
    kind, _, level = mode.partition("=")
    model.set_inference(kind, int(level) if level else None)
