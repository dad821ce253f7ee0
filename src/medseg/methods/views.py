"""Views and mixing that several methods share: the strong photometric view (FixMatch, UniMatch), boxes and
masks that paste one image into another (CutMix, BCP's copy-paste). Tensors are `(B, C, H, W)` images or
`(B, H, W)` masks, labels and confidences; nothing here moves a pixel of the image it keeps."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["copy_paste", "cutmix_boxes", "gaussian_blur", "paste_from_next", "paste_mask", "strong_view"]


def paste_mask(height: int, width: int, patch: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """A `(H, W)` bool mask, True inside one random rectangle of `patch` × the height and width (BCP's R)."""
    ph, pw = max(1, int(height * patch)), max(1, int(width * patch))
    top = int(torch.randint(0, height - ph + 1, ()))
    left = int(torch.randint(0, width - pw + 1, ()))
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    mask[top : top + ph, left : left + pw] = True
    return mask


def copy_paste(outside: torch.Tensor, inside: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """`inside` within `region`, `outside` elsewhere: images `(B, C, H, W)` or masks `(B, H, W)`; region `(H, W)`
    (one for the batch) or `(B, H, W)` (one per image)."""
    return torch.where(region.unsqueeze(-3) if outside.dim() == 4 else region, inside, outside)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, radius: int = 4) -> torch.Tensor:
    """Images `(B, C, H, W)` blurred with a separable Gaussian of standard deviation `sigma` `(B,)` (pixels) per
    image, over a `2 · radius + 1` window with reflected borders."""
    b, c, h, w = images.shape
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernels = torch.exp(-0.5 * (offsets[None] / sigma[:, None].clamp_min(1e-3)) ** 2)
    kernels = (kernels / kernels.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B·C, 2r + 1)
    x = F.pad(images.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernels[:, None, None, :], groups=b * c)
    x = F.conv2d(x, kernels[:, None, :, None], groups=b * c)
    return x.reshape(b, c, h, w)


def strong_view(images: torch.Tensor, jitter: float = 0.5, blur: float = 2.0) -> torch.Tensor:
    """A strong photometric view of `(B, C, H, W)` images that moves no pixel. Per image, on its intensities scaled
    to [0, 1]: with probability 0.8, brightness × [1 - jitter, 1 + jitter] then contrast about the mean ×
    [1 - jitter, 1 + jitter], clipped to [0, 1]; with probability 0.5, a Gaussian blur of σ in [0.1, blur]
    pixels; then back to the image's own range. Draws from torch's global generator."""
    shape = (images.shape[0], 1, 1, 1)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, device=images.device)

    def chance(p: float) -> torch.Tensor:
        return torch.rand(shape, device=images.device) < p

    low = images.amin(dim=(1, 2, 3), keepdim=True)
    span = (images.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-6)
    unit = (images - low) / span
    jittered = (unit * uniform(1 - jitter, 1 + jitter)).clamp(0, 1)
    mean = jittered.mean(dim=(1, 2, 3), keepdim=True)
    jittered = ((jittered - mean) * uniform(1 - jitter, 1 + jitter) + mean).clamp(0, 1)
    unit = torch.where(chance(0.8), jittered, unit)
    unit = torch.where(chance(0.5), gaussian_blur(unit, uniform(0.1, blur).flatten()), unit)
    return unit * span + low


def cutmix_boxes(
    batch: int, height: int, width: int, p: float, area: tuple[float, float] = (0.02, 0.4), device="cpu"
) -> torch.Tensor:
    """`(B, H, W)` bool: per image, with probability `p`, one box of a random share `area` of the image and aspect
    ratio in [0.3, 1 / 0.3] (log-uniform) anywhere inside it; all False otherwise (UniMatch's CutMix boxes)."""
    boxes = torch.zeros(batch, height, width, dtype=torch.bool, device=device)
    for k in range(batch):
        if float(torch.rand(())) >= p:
            continue
        share = area[0] + (area[1] - area[0]) * float(torch.rand(()))
        aspect = math.exp(math.log(0.3) + 2 * math.log(1 / 0.3) * float(torch.rand(())))
        h = min(height, max(1, round(math.sqrt(share * height * width * aspect))))
        w = min(width, max(1, round(math.sqrt(share * height * width / aspect))))
        top, left = int(torch.randint(0, height - h + 1, ())), int(torch.randint(0, width - w + 1, ()))
        boxes[k, top : top + h, left : left + w] = True
    return boxes


def paste_from_next(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """`x` `(B, C, H, W)` or `(B, H, W)` with each image's `boxes` `(B, H, W)` taken from the next image (the last
    from the first)."""
    return copy_paste(x, x.roll(-1, 0), boxes)
