"""Per-candidate signals the strategies read: embeddings (a trained model's deepest encoder features, or at a cold
start mask-free image thumbnails) and a trained model's uncertainty (entropy of its flip-averaged prediction)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from medseg.selection.pool import Pool

__all__ = ["ModelSignals", "embeddings", "uncertainty", "reduce_dimensions"]

THUMBNAIL = 16  # side of the mask-free embedding's thumbnail
BATCH = 32


def _batches(get: Callable[[int], np.ndarray], count: int) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Indices and `(B, C, H, W)` float32 images, consecutive indices of one shape per batch."""
    indices: list[int] = []
    images: list[np.ndarray] = []
    for i in range(count):
        image = np.asarray(get(i), np.float32)
        if images and (image.shape != images[0].shape or len(images) == BATCH):
            yield indices, torch.from_numpy(np.stack(images))
            indices, images = [], []
        indices.append(i)
        images.append(image)
    if images:
        yield indices, torch.from_numpy(np.stack(images))


def _thumbnails(get: Callable[[int], np.ndarray], count: int) -> np.ndarray:
    """`(count, C * THUMBNAIL²)`: each image area-averaged to a THUMBNAIL × THUMBNAIL thumbnail."""
    rows = [F.adaptive_avg_pool2d(batch, THUMBNAIL).flatten(1).numpy() for _, batch in _batches(get, count)]
    return np.concatenate(rows) if rows else np.zeros((0, 1), np.float32)


@dataclass
class ModelSignals:
    """A trained model over a pool (`medseg.inference.Predictor`: its model, method and device)."""

    predictor: object

    def features(self, get: Callable[[int], np.ndarray], count: int) -> np.ndarray:
        """`(count, C_deep)`: the deepest encoder stage's features, averaged over space."""
        from medseg.explain.targets import default_layer

        predictor = self.predictor
        captured: list[torch.Tensor] = []
        hook = default_layer(predictor.model).register_forward_hook(lambda m, a, out: captured.append(out))
        rows = []
        try:
            with torch.inference_mode():
                for _, batch in _batches(get, count):
                    captured.clear()
                    predictor.model(batch.to(predictor.device))
                    rows.append(captured[0].float().mean(dim=(2, 3)).cpu().numpy())
        finally:
            hook.remove()
        return np.concatenate(rows) if rows else np.zeros((0, 1), np.float32)

    def entropy(self, get: Callable[[int], np.ndarray], count: int) -> np.ndarray:
        """`(count,)`: the mean over pixels of the entropy (nats) of the prediction averaged over the image and its
        flips; high where the model is unsure or its flipped views disagree."""
        predictor = self.predictor
        scores = np.zeros(count, np.float64)
        with torch.inference_mode():
            for indices, batch in _batches(get, count):
                probs = predictor.probabilities(batch, tta=True)  # (B, K, H, W), flips whatever eval.tta says
                scores[indices] = _pixel_entropy(probs).mean(dim=(1, 2)).double().numpy()
        return scores


def _pixel_entropy(probs: torch.Tensor) -> torch.Tensor:
    """`(B, K, H, W)` probabilities → `(B, H, W)` entropy; K = 1 is the foreground probability of a binary task."""
    probs = probs.clamp(1e-6, 1 - 1e-6)
    if probs.shape[1] == 1:
        p = probs[:, 0]
        return -(p * p.log() + (1 - p) * (1 - p).log())
    return -(probs * probs.log()).sum(dim=1)


def embeddings(pool: Pool) -> tuple[np.ndarray, np.ndarray]:
    """The candidates' and the labelled cases' embeddings, `(N, D)` and `(M, D)`, standardised and reduced to at
    most 32 dimensions together: from the model where the pool has one, else from thumbnails (needs no mask)."""

    def compute() -> tuple[np.ndarray, np.ndarray]:
        embed = pool.model.features if isinstance(pool.model, ModelSignals) else _thumbnails
        candidates = embed(pool.image, len(pool.candidates))
        labelled = embed(pool.labelled_image, len(pool.labelled)) if pool.labelled else candidates[:0]
        both = np.concatenate([candidates, labelled])
        reduced = reduce_dimensions(both, 32)
        return reduced[: len(pool.candidates)], reduced[len(pool.candidates) :]

    return pool.cached("embeddings", compute)


def uncertainty(pool: Pool) -> np.ndarray:
    """`(N,)` the model's uncertainty on each candidate (see `ModelSignals.entropy`).

    Raises:
        ValueError: the pool has no model (a cold start).
    """
    if pool.model is None:
        raise ValueError("this strategy needs a trained model's predictions: select from a run folder, not a config")
    return pool.cached("uncertainty", lambda: pool.model.entropy(pool.image, len(pool.candidates)))


def reduce_dimensions(features: np.ndarray, dimensions: int) -> np.ndarray:
    """`(N, F)` → `(N, min(dimensions, F, N))`: standardised per feature, then projected on the leading principal
    axes (SVD)."""
    features = np.asarray(features, np.float64)
    centred = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-8)
    if len(centred) < 2:
        return centred[:, :dimensions]
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    return centred @ axes[:dimensions].T
