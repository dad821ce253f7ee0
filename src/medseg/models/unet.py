"""U-Net (Ronneberger et al. 2015): encoder, decoder and head as separate modules."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.models.attention import ATTENTION_KINDS, AttentionGate, make_attention
from medseg.models.base import register_model
from medseg.models.blocks import FOREGROUND_PRIOR, DoubleConv, UpConcat, check_features, init_head_bias

__all__ = ["UNet", "UNetEncoder", "UNetDecoder", "attention_layout", "pad_to_multiple"]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad `(B, C, H, W)` at the bottom/right so H and W divide `multiple`; returns the original (H, W)."""
    height, width = x.shape[-2:]
    # padded even by zero: a branch on the size would be frozen into an exported (ONNX) graph
    x = F.pad(x, (0, (-width) % multiple, 0, (-height) % multiple))
    return x, (height, width)


class UNetEncoder(nn.Module):
    """Stages of DoubleConv separated by 2×2 max-pooling, each optionally followed by an attention block.

    `(B, C_in, H, W)` → list of `(B, features[i], H / 2**i, W / 2**i)` for i = 0..depth.

    Args:
        attention: one block kind for every stage but the last (see `make_attention`).
        bottleneck: the block on the deepest stage (where self-attention is affordable).
    """

    def __init__(
        self, in_channels: int, features: Sequence[int], attention: str = "none", bottleneck: str = "none"
    ) -> None:
        super().__init__()
        features = check_features(features)
        channels = [in_channels, *features]
        self.stages = nn.ModuleList(DoubleConv(channels[i], channels[i + 1]) for i in range(len(features)))
        kinds = [attention] * (len(features) - 1) + [bottleneck]
        self.attention = nn.ModuleList(make_attention(kind, c) for kind, c in zip(kinds, features, strict=True))
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for i, (stage, attend) in enumerate(zip(self.stages, self.attention, strict=True)):
            x = attend(stage(x if i == 0 else self.pool(x)))
            skips.append(x)
        return skips


