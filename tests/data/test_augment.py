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
