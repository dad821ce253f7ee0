"""Augmentation of whole batches on tensors.

Every geometric change (flip, 90° rotation, small rotation/scale/translation) is folded into one affine
matrix per sample and applied with a single `grid_sample`: bilinear for the images, nearest for the masks and
any auxiliary target, so that all of them move together. Intensity changes touch the images only. An optional
random crop (the same window for a sample's image, mask and targets) comes last.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medseg.config import AugmentConfig

__all__ = ["augment_batch", "random_affine", "random_crop"]


def random_affine(batch: int, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """`(B, 2, 3)` matrices mapping output to input coordinates (in `affine_grid`'s normalised space)."""

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(batch, generator=generator)

    angle = torch.deg2rad(uniform(-cfg.rotate_deg, cfg.rotate_deg))
    if cfg.rot90:
        angle = angle + (math.pi / 2) * torch.randint(0, 4, (batch,), generator=generator)
    scale = uniform(1 - cfg.scale, 1 + cfg.scale)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    flip_x = torch.ones(batch)
    flip_y = torch.ones(batch)
    if cfg.flip:
        flip_x = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0)
        flip_y = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip_x, -sin * flip_y
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip_x, cos * flip_y
    theta[:, 0, 2] = uniform(-cfg.translate, cfg.translate) * 2
    theta[:, 1, 2] = uniform(-cfg.translate, cfg.translate) * 2
    # Snap near-integer entries (pure flips / 90° turns) so those stay exact pixel permutations.
    snapped = torch.round(theta)
    return torch.where((theta - snapped).abs() < 1e-6, snapped, theta)


def random_crop(tensors: list[torch.Tensor], size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One random `size × size` window per sample, the same for every tensor of the list.

    Args:
        tensors: `(B, ..., H, W)` tensors with the same B, H and W.

    Returns:
        the crops, `(B, ..., size, size)`.
    """
    batch, height, width = tensors[0].shape[0], *tensors[0].shape[-2:]
    tops = torch.randint(0, height - size + 1, (batch,), generator=generator).tolist()
    lefts = torch.randint(0, width - size + 1, (batch,), generator=generator).tolist()
    return [
        torch.stack([t[i, ..., y : y + size, x : x + size] for i, (y, x) in enumerate(zip(tops, lefts, strict=True))])
        for t in tensors
    ]


def _intensity(images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    batch = images.shape[0]
    shape = (batch,) + (1,) * (images.dim() - 1)

    def uniform(low: float, high: float) -> torch.Tensor:
        return (low + (high - low) * torch.rand(batch, generator=generator)).view(shape)

    if cfg.gamma > 0:
        low = images.amin(dim=(1, 2, 3), keepdim=True)
        span = (images.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-6)
        gamma = torch.exp(uniform(math.log(1 - cfg.gamma), -math.log(1 - cfg.gamma)))
        images = ((images - low) / span).pow(gamma) * span + low
    return images * uniform(1 - cfg.intensity_scale, 1 + cfg.intensity_scale) + uniform(
        -cfg.intensity_shift, cfg.intensity_shift
    )


def augment_batch(
    images: torch.Tensor,
    masks: torch.Tensor | None,
    cfg: AugmentConfig,
    generator: torch.Generator,
    extra: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
    """Augment a batch.

    Args:
        images: `(B, C, H, W)` float.
        masks: `(B, H, W)` integer class indices, or None.
        cfg: which augmentations and how strong.
        generator: CPU random generator (seeded by the engine for reproducibility).
        extra: other per-pixel targets `(B, H, W)` or `(B, K, H, W)` to move with the masks (nearest).

    Returns:
        the augmented images, masks and extra targets (same dtypes; H and W become `cfg.crop` if it is set).
    """
    extra = dict(extra or {})
    if not cfg.enabled:
        return images, masks, extra
    batch = images.shape[0]
    theta = random_affine(batch, cfg, generator).to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def warp_nearest(target: torch.Tensor) -> torch.Tensor:
        planes = target.unsqueeze(1) if target.dim() == 3 else target
        warped = F.grid_sample(planes.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        warped = warped.squeeze(1) if target.dim() == 3 else warped
        return warped.to(target.dtype)

    if masks is not None:
        masks = warp_nearest(masks)
    extra = {name: warp_nearest(value) for name, value in extra.items()}
    images = _intensity(images, cfg, generator)
    if cfg.crop is not None and tuple(images.shape[-2:]) != (cfg.crop, cfg.crop):
        names = list(extra)
        targets = [masks] if masks is not None else []
        images, *rest = random_crop([images, *targets, *extra.values()], cfg.crop, generator)
        masks = rest.pop(0) if masks is not None else None
        extra = dict(zip(names, rest, strict=True))
    return images, masks, extra
