"""Weakly supervised region growing by pixel embeddings (the WSR stage of Wu et al., MICCAI 2019).

Training: a network f_R maps each pixel to an embedding; pairs of pixels drawn from the pseudo-masks'
confident regions learn whether they belong to the same region (lesion–lesion, background–background) or
not, through the similarity `p = (1 + cos(e_i, e_j)) / 2` and a binary cross-entropy.

Inference: the stage-1 classifier's map gives the `seeds` most confident lesion pixels of each image it
calls positive; every pixel's probability of lesion is its mean similarity to those seeds, and
`eval.threshold` (λ) turns it into a mask. Images the classifier calls negative get an empty mask.

The classifier is part of this method's network (`SeededEmbedding`, frozen): a WSR checkpoint predicts on
its own, wherever its run folder is.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medseg.checkpoint_io import load_checkpoint
from medseg.explain import map_methods
from medseg.explain.maps import lesion_maps
from medseg.losses import IGNORE_INDEX
from medseg.methods.base import Method, register_method
from medseg.models import build_model

__all__ = ["RegionGrowing", "SeededEmbedding", "pair_similarity_loss", "grow_from_seeds"]


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


class SeededEmbedding(nn.Module):
    """The WSR network: a pixel-embedding network and the frozen stage-1 classifier whose maps give the seeds.

    `forward(x)`: unit embeddings `(B, D, H, W)` of `(B, C, H, W)` images. The classifier stays in eval mode
    and takes no gradient.
    """

    def __init__(self, embedding: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding
        self.classifier = classifier.requires_grad_(False)

    def train(self, mode: bool = True) -> SeededEmbedding:
        super().train(mode)
        self.classifier.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embedding(x).float(), dim=1)


@register_method("wsr")
class RegionGrowing(Method):
    """Train a pixel-embedding network on pseudo-masks and grow lesions from classifier seeds.

    Args:
        model_spec: the embedding network's spec (e.g. a U-Net); its `out_channels` is `embedding_dim`.
        classifier: the stage-1 classifier's model spec (binary: one logit, "lesion present").
        classifier_checkpoint: the stage-1 checkpoint its weights are loaded from when training starts; not
            needed afterwards (the weights travel in this run's checkpoints).
        maps: an explanation method that gives one map (`medseg.explain.map_methods()`, as for the pseudo-masks).
        embedding_dim: D.
        pairs: pixel pairs per image and step.
        seeds: confident lesion pixels grown from, per image.
    """

    def __init__(
        self,
        model_spec: dict,
        classifier: dict | None = None,
        classifier_checkpoint: str | None = None,
        maps: str = "acam",
        embedding_dim: int = 16,
        pairs: int = 512,
        seeds: int = 5,
    ) -> None:
        super().__init__(model_spec)
        if classifier is None or classifier.get("name") != "classifier" or classifier.get("out_channels", 1) != 1:
            raise ValueError(
                "method wsr needs method.classifier, the spec of a binary stage-1 classifier (supervision: "
                f"image-labels with weak.stage2: wsr sets it), got {classifier}"
            )
        if maps not in map_methods():
            raise ValueError(f"method.maps must be one of {map_methods()}, got {maps!r}")
        self.classifier_spec, self.classifier_checkpoint = classifier, classifier_checkpoint
        self.maps, self.embedding_dim, self.pairs, self.seeds = maps, embedding_dim, pairs, seeds

    @classmethod
    def complete_model_spec(cls, model_spec: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """The embedding network outputs `embedding_dim` channels."""
        dims = options.get("embedding_dim", 16)
        if model_spec.get("out_channels", dims) != dims:
            raise ValueError(f"model.out_channels is {model_spec['out_channels']}; method wsr sets it to embedding_dim")
        return {**model_spec, "out_channels": dims}

    def build_model(self) -> nn.Module:
        return SeededEmbedding(build_model(self.model_spec), build_model(self.classifier_spec))

    def on_train_start(self) -> None:
        if self.classifier_checkpoint is not None:
            self.model.classifier.load_state_dict(load_checkpoint(self.classifier_checkpoint)["model"])

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": pair_similarity_loss(self.model(batch["image"]), batch["mask"], self.pairs)}

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        images = images.float()
        with torch.no_grad():
            positive = model.classifier(images)[:, 0] > 0  # p("lesion present") > 0.5
        with torch.enable_grad():
            maps = lesion_maps(model.classifier, images, self.maps)
        with torch.no_grad():
            return grow_from_seeds(model(images), maps, positive, self.seeds)
