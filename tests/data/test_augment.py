import torch

from medseg.config import AugmentConfig
from medseg.data.augment import augment_batch


def _batch():
    masks = torch.zeros(8, 32, 32, dtype=torch.long)
    for i in range(8):
        masks[i, 4 + i : 14 + i, 6 : 12 + 2 * i] = 1
    return masks.float().unsqueeze(1) * 2 - 1, masks  # image = ±1 copy of the mask


def test_flips_and_rot90_move_image_and_mask_identically():
    images, masks = _batch()
    cfg = AugmentConfig(rotate_deg=0, scale=0, translate=0, intensity_scale=0, intensity_shift=0, gamma=0)
    out_images, out_masks, _ = augment_batch(images, masks, cfg, torch.Generator().manual_seed(0))
    assert torch.equal((out_images[:, 0] > 0).long(), out_masks)
    assert torch.equal(out_masks.sum((1, 2)), masks.sum((1, 2)))  # exact pixel permutations
    assert not torch.equal(out_masks, masks)


def test_affine_keeps_image_and_mask_aligned():
    images, masks = _batch()
    cfg = AugmentConfig(rotate_deg=15, scale=0.1, translate=0.05, intensity_scale=0, intensity_shift=0, gamma=0)
    out_images, out_masks, extra = augment_batch(
        images, masks, cfg, torch.Generator().manual_seed(1), extra={"aux": masks.clone()}
    )
    agreement = ((out_images[:, 0] > 0).long() == out_masks).float().mean()
    assert agreement > 0.97
    assert torch.equal(extra["aux"], out_masks) and out_masks.dtype == torch.long


def test_intensity_changes_image_only_and_is_seeded():
    images, masks = _batch()
    cfg = AugmentConfig(flip=False, rot90=False, rotate_deg=0, scale=0, translate=0)
    a = augment_batch(images, masks, cfg, torch.Generator().manual_seed(2))
    b = augment_batch(images, masks, cfg, torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], masks)
    assert not torch.allclose(a[0], images)


def test_disabled_returns_inputs():
    images, masks = _batch()
    out = augment_batch(images, masks, AugmentConfig(enabled=False), torch.Generator())
    assert out[0] is images and out[1] is masks


def test_crop_takes_the_same_random_window_of_image_mask_and_targets():
    _, masks = _batch()
    position = torch.arange(32.0).view(32, 1) * 100 + torch.arange(32.0).view(1, 32)  # pixel (y, x) holds 100y + x
    images = position.expand(8, 1, 32, 32).clone()
    cfg = AugmentConfig(
        flip=False, rot90=False, rotate_deg=0, scale=0, translate=0, intensity_scale=0, intensity_shift=0, gamma=0
    )
    cfg.crop = 20
    soft = masks.unsqueeze(1).float().repeat(1, 2, 1, 1)
    out_images, out_masks, extra = augment_batch(
        images, masks, cfg, torch.Generator().manual_seed(3), extra={"soft": soft}
    )
    assert out_images.shape == (8, 1, 20, 20) and out_masks.shape == (8, 20, 20)
    assert extra["soft"].shape == (8, 2, 20, 20)
    corners = out_images[:, 0, 0, 0].round().long()
    assert len(set(corners.tolist())) > 1  # windows differ between samples
    for i, corner in enumerate(corners.tolist()):
        top, left = divmod(corner, 100)
        window = (slice(top, top + 20), slice(left, left + 20))
        torch.testing.assert_close(out_images[i, 0], position[window])
        assert torch.equal(out_masks[i], masks[i][window])
        assert torch.equal(extra["soft"][i, 1], masks[i][window].float())


def test_crop_larger_than_the_slices_is_refused(phantom_config):
    import pytest

    from medseg.config import load_config
    from medseg.errors import ConfigError

    config = phantom_config()
    config["augment"] = {"crop": 1000}
    with pytest.raises(ConfigError, match=r"augment.crop \(1000\) crops square slices \(data.size"):
        load_config(config)
