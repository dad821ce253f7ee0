"""Region growing by pixel embeddings: the pair loss, growing from seeds, negatives stay empty."""

import torch
import torch.nn.functional as F

from medseg.losses import IGNORE_INDEX
from medseg.methods.wsr import grow_from_seeds, pair_similarity_loss


def _two_regions(size=8):
    mask = torch.zeros(1, size, size, dtype=torch.long)
    mask[:, :, size // 2 :] = 1
    return mask


def test_pair_loss_is_low_for_embeddings_that_separate_the_regions_and_high_otherwise():
    mask = _two_regions()
    separated = torch.zeros(1, 2, 8, 8)
    separated[:, 0][mask == 0] = 1.0
    separated[:, 1][mask == 1] = 1.0  # orthogonal unit vectors per region: similarity 1 inside, 0.5 across
    collapsed = F.normalize(torch.ones(1, 2, 8, 8), dim=1)  # one vector everywhere
    generator = torch.Generator().manual_seed(0)
    good = pair_similarity_loss(separated, mask, 256, generator)
    bad = pair_similarity_loss(collapsed, mask, 256, torch.Generator().manual_seed(0))
    assert good < bad


def test_pair_loss_ignores_unknown_pixels_and_trains():
    mask = _two_regions()
    mask[:, :2] = IGNORE_INDEX
    embeddings = torch.randn(1, 4, 8, 8, requires_grad=True)
    loss = pair_similarity_loss(F.normalize(embeddings, dim=1), mask, 128, torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss) and embeddings.grad[:, :, :2].abs().max() == 0
    everything_unknown = torch.full_like(mask, IGNORE_INDEX)
    assert pair_similarity_loss(F.normalize(embeddings, dim=1), everything_unknown, 16) == 0


def test_growing_follows_the_seed_region_and_negatives_stay_empty():
    mask = _two_regions()
    embeddings = torch.zeros(2, 2, 8, 8)
    embeddings[:, 0][mask.expand(2, -1, -1) == 0] = 1.0
    embeddings[:, 1][mask.expand(2, -1, -1) == 1] = 1.0
    maps = torch.zeros(2, 1, 8, 8)
    maps[:, 0, 3, 6] = 1.0  # the most confident pixel lies in region 1
    grown = grow_from_seeds(embeddings, maps, torch.tensor([True, False]), seeds=1)
    assert grown.shape == (2, 1, 8, 8)
    assert torch.equal(grown[0, 0] > 0.75, mask[0] == 1)
    assert (grown[1] == 0).all()
