"""Refining class activation maps into lesion probabilities that follow the image: a fully connected CRF
(Krähenbühl & Koltun 2011, the `pydensecrf2` package) whose unary term is the map and whose pairwise terms are a
smoothness kernel and an appearance (bilateral) kernel on the image's intensities."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["crf_refine"]


def _densecrf():
    try:
        import pydensecrf.densecrf as densecrf
    except ImportError:
        raise ImportError(
            "weak.refine: crf needs the pydensecrf2 package: pip install 'medseg[weak]' (it builds with a C++ compiler)"
        ) from None
    return densecrf


def crf_refine(
    images: torch.Tensor,
    maps: torch.Tensor,
    positive: torch.Tensor,
    iterations: int = 5,
    background_power: float = 2.0,
    spatial: float = 3.0,
    bilateral: float = 12.0,
    colour: float = 0.1,
) -> torch.Tensor:
    """Lesion probabilities `(B, 1, H, W)` in [0, 1] from maps `(B, 1, H, W)` in [0, 1] (max-normalised).

    Args:
        images: `(B, C, H, W)` preprocessed images (about [0, 1]); their first three channels (or the one) are the
            appearance kernel's features.
        positive: `(B,)` bool, the images labelled "lesion present"; the others get zeros.
        background_power: the unary's background probability is `(1 - map) ** background_power` (> 1 lets a
            moderate map value win over background, as weakly supervised segmentation usually does).
        spatial, bilateral: the kernels' widths in pixels; colour: the appearance kernel's intensity width.
    """
    densecrf = _densecrf()
    out = torch.zeros_like(maps, dtype=torch.float32)
    for k in torch.nonzero(positive.cpu())[:, 0].tolist():
        lesion = maps[k, 0].detach().float().cpu().numpy().clip(1e-5, 1 - 1e-5)
        background = (1 - lesion) ** background_power
        probabilities = np.stack([background, lesion]) / (background + lesion)
        height, width = lesion.shape
        crf = densecrf.DenseCRF2D(width, height, 2)
        crf.setUnaryEnergy(np.ascontiguousarray(-np.log(probabilities).reshape(2, -1).astype(np.float32)))
        crf.addPairwiseGaussian(sxy=spatial, compat=3)
        features = images[k, :3].detach().float().cpu().numpy()
        appearance = np.ascontiguousarray(np.moveaxis(features, 0, -1)).astype(np.float32)
        crf.addPairwiseEnergy(_bilateral(densecrf, appearance, bilateral, colour), compat=10)
        q = np.array(crf.inference(iterations)).reshape(2, height, width)
        out[k, 0] = torch.from_numpy(q[1].astype(np.float32))
    return out.to(maps.device)


def _bilateral(densecrf, appearance: np.ndarray, sxy: float, colour: float) -> np.ndarray:
    """The appearance kernel's features `(2 + C, H·W)`: pixel positions / sxy and intensities / colour."""
    from pydensecrf.utils import create_pairwise_bilateral

    channels = appearance.shape[-1]
    return create_pairwise_bilateral(sdims=(sxy, sxy), schan=(colour,) * channels, img=appearance, chdim=2)
