"""Pseudo-masks: thresholds, negatives, the ignore band in the loss, and where they replace true masks."""

import numpy as np
import pytest
import torch

from medseg.config import load_config
from medseg.data.dataset import prepare_dataset
from medseg.data.mask_override import save_pseudo_masks
from medseg.errors import DataError
from medseg.explain.maps import map_dice, pointing_hits
from medseg.losses import IGNORE_INDEX, HybridLoss
from medseg.weak.pseudo_masks import make_pseudo_masks, mask_quality


def test_thresholds_split_lesion_background_and_unknown():
    maps = torch.tensor([[0.0, 0.005, 0.01, 0.05], [0.099, 0.1, 0.5, 1.0]]).view(1, 1, 2, 4).repeat(2, 1, 1, 1)
    masks = make_pseudo_masks(maps, torch.tensor([1, 0]), foreground=0.1, background=0.01)
    assert masks[0].tolist() == [[0, 0, 0, IGNORE_INDEX], [IGNORE_INDEX, 1, 1, 1]]
    assert (masks[1] == 0).all(), "an image labelled negative is background everywhere"
    with pytest.raises(ValueError, match="0 ≤ background < foreground ≤ 1"):
        make_pseudo_masks(maps, torch.tensor([1, 1]), foreground=0.01, background=0.1)


def test_ignored_pixels_take_no_part_in_the_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    mask = torch.randint(0, 2, (2, 8, 8))
    mask[:, :4] = IGNORE_INDEX
    loss = HybridLoss(dice="image")(logits, mask)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad[:, :, :4].abs().max() == 0 and logits.grad[:, :, 4:].abs().max() > 0
    changed = logits.detach().clone()
    changed[:, :, :4] = 50.0
    torch.testing.assert_close(HybridLoss(dice="image")(changed, mask), loss.detach())


def test_pseudo_masks_replace_training_and_validation_masks_only(tmp_path, phantom_config):
    cfg = load_config(phantom_config())
    dataset = prepare_dataset(cfg.data, cfg.seed)
    ids = list(dataset.store.ids)
    fake = np.full((len(ids), 48, 48), 7, np.uint8)
    save_pseudo_masks(tmp_path / "pseudo.npz", ids, fake)
    overridden = load_config(phantom_config(), [f"data.mask_override={tmp_path / 'pseudo.npz'}"])
    replaced = prepare_dataset(overridden.data, overridden.seed)
    for split, expect_fake in (("train", True), ("val", True), ("test", False)):
        rows = replaced.rows(split)
        assert len(rows) and bool((replaced.store.masks[rows] == 7).all()) is expect_fake
    np.testing.assert_array_equal(
        replaced.store.masks[replaced.rows("test")], dataset.store.masks[dataset.rows("test")]
    )


def test_a_pseudo_mask_file_of_another_size_is_refused(tmp_path, phantom_config):
    save_pseudo_masks(tmp_path / "p.npz", ["x"], np.zeros((1, 32, 32), np.uint8))
    cfg = load_config(phantom_config(), [f"data.mask_override={tmp_path / 'p.npz'}"])
    with pytest.raises(DataError, match=r"p.npz: pseudo-masks are \(32, 32\), the data is \(48, 48\)"):
        prepare_dataset(cfg.data, cfg.seed)


def test_localisation_scores():
    maps = torch.zeros(2, 1, 4, 4)
    maps[0, 0, 1, 1] = 1.0  # peak inside the lesion
    maps[1, 0, 3, 3] = 1.0  # peak outside
    masks = torch.zeros(2, 4, 4, dtype=torch.long)
    masks[:, :2, :2] = 1
    assert pointing_hits(maps, masks).tolist() == [1.0, 0.0]
    assert map_dice(maps, masks, 0.5).tolist() == pytest.approx([2 / 5, 0.0])
    quality = mask_quality(np.array([[1, 0], [IGNORE_INDEX, 0]]), np.array([[1, 1], [0, 0]]))
    expected = {"dice": 2 / 3, "precision": 1.0, "recall": 0.5, "background_error": 0.5, "unknown_share": 0.25}
    assert quality == pytest.approx(expected)


def test_training_cases_missing_from_the_pseudo_mask_file_get_no_true_mask(tmp_path, phantom_config):
    cfg = load_config(phantom_config())
    dataset = prepare_dataset(cfg.data, cfg.seed)
    train_ids = [dataset.store.ids[r] for r in dataset.rows("train")]
    save_pseudo_masks(tmp_path / "some.npz", train_ids[:2], np.zeros((2, 48, 48), np.uint8))
    overridden = load_config(phantom_config(), [f"data.mask_override={tmp_path / 'some.npz'}"])
    replaced = prepare_dataset(overridden.data, overridden.seed)
    rows = [replaced.store.position[i] for i in train_ids]
    assert (replaced.store.masks[rows[:2]] == 0).all()
    assert (replaced.store.masks[rows[2:]] == IGNORE_INDEX).all(), "unlisted training cases: unknown, not true"
    assert not any(replaced.store.has_mask(r) for r in rows[2:])
