"""Bidirectional copy-paste: mixing keeps every image aligned with its target, both directions, both stages."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medseg.config import load_config
from medseg.engine import trainer
from medseg.methods.bcp import largest_component
from medseg.methods.views import copy_paste, paste_mask
from tests.helpers import built_method


def test_paste_mask_is_one_rectangle_of_the_asked_share():
    torch.manual_seed(0)
    for _ in range(20):
        mask = paste_mask(30, 24, 2 / 3)
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        assert (len(rows), len(cols)) == (20, 16) and mask.sum() == 20 * 16
        assert mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all(), "one solid rectangle"


def test_copy_paste_takes_inside_from_one_and_outside_from_the_other():
    region = torch.zeros(4, 4, dtype=torch.bool)
    region[1:3, 1:3] = True
    outside, inside = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    mixed = copy_paste(outside, inside, region)
    assert torch.equal(mixed[:, 0] == 1, region.expand(2, 4, 4))
    masks = copy_paste(torch.zeros(2, 4, 4, dtype=torch.long), torch.full((2, 4, 4), 7), region)
    assert torch.equal(masks == 7, region.expand(2, 4, 4)), "masks are pasted with the same region"


def test_largest_component_keeps_one_blob_per_class():
    masks = torch.zeros(1, 8, 8, dtype=torch.long)
    masks[0, :3, :3] = 1
    masks[0, 6:, 6:] = 1
    kept = largest_component(masks)
    assert kept.sum() == 9 and kept[0, 7, 7] == 0


class _Oracle(nn.Module):
    """A fixed network whose logit is +/-20 where the image is above / below 0.5: it segments the patterns."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        nn.init.constant_(self.conv.weight, 40.0)
        nn.init.constant_(self.conv.bias, -20.0)

    def forward(self, x):
        return self.conv(x)


def _patterns(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 0/1 block patterns `(B, 1, 24, 24)` and their masks (the pattern itself)."""
    generator = torch.Generator().manual_seed(seed)
    blocks = (torch.rand(count, 1, 6, 6, generator=generator) > 0.5).float()
    images = blocks.repeat_interleave(4, 2).repeat_interleave(4, 3)
    return images, images[:, 0].long()


@pytest.mark.parametrize("self_training", [False, True])
def test_a_network_that_segments_every_pattern_has_almost_no_loss_so_targets_follow_their_pixels(
    phantom_config, self_training
):
    """Images and their masks go through the mixing together: the oracle is right on every pasted pixel (the
    teacher, a copy of it, gives right pseudo-labels), so the loss is ~0. Had a target been pasted in the
    other direction, or from the other half, the oracle would be wrong on a third of the pixels."""
    config = phantom_config()
    config["method"] = {"name": "bcp", "largest_component_only": False}
    method = built_method(config)
    method.model = _Oracle()
    method.set_progress(0.9 if self_training else 0.0, 2)
    images, masks = _patterns(8, seed=1)
    unlabeled, truth = _patterns(8, seed=2)
    torch.manual_seed(0)
    terms = method.training_step({"image": images, "mask": masks, "unlabeled_image": unlabeled})
    assert terms["loss"] < 0.02
    assert (terms["loss_unlabeled_mix"] > 0) == self_training, "the unlabelled images take part after pre-training"
    # the same batch with the labelled halves' masks swapped: the targets no longer match the pixels
    swapped = torch.cat([masks[4:], masks[:4]])
    torch.manual_seed(0)
    assert method.training_step({"image": images, "mask": swapped, "unlabeled_image": unlabeled})["loss"] > 0.2


def test_the_teacher_starts_as_the_pretrained_student_and_survives_a_checkpoint(phantom_config):
    config = phantom_config()
    config["data"]["labeled_ratio"] = 0.5
    config["method"] = {"name": "bcp", "pretrain": 0.5}
    method = built_method(config)
    images, masks = _patterns(4, seed=3)
    batch = {"image": images, "mask": masks, "unlabeled_image": _patterns(4, seed=4)[0]}
    method.set_progress(0.2, 1)
    method.training_step(batch)
    assert method.state_dict() == {}, "no teacher while pre-training"
    method.set_progress(0.6, 2)
    method.training_step(batch)
    for teacher, student in zip(method.ema.model.parameters(), method.model.parameters(), strict=True):
        torch.testing.assert_close(teacher, student)
    restored = built_method(config)
    restored.load_state_dict(method.state_dict())
    assert restored.ema.started


def test_bcp_trains_end_to_end_and_resumes_to_the_same_weights(tmp_path, phantom_config):
    config = phantom_config(epochs=3)
    config["data"]["labeled_ratio"] = 0.5
    config["method"] = {"name": "bcp", "pretrain": 0.34}
    cfg = load_config(config)
    trainer.train(cfg, tmp_path / "reference", show_progress=False)

    def killed_in_epoch_three(state):
        if state.step == 3 * state.steps_per_epoch:  # after the last step of epoch 3, before its checkpoint
            raise KeyboardInterrupt
        return trainer.validate(state)

    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, tmp_path / "run", show_progress=False, hooks=trainer.Hooks(validate=killed_in_epoch_three))
    trainer.resume(tmp_path / "run", show_progress=False)
    resumed = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    expected = torch.load(tmp_path / "reference" / "last.pt", weights_only=True)
    for key, value in expected["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, atol=1e-5, rtol=1e-4)
    assert resumed["method"].keys() == expected["method"].keys() == {"teacher"}
