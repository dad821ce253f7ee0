"""Sliding-window inference for slices at their own sizes (data.resolution: native): overlapping windows of the
training patch size, blended with Gaussian weights (MONAI's `sliding_window_inference`). Shared by validation,
evaluation, prediction and the ONNX predictor; it imports no model code."""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.inferers import sliding_window_inference

from medseg.config import Config

__all__ = ["window_size", "window_probabilities"]


def window_size(cfg: Config) -> int | None:
    """The window side a run predicts with (its training patch), or None where it predicts whole slices."""
    return cfg.augment.patch if cfg.data.resolution == "native" else None


def window_probabilities(
    predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, window: int, overlap: float, batch: int = 4
) -> torch.Tensor:
    """Probabilities `(B, K, H, W)` of images `(B, C, H, W)` of any size from `predict` run on `window × window`
    windows that overlap by `overlap` (images smaller than a window are padded, and cropped back), each window's
    probabilities weighted by a Gaussian centred on it; `batch` windows per call of `predict`."""
    with torch.no_grad():
        return sliding_window_inference(
            images,
            roi_size=(window, window),
            sw_batch_size=batch,
            predictor=lambda x: predict(x).float(),
            overlap=overlap,
            mode="gaussian",
            padding_mode="constant",
            cval=0.0,
        )