class UNetDecoder(nn.Module):
    """Upsample from the deepest stage, concatenating the encoder's skip at each scale.

    list of encoder features → `(B, features[0], H, W)`.

    Args:
        attention: a block after every decoder stage (`ca`, `sa`, `cbam`), or `gate` for attention gates that
            weigh each skip by the coarser decoder feature before concatenation.
        upsample: transpose | bilinear | nearest (see `UpConcat`).
    """

    def __init__(self, features: Sequence[int], attention: str = "none", upsample: str = "transpose") -> None:
        super().__init__()
        order = list(reversed(range(len(features) - 1)))
        self.ups = nn.ModuleList(UpConcat(features[i + 1], features[i], features[i], upsample) for i in order)
        self.gates = nn.ModuleList(
            AttentionGate(features[i], features[i + 1]) if attention == "gate" else nn.Identity() for i in order
        )
        stage_kind = "none" if attention == "gate" else attention
        self.attention = nn.ModuleList(make_attention(stage_kind, features[i]) for i in order)

    def stages(self, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every decoder stage's output, coarse to fine: `(B, features[i], H / 2**i, W / 2**i)`, i = depth-1..0."""
        x, outputs = skips[-1], []
        for up, gate, attend, skip in zip(self.ups, self.gates, self.attention, reversed(skips[:-1]), strict=True):
            if isinstance(gate, AttentionGate):
                skip = gate(skip, x)
            x = attend(up(x, skip))
            outputs.append(x)
        return outputs

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        return self.stages(skips)[-1]


def attention_layout(attention: str, attention_at: str) -> tuple[str, str, str]:
    """`(encoder stages, bottleneck, decoder stages)` block kinds for `model.attention` / `model.attention_at`.

    `dual` (O((HW)²) self-attention) always sits on the bottleneck only; `gate` always on the decoder's skips.

    Raises:
        ValueError: an unknown kind or place.
    """
    if attention not in ATTENTION_KINDS:
        raise ValueError(f"model.attention must be one of {list(ATTENTION_KINDS)}, got {attention!r}")
    if attention_at not in ("encoder", "decoder", "both"):
        raise ValueError(f"model.attention_at must be encoder, decoder or both, got {attention_at!r}")
    if attention == "dual":
        return "none", "dual", "none"
    if attention == "gate":
        return "none", "none", "gate"
    encoder = attention if attention_at in ("encoder", "both") else "none"
    decoder = attention if attention_at in ("decoder", "both") else "none"
    return encoder, encoder, decoder


@register_model("unet")
class UNet(nn.Module):
    """U-Net with BatchNorm and transposed-conv upsampling.

    Args:
        in_channels: image channels.
        out_channels: logit channels (1 for binary segmentation, K for K classes).
        features: channels per stage; `len(features) - 1` poolings (the depth).
        foreground_prior: initial foreground probability of a binary head (the bias starts at its logit), about
            the foreground's share of the pixels; None leaves the bias at 0 (p = 0.5).
        attention: none, ca, sa, cbam (after stages), dual (DANet PAM + CAM on the bottleneck) or gate
            (attention gates on the skips).
        attention_at: where ca / sa / cbam go: encoder, decoder or both.
        pyramid: extra 1×1 heads on this many coarser decoder stages (1/2, 1/4, ...), for URPC's pyramid
            consistency and deep supervision (`forward_heads`); `forward` always uses the full-resolution head.
        label_classes: if > 0, a linear head on the globally average-pooled bottleneck that predicts an
            image-level class (`forward_heads_and_label`), as an auxiliary task during training.

    Any H, W work: inputs are padded to a multiple of `2**depth` and the logits cropped back.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256, 512),
        foreground_prior: float | None = FOREGROUND_PRIOR,
        attention: str = "none",
        attention_at: str = "decoder",
        pyramid: int = 0,
        label_classes: int = 0,
    ) -> None:
        super().__init__()
        features = check_features(features)
        if not 0 <= pyramid < len(features) - 1:
            raise ValueError(f"model.pyramid must be 0..{len(features) - 2} (coarser decoder stages), got {pyramid}")
        self.depth = len(features) - 1
        encoder, bottleneck, decoder = attention_layout(attention, attention_at)
        self.encoder = UNetEncoder(in_channels, features, encoder, bottleneck)
        self.decoder = UNetDecoder(features, decoder)
        self.head = nn.Conv2d(features[0], out_channels, kernel_size=1)
        self.pyramid_heads = nn.ModuleList(nn.Conv2d(features[i], out_channels, 1) for i in range(1, pyramid + 1))
        for head in [self.head, *self.pyramid_heads]:
            init_head_bias(head, foreground_prior)
        if label_classes < 0:
            raise ValueError(f"model.label_classes must be ≥ 0, got {label_classes}")
        self.label_head = nn.Linear(features[-1], label_classes) if label_classes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C_in, H, W)` → logits `(B, C_out, H, W)`."""
        return self._logits(x)

    def forward_perturbed(self, x: torch.Tensor, perturb: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """`forward` with `perturb` applied to every encoder feature map (each skip and the bottleneck) before the
        decoder: `(B, C_in, H, W)` → logits `(B, C_out, H, W)` (UniMatch's feature-perturbed stream)."""
        return self._logits(x, perturb)

    def _logits(self, x: torch.Tensor, perturb: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        x, (height, width) = pad_to_multiple(x, 2**self.depth)
        skips = self.encoder(x)
        if perturb is not None:
            skips = [perturb(s) for s in skips]
        return self.head(self.decoder(skips))[..., :height, :width]

    @property
    def head_weights(self) -> list[float]:
        """Deep-supervision weights of the full-resolution head and the pyramid heads: 1, 1/2, 1/4, ... (nnU-Net's
        weighting of its scales)."""
        return [0.5**k for k in range(1 + len(self.pyramid_heads))]

    def forward_heads(
        self, x: torch.Tensor, perturb: Sequence[Callable[[torch.Tensor], torch.Tensor]] = ()
    ) -> list[torch.Tensor]:
        """`(B, C_in, H, W)` → logits `(B, C_out, H, W)` from the full-resolution head, then from each pyramid
        head (scale 1/2, 1/4, ...) upsampled bilinearly. `perturb[k]`, if given, perturbs the features of
        pyramid head k first."""
        return self._pyramid(x, perturb)[0]

    def forward_heads_and_label(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """`forward_heads`' logits, and the label head's class logits `(B, label_classes)`.

        Raises:
            ValueError: the model has no label head (`label_classes` 0).
        """
        if self.label_head is None:
            raise ValueError("this U-Net has no label head: build it with model.label_classes > 0")
        return self._pyramid(x, ())

    def _pyramid(
        self, x: torch.Tensor, perturb: Sequence[Callable[[torch.Tensor], torch.Tensor]]
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """The pyramid's logits and, if the model has a label head, its class logits (else None)."""
        padded, (height, width) = pad_to_multiple(x, 2**self.depth)
        skips = self.encoder(padded)
        stages = self.decoder.stages(skips)
        outputs = [self.head(stages[-1])]
        for k, head in enumerate(self.pyramid_heads):
            features = stages[-2 - k]
            if k < len(perturb):
                features = perturb[k](features)
            outputs.append(F.interpolate(head(features), size=padded.shape[-2:], mode="bilinear", align_corners=False))
        label = None if self.label_head is None else self.label_head(skips[-1].mean((-2, -1)))
        return [z[..., :height, :width] for z in outputs], label
