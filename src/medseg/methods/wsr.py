"""Weakly supervised region growing by pixel embeddings (the WSR stage of Wu et al., MICCAI 2019).

Training: a network f_R maps each pixel to an embedding; pairs of pixels drawn from the pseudo-masks'
confident regions learn whether they belong to the same region (lesion–lesion, background–background) or
not, through the similarity `p = (1 + cos(e_i, e_j)) / 2` and a binary cross-entropy.

Inference: the stage-1 classifier's map gives the `seeds` most confident lesion pixels of each image it
calls positive; every pixel's probability of lesion is its mean similarity to those seeds, and
`eval.threshold` (λ) turns it into a mask. Images the classifier calls negative get an empty mask.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from medseg.losses import IGNORE_INDEX
from medseg.methods.base import register_method
from medseg.models import build_model

__all__ = ["RegionGrowing", "pair_similarity_loss", "grow_from_seeds"]


def _similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`(..., D)` unit vectors → similarity in [0, 1]."""
    return ((1 + (a * b).sum(-1)) / 2).clamp(1e-4, 1 - 1e-4)


def pair_similarity_loss(
    embeddings: torch.Tensor, masks: torch.Tensor, pairs: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """BCE of same/different region for `pairs` random pairs of known pixels per image.

    Args:
        embeddings: `(B, D, H, W)`, unit length along D.
        masks: `(B, H, W)` pseudo-masks: 0, 1, or `IGNORE_INDEX`.

    Half the pairs start at a lesion pixel where the image has any, so small lesions are not drowned out.
    """
    losses = []
    for embedding, mask in zip(embeddings, masks, strict=True):
        flat, labels = embedding.flatten(1).t(), mask.flatten()  # (N, D), (N,)
        known = torch.nonzero(labels != IGNORE_INDEX)[:, 0]
        if len(known) < 2:
            continue
        lesion = torch.nonzero(labels == 1)[:, 0]
        first = known[torch.randint(len(known), (pairs,), generator=generator, device="cpu").to(known.device)]
        if len(lesion):
            half = pairs // 2
            picks = torch.randint(len(lesion), (half,), generator=generator, device="cpu").to(lesion.device)
            first[:half] = lesion[picks]
        second = known[torch.randint(len(known), (pairs,), generator=generator, device="cpu").to(known.device)]
        same = (labels[first] == labels[second]).float()
        similarity = _similarity(flat[first].float(), flat[second].float())
        # written out: F.binary_cross_entropy is refused under CUDA autocast
        losses.append(-(same * similarity.log() + (1 - same) * (1 - similarity).log()).mean())
    return torch.stack(losses).mean() if losses else embeddings.sum() * 0


def grow_from_seeds(embeddings: torch.Tensor, maps: torch.Tensor, positive: torch.Tensor, seeds: int) -> torch.Tensor:
    """Lesion probabilities `(B, 1, H, W)`: mean similarity to the `seeds` highest-map pixels of each positive
    image (zeros for negative ones).

    Args:
        embeddings: `(B, D, H, W)` unit vectors; maps: `(B, 1, H, W)` lesion maps; positive: `(B,)` bool.
    """
    batch, dims = embeddings.shape[:2]
    flat = embeddings.flatten(2).transpose(1, 2).float()  # (B, N, D)
    top = maps.flatten(1).topk(seeds, dim=1).indices  # (B, k)
    chosen = flat.gather(1, top[..., None].expand(-1, -1, dims))  # (B, k, D)
    similarity = (1 + torch.einsum("bnd,bkd->bnk", flat, chosen)) / 2
    probabilities = similarity.mean(2).view(batch, 1, *embeddings.shape[-2:])
    return probabilities * positive.view(batch, 1, 1, 1).float()


@register_method("wsr")
class RegionGrowing:
    """Train a pixel-embedding network on pseudo-masks and grow lesions from classifier seeds.

    Args:
        model_spec: the embedding network's spec (e.g. a U-Net); its `out_channels` becomes `embedding_dim`.
        classifier_run: the stage-1 classification run whose maps give the seeds at inference.
        maps: cam | acam | gradcam (as for the pseudo-masks).
        embedding_dim: D.
        pairs: pixel pairs per image and step.
        seeds: confident lesion pixels grown from, per image.
    """

    def __init__(
        self,
        model_spec: dict,
        classifier_run: str | None = None,
        maps: str = "acam",
        embedding_dim: int = 16,
        pairs: int = 512,
        seeds: int = 5,
    ) -> None:
        self.model_spec = model_spec
        self.classifier_run = classifier_run
        self.maps, self.embedding_dim, self.pairs, self.seeds = maps, embedding_dim, pairs, seeds
        self.model: nn.Module | None = None
        self._classifier = None

    def build(self) -> nn.Module:
        self.model = build_model({**self.model_spec, "out_channels": self.embedding_dim})
        return self.model

    def embed(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(model(images).float(), dim=1)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": pair_similarity_loss(self.embed(self.model, batch["image"]), batch["mask"], self.pairs)}

    def _seeds_source(self, device: torch.device):
        if self._classifier is None:
            from medseg.inference import Predictor

            if self.classifier_run is None or not Path(self.classifier_run).is_dir():
                raise FileNotFoundError(f"method.classifier_run {self.classifier_run!r}: the stage-1 run is needed")
            self._classifier = Predictor.load(self.classifier_run, device=str(device))
        return self._classifier

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        from medseg.weak.maps import lesion_maps

        classifier = self._seeds_source(images.device)
        with torch.no_grad():
            positive = (
                classifier.method.predicted_classes(classifier.method.predict(classifier.model, images.float())) > 0
            )
        with torch.enable_grad():
            maps = lesion_maps(classifier.model, images.float(), self.maps)
        with torch.no_grad():
            return grow_from_seeds(self.embed(model, images), maps, positive, self.seeds)
