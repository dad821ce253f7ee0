"""MTNet, the multi-attention tri-branch network of CDMA (Zhong et al., MICCAI 2023): one shared U-Net
encoder and three decoders that differ only in their attention (channel, spatial, CBAM after every decoder
stage), so that their mistakes differ. With `attentions: [none, none, none]` and `upsampling:
[transpose, bilinear, nearest]` it is MC-Net+'s network (Wu et al., MedIA 2022)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medseg.models.base import register_model
from medseg.models.blocks import FOREGROUND_PRIOR, init_head_bias
from medseg.models.unet import UNetDecoder, UNetEncoder, pad_to_multiple

__all__ = ["MTNet"]


@register_model("mtnet")
class MTNet(nn.Module):
    """Shared encoder, one decoder per entry of `attentions` (default ca, sa, cbam) with the matching
    `upsampling` (default transposed convs), one 1×1 head each.

    `forward(x)` returns the mean of the branches' logits (CDMA and MC-Net+ predict with the mean of their
    probabilities), or branch `main_branch`'s when that is set (CCT's auxiliary decoders only train);
    `forward_branches(x)` each branch's
    `(B, C_out, H, W)` logits. Any H, W work (padded to a multiple of 2**depth, cropped back).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256, 512),
        attentions: Sequence[str] = ("ca", "sa", "cbam"),
        upsampling: Sequence[str] | None = None,
        foreground_prior: float | None = FOREGROUND_PRIOR,
        main_branch: int | None = None,
    ) -> None:
        super().__init__()
        features = tuple(features)
        upsampling = list(upsampling) if upsampling is not None else ["transpose"] * len(attentions)
        if len(upsampling) != len(attentions) or len(attentions) < 2:
            raise ValueError(
                f"model.attentions and model.upsampling need one entry per decoder (≥ 2), got {list(attentions)} "
                f"and {upsampling}"
            )
        allowed = ("none", "ca", "sa", "cbam", "gate")  # dual's PAM would run on full-resolution decoder stages
        if any(kind not in allowed for kind in attentions):
            raise ValueError(f"model.attentions entries must be in {list(allowed)}, got {list(attentions)}")
        if main_branch is not None and not 0 <= main_branch < len(attentions):
            raise ValueError(f"model.main_branch must index one of the {len(attentions)} decoders, got {main_branch}")
        self.main_branch = main_branch
        self.depth = len(features) - 1
        self.encoder = UNetEncoder(in_channels, features)
        self.decoders = nn.ModuleList(
            UNetDecoder(features, kind, up) for kind, up in zip(attentions, upsampling, strict=True)
        )
        self.heads = nn.ModuleList(nn.Conv2d(features[0], out_channels, 1) for _ in attentions)
        for head in self.heads:
            init_head_bias(head, foreground_prior)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The shared encoder's features, shallow to deep (H, W padded to a multiple of 2**depth)."""
        return self.encoder(pad_to_multiple(x, 2**self.depth)[0])

    def decode(self, skips: list[torch.Tensor], branch: int, size: tuple[int, int]) -> torch.Tensor:
        """Branch `branch`'s logits `(B, C_out, *size)` from encoder features (CCT perturbs those first)."""
        return self.heads[branch](self.decoders[branch](skips))[..., : size[0], : size[1]]

    def forward_branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = self.encode(x)
        return [self.decode(skips, i, x.shape[-2:]) for i in range(len(self.decoders))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.main_branch is not None:
            return self.decode(self.encode(x), self.main_branch, x.shape[-2:])
        return torch.stack(self.forward_branches(x)).mean(0)
