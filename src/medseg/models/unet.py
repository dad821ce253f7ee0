"""U-Net (Ronneberger et al. 2015): encoder, decoder and head as separate modules."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.models.blocks import FOREGROUND_PRIOR, DoubleConv, UpConcat, init_head_bias
from medseg.models.registry import register_model

__all__ = ["UNet", "UNetEncoder", "UNetDecoder", "pad_to_multiple"]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad `(B, C, H, W)` at the bottom/right so H and W divide `multiple`; returns the original (H, W)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x, (height, width)


class UNetEncoder(nn.Module):
    """Stages of DoubleConv separated by 2×2 max-pooling.

    `(B, C_in, H, W)` → list of `(B, features[i], H / 2**i, W / 2**i)` for i = 0..depth.
    """

    def __init__(self, in_channels: int, features: Sequence[int]) -> None:
        super().__init__()
        channels = [in_channels, *features]
        self.stages = nn.ModuleList(DoubleConv(channels[i], channels[i + 1]) for i in range(len(features)))
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else self.pool(x))
            skips.append(x)
        return skips


class UNetDecoder(nn.Module):
    """Upsample from the deepest stage, concatenating the encoder's skip at each scale.

    list of encoder features → `(B, features[0], H, W)`.
    """

    def __init__(self, features: Sequence[int]) -> None:
        super().__init__()
        self.ups = nn.ModuleList(
            UpConcat(features[i + 1], features[i], features[i]) for i in reversed(range(len(features) - 1))
        )

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        x = skips[-1]
        for up, skip in zip(self.ups, reversed(skips[:-1]), strict=True):
            x = up(x, skip)
        return x


class UNet(nn.Module):
    """U-Net with BatchNorm and transposed-conv upsampling.

    Args:
        in_channels: image channels.
        out_channels: logit channels (1 for binary segmentation, K for K classes).
        features: channels per stage; `len(features) - 1` poolings (the depth).
        foreground_prior: initial foreground probability of a binary head (the bias starts at its logit), about
            the foreground's share of the pixels; None leaves the bias at 0 (p = 0.5).

    Any H, W work: inputs are padded to a multiple of `2**depth` and the logits cropped back.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256, 512),
        foreground_prior: float | None = FOREGROUND_PRIOR,
    ) -> None:
        super().__init__()
        if len(features) < 2:
            raise ValueError(f"model.features needs at least 2 stages, got {list(features)}")
        self.depth = len(features) - 1
        self.encoder = UNetEncoder(in_channels, features)
        self.decoder = UNetDecoder(features)
        self.head = nn.Conv2d(features[0], out_channels, kernel_size=1)
        init_head_bias(self.head, foreground_prior)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features, shallow to deep: `(B, features[i], H / 2**i, W / 2**i)` (H, W padded)."""
        return self.encoder(pad_to_multiple(x, 2**self.depth)[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C_in, H, W)` → logits `(B, C_out, H, W)`."""
        x, (height, width) = pad_to_multiple(x, 2**self.depth)
        logits = self.head(self.decoder(self.encoder(x)))
        return logits[..., :height, :width]


@register_model("unet")
def unet(
    in_channels: int = 1,
    out_channels: int = 1,
    features: Sequence[int] = (32, 64, 128, 256, 512),
    foreground_prior: float | None = FOREGROUND_PRIOR,
) -> UNet:
    return UNet(in_channels, out_channels, tuple(features), foreground_prior)
