"""Small convolutional blocks shared by the model families."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["FOREGROUND_PRIOR", "UPSAMPLING", "ConvBnReLU", "DoubleConv", "UpConcat", "init_head_bias", "check_features"]

FOREGROUND_PRIOR = 0.01


def check_features(features: Sequence[int], stages: int | None = None, minimum: int = 2) -> tuple[int, ...]:
    """`model.features` checked: positive channel counts, `stages` of them (or at least `minimum`).

    Raises:
        ValueError: the offending list, and what was expected.
    """
    features = tuple(features)
    wrong_count = len(features) != stages if stages is not None else len(features) < minimum
    if wrong_count or any(not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in features):
        count = f"{stages}" if stages is not None else f"at least {minimum}"
        raise ValueError(f"model.features needs {count} positive channel counts (one per stage), got {list(features)}")
    return features


def init_head_bias(head: nn.Conv2d, prior: float | None = FOREGROUND_PRIOR) -> None:
    """Start a binary head at foreground probability `prior` instead of 0.5.

    Lesions cover a few percent of a slice; starting every pixel at p = 0.5 makes the soft Dice term see a
    huge false-positive mass and slows early training markedly. Where the foreground is most of the image
    (cell interiors in EM), set the prior accordingly. Multi-class heads and `prior=None` keep zero bias.

    Raises:
        ValueError: prior outside (0, 1).
    """
    if prior is not None and not 0 < prior < 1:
        raise ValueError(f"model.foreground_prior must be in (0, 1) or null, got {prior}")
    if prior is not None and head.out_channels == 1 and head.bias is not None:
        nn.init.constant_(head.bias, -math.log((1 - prior) / prior))


class ConvBnReLU(nn.Sequential):
    """3×3 conv (no bias: BatchNorm follows) → BatchNorm → ReLU. `(B, C_in, H, W) -> (B, C_out, H, W)`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two ConvBnReLU, the U-Net stage. `(B, C_in, H, W) -> (B, C_out, H, W)`."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(ConvBnReLU(in_channels, out_channels), ConvBnReLU(out_channels, out_channels))


UPSAMPLING = ("transpose", "bilinear", "nearest")


class UpConcat(nn.Module):
    """Upsample the coarse map ×2, concatenate the skip(s), fuse with DoubleConv.

    `(B, C_coarse, H/2, W/2)` and skips `(B, C_skip_i, H, W)` → `(B, C_out, H, W)`.

    Args:
        upsample: "transpose" (a learnt 2×2 transposed conv), or "bilinear" / "nearest" interpolation followed
            by a 1×1 conv that halves the channels (MC-Net+ decoders differ only in this).
    """

    def __init__(self, coarse_channels: int, skip_channels: int, out_channels: int, upsample: str = "transpose"):
        super().__init__()
        if upsample not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {list(UPSAMPLING)}, got {upsample!r}")
        up_channels = max(coarse_channels // 2, 1)
        if upsample == "transpose":
            self.up = nn.ConvTranspose2d(coarse_channels, up_channels, kernel_size=2, stride=2)
        else:
            align = {"align_corners": False} if upsample == "bilinear" else {}
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode=upsample, **align), nn.Conv2d(coarse_channels, up_channels, 1)
            )
        self.fuse = DoubleConv(up_channels + skip_channels, out_channels)

    def forward(self, coarse: torch.Tensor, *skips: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([*skips, self.up(coarse)], dim=1))
