"""Device and mixed-precision choices, and running a method's prediction under them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from medseg.methods.base import Method

__all__ = ["pick_device", "autocast_dtype", "predict_probabilities"]


def pick_device(name: str = "auto") -> torch.device:
    """`auto` → CUDA when present, else CPU; otherwise the named device.

    Raises:
        ValueError: CUDA requested but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but CUDA is not available here; use 'auto' or 'cpu'")
    return device


def _cpu_has_fast_bf16() -> bool:
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype, or None for full precision.

    CUDA: bfloat16 where supported, else float16. CPU: bfloat16 only where the CPU computes it natively
    (AVX512-BF16 or AMX); elsewhere bf16 on CPU is slower than float32, so it stays off.
    """
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_has_fast_bf16():
        return torch.bfloat16
    return None


@torch.no_grad()
def predict_probabilities(
    method: Method, model: nn.Module, images: torch.Tensor, amp: torch.dtype | None, channels_last: bool
) -> torch.Tensor:
    """`method.predict` of `model` on images `(B, C, H, W)` already on its device, under `amp` autocast and in
    the model's memory layout: float32 probabilities `(B, K, H, W)` (a classifier's `(B, K)`)."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(images.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        return method.predict(model, images).float()
