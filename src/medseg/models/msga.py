"""Multi-scale self-guided attention network (Sinha & Dolz, arXiv 1906.02849, IEEE JBHI 2020).

A residual encoder gives four stages F0..F3. Each is projected to `width` channels and resized to F0's
resolution (F'_s); their concatenation is fused into the multi-scale map F_MS. For every scale s, a guided
attention module, applied twice (steps 1 and 2), refines [F'_s, F_MS]:

    step 1: A1_s = GAM_1([F'_s, F_MS])
    step 2: A2_s = GAM_2([F'_s, A1_s ⊙ F_MS])

A GAM sums a position-attention (PAM) and a channel-self-attention branch, and multiplies the sum with a
map decoded by a small encoder–decoder ("semantic module", one shared per step) from the module's input.
The encoder–decoders are what guide the attention: the reconstruction loss asks each decoder to give back
its input, and the guided loss asks the step-1 and step-2 encodings of a scale to agree.

Segmentation logits come from every F'_s and every A2_s (8 maps, all trained); inference averages the four
step-2 maps. The encoder is trained from scratch (no pretrained weights are used or downloaded). The losses
(segmentation on every map, guided, reconstruction) belong to `method: msga`; `forward_maps` gives what they need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medseg.models.attention import ChannelSelfAttention, PositionAttention
from medseg.models.base import register_model
from medseg.models.blocks import FOREGROUND_PRIOR, ConvBnReLU, DoubleConv, check_features, init_head_bias
from medseg.models.unet import pad_to_multiple

__all__ = ["MSGA", "MSGAMaps", "ResidualEncoder"]


class ResidualBlock(nn.Module):
    """ResNet basic block: two 3×3 conv + BN, identity (or 1×1 projection) shortcut.

    `(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)`.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and in_channels == out_channels
            else nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResidualEncoder(nn.Module):
    """A stem conv and four residual stages, each halving the resolution.

    `(B, C_in, H, W)` → `[F0, F1, F2, F3]`, `F_s`: `(B, features[s], H / (output_stride · 2**s), ...)`.

    Args:
        features: channels of the four stages.
        blocks: residual blocks per stage (an int for all): the encoder's depth.
        output_stride: F0's stride, 2 or 4 (the stem strides by output_stride / 2).
    """

    def __init__(self, in_channels: int, features: Sequence[int], blocks: int | Sequence[int], output_stride: int):
        super().__init__()
        features = check_features(features, stages=4)
        if output_stride not in (2, 4):
            raise ValueError(f"model.output_stride must be 2 or 4, got {output_stride}")
        blocks = [blocks] * 4 if isinstance(blocks, int) else list(blocks)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"model.blocks needs 4 counts ≥ 1 (or one int), got {blocks}")
        stem_stride = output_stride // 2
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, features[0], 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(features[0]),
            nn.ReLU(inplace=True),
        )
        channels = [features[0], *features]
        self.stages = nn.ModuleList(
            nn.Sequential(
                ResidualBlock(channels[s], channels[s + 1], stride=2),
                *(ResidualBlock(channels[s + 1], channels[s + 1]) for _ in range(blocks[s] - 1)),
            )
            for s in range(4)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        stages = []
        for stage in self.stages:
            x = stage(x)
            stages.append(x)
        return stages


class SemanticModule(nn.Module):
    """The guiding encoder–decoder: two conv+pool steps down, two conv+transposed-conv steps up.

    `(B, C, H, W)` → code `(B, 2C, H/4, W/4)` and reconstruction `(B, C, H, W)` (H, W divisible by 4).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.encode = nn.Sequential(
            DoubleConv(channels, channels), nn.MaxPool2d(2), DoubleConv(channels, 2 * channels), nn.MaxPool2d(2)
        )
        self.decode = nn.Sequential(
            DoubleConv(2 * channels, channels),
            nn.ConvTranspose2d(channels, channels, 2, stride=2),
            DoubleConv(channels, channels),
            nn.ConvTranspose2d(channels, channels, 2, stride=2),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encode(x)
        return code, self.decode(code)


class GuidedAttention(nn.Module):
    """One scale's attention at one step: `(B, 2w, h, w')` → attended features `(B, w, h, w')`.

    `A = conv1×1((PAM branch + CAM branch) ⊙ conv3×3(decoded))`, `decoded` from the step's shared
    semantic module (passed in, so that the four scales share it).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.position = nn.Sequential(ConvBnReLU(2 * width, width), PositionAttention(width), ConvBnReLU(width, width))
        self.channel = nn.Sequential(ConvBnReLU(2 * width, width), ChannelSelfAttention(), ConvBnReLU(width, width))
        self.guide = nn.Conv2d(2 * width, width, 3, padding=1)
        self.out = nn.Conv2d(width, width, 1)

    def forward(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        return self.out((self.position(x) + self.channel(x)) * self.guide(decoded))


@dataclass
class MSGAMaps:
    """What the method's losses need of one forward pass.

    Attributes:
        logits: 8 maps `(B, C_out, H, W)`: from F'_0..3, then from A2_0..3.
        codes: per scale, the step-1 and step-2 encodings of the semantic modules (the guided loss's pair).
        reconstructions: per scale and step, (decoded, the module's input) (the reconstruction loss's pairs).
    """

    logits: list[torch.Tensor]
    codes: list[tuple[torch.Tensor, torch.Tensor]]
    reconstructions: list[tuple[torch.Tensor, torch.Tensor]]


# contiguous by default: with oneDNN's AVX2 kernels (CPUs without AVX-512), the backward pass of the residual
# shortcut's 1×1 stride-2 convolution hangs or corrupts memory in channels_last (torch 2.13, e.g. 4 → 8 channels)
@register_model("msga", channels_last=False)
class MSGA(nn.Module):
    """Multi-scale self-guided attention network (see the module docstring).

    Args:
        in_channels, out_channels: image channels; logit channels.
        features: channels of the encoder's four stages.
        blocks: residual blocks per encoder stage (int or 4 ints).
        width: channels of the projected scales F'_s, the fused map and the attention features (the paper: 64).
        output_stride: resolution of the fused map and of the attention, H/2 or H/4 (the paper: 4). Position
            attention costs (HW / stride²)² memory: at 256×256 keep 4.
        foreground_prior: initial foreground probability of binary heads.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256),
        blocks: int | Sequence[int] = 2,
        width: int = 32,
        output_stride: int = 4,
        foreground_prior: float | None = FOREGROUND_PRIOR,
    ) -> None:
        super().__init__()
        self.output_stride = output_stride
        self.encoder = ResidualEncoder(in_channels, features, blocks, output_stride)
        self.project = nn.ModuleList(ConvBnReLU(c, width, kernel_size=1) for c in features)
        self.fuse = nn.Sequential(
            ConvBnReLU(4 * width, width), ConvBnReLU(width, width), ConvBnReLU(width, width, kernel_size=1)
        )
        self.semantic = nn.ModuleList(SemanticModule(2 * width) for _ in range(2))
        self.attention = nn.ModuleList(nn.ModuleList(GuidedAttention(width) for _ in range(4)) for _ in range(2))
        self.scale_heads = nn.ModuleList(nn.Conv2d(width, out_channels, 1) for _ in range(4))
        self.attention_heads = nn.ModuleList(nn.Conv2d(width, out_channels, 1) for _ in range(4))
        for head in [*self.scale_heads, *self.attention_heads]:
            init_head_bias(head, foreground_prior)

    def _scales(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Projected scales F'_s `(B, width, h, w)` at F0's resolution, and the fused map F_MS."""
        stages = self.encoder(x)
        size = stages[0].shape[-2:]
        scales = [
            F.interpolate(p(s), size=size, mode="bilinear", align_corners=False) if i else p(s)
            for i, (p, s) in enumerate(zip(self.project, stages, strict=True))
        ]
        return scales, self.fuse(torch.cat(scales, dim=1))

    def _attend(
        self, scales: list[torch.Tensor], fused: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]], list[tuple[torch.Tensor, torch.Tensor]]]:
        """Both steps for every scale → (A2 per scale, code pairs per scale, (decoded, input) pairs)."""
        refined, codes, reconstructions = [], [], []
        for s, scale in enumerate(scales):
            inputs = torch.cat([scale, fused], dim=1)
            code_1, decoded_1 = self.semantic[0](inputs)
            attended_1 = self.attention[0][s](inputs, decoded_1)
            inputs_2 = torch.cat([scale, attended_1 * fused], dim=1)
            code_2, decoded_2 = self.semantic[1](inputs_2)
            refined.append(self.attention[1][s](inputs_2, decoded_2))
            codes.append((code_1, code_2))
            reconstructions += [(decoded_1, inputs), (decoded_2, inputs_2)]
        return refined, codes, reconstructions

    def forward_maps(self, x: torch.Tensor) -> MSGAMaps:
        """Every segmentation map, and the semantic modules' codes and reconstructions, for `(B, C_in, H, W)`."""
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x, self.output_stride * 8)[0]
        scales, fused = self._scales(padded)
        refined, codes, reconstructions = self._attend(scales, fused)
        heads = [*zip(self.scale_heads, scales, strict=True), *zip(self.attention_heads, refined, strict=True)]
        logits = [self._upsample(head(features), padded)[..., :height, :width] for head, features in heads]
        return MSGAMaps(logits, codes, reconstructions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C_in, H, W)` → logits `(B, C_out, H, W)`: the mean of the four step-2 maps."""
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x, self.output_stride * 8)[0]
        scales, fused = self._scales(padded)
        refined, _, _ = self._attend(scales, fused)
        logits = torch.stack([head(a) for head, a in zip(self.attention_heads, refined, strict=True)]).mean(0)
        return self._upsample(logits, padded)[..., :height, :width]

    @staticmethod
    def _upsample(logits: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(logits, size=like.shape[-2:], mode="bilinear", align_corners=False)
