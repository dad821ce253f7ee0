"""The body prior on localisation maps: the head's region, shrunk by a margin, read from the image alone."""

import pytest
import torch

from medseg.weak.body import body_regions


def _head(size: int = 64, radius: float = 24.0) -> tuple[torch.Tensor, torch.Tensor]:
    """`(1, 3, S, S)` and each pixel's distance from the centre `(S, S)`: a bright disc (the head) with a dark hole
    inside (a ventricle), black air around."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    distance = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2).float().sqrt()
    image = (distance < radius).float() * 0.8
    image[(distance < 4)] = 0.0  # dark, but inside the head: the filled region keeps it
    return image.expand(3, size, size)[None].clone(), distance


def test_region_is_the_head_shrunk_by_the_margin():
    image, distance = _head()
    region = body_regions(image, margin=0.1)[0, 0]  # 6 pixels at 64²
    assert region.shape == (64, 64)
    assert region[distance < 4].all()  # the dark hole inside the head is kept
    assert not region[distance > 24].any()  # the air is not
    assert not region[(distance > 20) & (distance < 24)].any()  # nor the head's rim, within the margin
    assert region[distance < 16].all()


def test_no_margin_keeps_the_whole_head_and_only_the_largest_piece():
    image, distance = _head()
    image[..., 0:3, 0:3] = 0.9  # a bright speck in a corner: not the body
    region = body_regions(image, margin=0.0)[0, 0]
    assert region[distance < 23].all()
    assert not region[0:3, 0:3].any()


def test_a_body_that_fills_the_frame_is_shrunk_from_every_side():
    region = body_regions(torch.ones(1, 1, 40, 40), margin=0.1)[0, 0]  # 4 pixels at 40²
    assert region[5:35, 5:35].all()
    assert not region[:4].any() and not region[-4:].any() and not region[:, :4].any() and not region[:, -4:].any()


def test_a_black_image_gets_no_prior():
    assert body_regions(torch.zeros(2, 1, 32, 32), margin=0.05).eq(1).all()


def test_negative_margin_is_refused():
    with pytest.raises(ValueError, match="margin"):
        body_regions(torch.zeros(1, 1, 8, 8), margin=-0.1)
