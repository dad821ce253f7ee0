"""Image-level classifiers for class activation maps: a U-Net encoder, a global pooling, a linear head.

The encoder is the U-Net's (`UNetEncoder`, same parameter names), so a classifier trained on image labels
can initialise a segmentation network and vice versa. The pooling is global average (CAM, Zhou et al.
2016), global max, or the axis attention of ACAM (Wu et al., MICCAI 2019): per spatial axis d,
`s_d = softmax(w_attᵀ F(d))` over the positions along d, where F(d) averages the last features over the
other axes; the pooled vector is `Σ_{h,w} s_H(h) s_W(w) F(h, w)`. Because the weights sum to 1 and the head
is linear, the logit of class k is exactly the sum of the attention-weighted map `C'_k = s_H s_W C_k`,
where `C_k = w_kᵀ F` is the class activation map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medseg.models.base import register_model
from medseg.models.unet import UNetEncoder

__all__ = ["Classifier", "AxisAttention"]


class AxisAttention(nn.Module):
    """ACAM's learned attention over each spatial axis of `(B, C, H, W)` features.

    Returns `(s_H, s_W)`: `(B, H)` and `(B, W)`, each a softmax over its axis.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Linear(channels, 1, bias=False)  # w_att, shared by the axes

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        along_h = features.mean(3).transpose(1, 2)  # (B, H, C): F(d = H), averaged over W
        along_w = features.mean(2).transpose(1, 2)  # (B, W, C)
        return (
            torch.softmax(self.score(along_h).squeeze(-1).float(), dim=1),
            torch.softmax(self.score(along_w).squeeze(-1).float(), dim=1),
        )

    def weights(self, features: torch.Tensor) -> torch.Tensor:
        """The 2-D pooling weights `s_H ⊗ s_W`: `(B, 1, H, W)`, summing to 1 per image."""
        s_h, s_w = self(features)
        return (s_h[:, :, None] * s_w[:, None, :])[:, None]


@register_model("classifier")
class Classifier(nn.Module):
    """U-Net encoder → global pooling → linear head: image logits `(B, out_channels)`.

    Args:
        in_channels: image channels.
        out_channels: 1 for "lesion present" (sigmoid), K for K classes (softmax).
        features: encoder channels per stage (as U-Net's `features`).
        pool: "avg" (CAM), "max", or "attention" (ACAM).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256, 512),
        pool: str = "avg",
    ) -> None:
        super().__init__()
        if pool not in ("avg", "max", "attention"):
            raise ValueError(f"model.pool must be avg, max or attention, got {pool!r}")
        self.pool = pool
        self.encoder = UNetEncoder(in_channels, features)
        self.axis_attention = AxisAttention(features[-1]) if pool == "attention" else None
        self.head = nn.Linear(features[-1], out_channels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature maps `(B, C, H / 2**depth, W / 2**depth)` that the head pools."""
        return self.encoder(x)[-1]

    def pooling_weights(self, features: torch.Tensor) -> torch.Tensor | None:
        """ACAM's `(B, 1, h, w)` weights, or None for avg/max pooling."""
        return self.axis_attention.weights(features) if self.axis_attention is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C_in, H, W)` → logits `(B, out_channels)` (any H, W ≥ 2**depth: the pooling is global)."""
        features = self.features(x)
        if self.pool == "avg":
            pooled = features.mean((2, 3))
        elif self.pool == "max":
            pooled = features.amax((2, 3))
        else:
            pooled = (features * self.pooling_weights(features).to(features.dtype)).sum((2, 3))
        return self.head(pooled)

    def class_activation_map(
        self, x: torch.Tensor, class_index: int | torch.Tensor = 0, weighted: bool | None = None
    ) -> torch.Tensor:
        """`C_k = w_kᵀ F` at the feature resolution, `(B, 1, h, w)`, before any ReLU.

        Args:
            class_index: the class k, one for the batch or one per image `(B,)`.
            weighted: ACAM's map `s_H s_W C_k` (times h·w, so that its mean, like a CAM's, is the logit minus
                the bias) instead of the plain CAM; default: weighted where the pooling is attention.

        Raises:
            ValueError: `weighted` for a classifier without attention pooling.
        """
        if weighted and self.axis_attention is None:
            raise ValueError("ACAM needs a classifier trained with model.pool: attention")
        features = self.features(x)
        weight = self.head.weight[torch.as_tensor(class_index).expand(x.shape[0])]  # (B, C)
        cam = torch.einsum("bc,bchw->bhw", weight.to(features.dtype), features)[:, None]
        if weighted is None:
            weighted = self.axis_attention is not None
        if weighted:
            cam = cam * self.pooling_weights(features) * cam.shape[-1] * cam.shape[-2]
        return cam
