"""FixMatch: the strong view moves no pixel, CutMix carries pseudo-labels with their pixels, unsure pixels are no
targets, and the teacher survives a checkpoint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medseg.methods import fixmatch
from medseg.methods.fixmatch import confidence
from medseg.methods.views import cutmix_boxes, gaussian_blur, paste_from_next, strong_view
from tests.helpers import built_method


def _patterns(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 0/1 block patterns `(B, 1, 24, 24)` and their masks (the pattern itself)."""
    generator = torch.Generator().manual_seed(seed)
    blocks = (torch.rand(count, 1, 6, 6, generator=generator) > 0.5).float()
    images = blocks.repeat_interleave(4, 2).repeat_interleave(4, 3)
    return images, images[:, 0].long()


class _Oracle(nn.Module):
    """Logit +/-20 where the image is above / below 0.5 (times `scale`): it segments the patterns."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        nn.init.constant_(self.conv.weight, 40.0 * scale)
        nn.init.constant_(self.conv.bias, -20.0 * scale)

    def forward(self, x):
        return self.conv(x)


def test_gaussian_blur_keeps_a_flat_image_and_spreads_a_point_by_its_sigma():
    flat = torch.full((2, 1, 9, 9), 3.0)
    torch.testing.assert_close(gaussian_blur(flat, torch.tensor([0.5, 1.5])), flat)
    point = torch.zeros(2, 1, 13, 13)  # the window (9 × 9) stays clear of the borders
    point[:, :, 6, 6] = 1
    blurred = gaussian_blur(point, torch.tensor([0.1, 1.5]))
    assert blurred[0, 0, 6, 6] > 0.99, "a tiny sigma leaves the image as it was"
    assert blurred[1, 0, 6, 6] < 0.2 and blurred[1, 0, 6, 7] > 0.05
    torch.testing.assert_close(blurred.sum((1, 2, 3)), torch.ones(2))


def test_the_strong_view_changes_intensities_but_moves_no_pixel():
    torch.manual_seed(0)
    images = torch.linspace(0, 1, 32).expand(16, 1, 32, 32).clone()  # a ramp, and a bright spot per image
    spots = torch.randint(4, 28, (16, 2))
    for k, (y, x) in enumerate(spots):
        images[k, 0, y - 2 : y + 3, x - 2 : x + 3] = 5.0
    strong = strong_view(images)
    assert strong.shape == images.shape
    changed = (strong - images).abs().amax(dim=(1, 2, 3)) > 0.05
    assert changed.sum() >= 10, "most views differ from their image (each is left as it is with probability 0.1)"
    # the brightest 5×5 window of each view is still its spot (its top-left corner 2 pixels up and left)
    peaks = torch.nn.functional.avg_pool2d(strong, 5, stride=1).flatten(1).argmax(1)
    assert torch.equal(peaks // 28, spots[:, 0] - 2) and torch.equal(peaks % 28, spots[:, 1] - 2), "each spot stays put"


def test_cutmix_boxes_are_one_solid_box_of_the_asked_area_per_chosen_image():
    torch.manual_seed(0)
    assert not cutmix_boxes(8, 40, 40, p=0.0).any()
    boxes = cutmix_boxes(64, 40, 40, p=1.0)
    for box in boxes:
        rows, cols = box.any(1).nonzero()[:, 0], box.any(0).nonzero()[:, 0]
        assert box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all() and box.sum() == len(rows) * len(cols)
        assert 0.01 <= box.float().mean() <= 0.45
    mixed = paste_from_next(torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 40, 40), boxes[:3])
    assert torch.equal(mixed[:, 0] != torch.arange(3.0).view(3, 1, 1), boxes[:3]), "boxes come from another image"
    assert torch.equal(mixed[2, 0][boxes[2]], torch.zeros(int(boxes[2].sum()))), "the last image's from the first"


def test_confidence_is_the_predicted_class_probability():
    binary = torch.tensor([0.1, 0.5, 0.97]).view(1, 1, 1, 3)
    torch.testing.assert_close(confidence(binary), torch.tensor([[[0.9, 0.5, 0.97]]]))
    three = torch.tensor([0.2, 0.7, 0.1]).view(1, 3, 1, 1)
    torch.testing.assert_close(confidence(three), torch.tensor([[[0.7]]]))


@pytest.mark.parametrize("cutmix", [0.0, 1.0])
def test_pseudo_labels_follow_their_pixels_through_cutmix(phantom_config, monkeypatch, cutmix):
    """With the strong view left out, a network that segments every pattern (and, as the teacher, labels every
    pixel right) has almost no loss, CutMix or not; had a pseudo-label been pasted from another image than its
    pixels, it would be wrong on a share of the box."""
    monkeypatch.setattr(fixmatch, "strong_view", lambda images: images)
    config = phantom_config()
    config["method"] = {"name": "fixmatch", "cutmix": cutmix}
    method = built_method(config)
    method.model = _Oracle()
    images, masks = _patterns(8, seed=1)
    unlabeled, _ = _patterns(8, seed=2)
    torch.manual_seed(0)
    terms = method.training_step({"image": images, "mask": masks, "unlabeled_image": unlabeled})
    assert terms["confident_share"] == 1.0
    assert terms["loss"] < 0.02

    if cutmix:  # the pseudo-labels (the second of the three pastes) from another image: now they disagree
        calls = iter(range(3))

        def labels_from_elsewhere(x, boxes):
            return paste_from_next(x.roll(-1, 0) if next(calls) == 1 else x, boxes)

        monkeypatch.setattr(fixmatch, "paste_from_next", labels_from_elsewhere)
        torch.manual_seed(0)
        wrong = method.training_step({"image": images, "mask": masks, "unlabeled_image": unlabeled})
        assert wrong["loss_unlabeled"] > 0.2


def test_unsure_pixels_are_no_targets(phantom_config):
    config = phantom_config()
    config["method"] = {"name": "fixmatch", "threshold": 0.95}
    method = built_method(config)
    method.model = _Oracle(scale=0.01)  # logits within ±0.2: no pixel reaches 0.95
    images, masks = _patterns(4, seed=3)
    terms = method.training_step({"image": images, "mask": masks, "unlabeled_image": _patterns(4, seed=4)[0]})
    assert terms["confident_share"] == 0 and terms["loss_unlabeled"] == 0
    assert terms["loss"].item() == pytest.approx(terms["loss_supervised"].item())


def test_the_teacher_follows_the_student_and_survives_a_checkpoint(phantom_config):
    config = phantom_config()
    config["method"] = {"name": "fixmatch", "ema_decay": 0.5}
    method = built_method(config)
    images, masks = _patterns(4, seed=5)
    method.training_step({"image": images, "mask": masks, "unlabeled_image": _patterns(4, seed=6)[0]})
    before = [p.clone() for p in method.ema.model.parameters()]
    with torch.no_grad():
        for p in method.model.parameters():
            p.add_(1.0)
    method.after_step()
    for old, new, student in zip(before, method.ema.model.parameters(), method.model.parameters(), strict=True):
        torch.testing.assert_close(new, (old + student) / 2)
    restored = built_method(config)
    restored.load_state_dict(method.state_dict())
    for a, b in zip(restored.ema.model.parameters(), method.ema.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


class _PerturbableOracle(_Oracle):
    """The oracle with a feature-perturbed pass that records the images it sees and ignores the perturbation."""

    def forward_perturbed(self, x, perturb):
        self.perturbed_input = x
        return self(x)


def test_the_feature_perturbed_stream_learns_the_weak_views_own_sure_labels(phantom_config, monkeypatch):
    """UniMatch's stream segments the unlabelled images as loaded (no CutMix) against their own pseudo-labels,
    and takes its share of the unlabelled term."""
    monkeypatch.setattr(fixmatch, "strong_view", lambda images: images)
    config = phantom_config()
    config["method"] = {"name": "fixmatch", "cutmix": 1.0, "feature_perturbation": 0.25, "weight": 2.0}
    method = built_method(config)
    method.model = _PerturbableOracle()
    images, masks = _patterns(8, seed=7)
    unlabeled, _ = _patterns(8, seed=8)
    terms = method.training_step({"image": images, "mask": masks, "unlabeled_image": unlabeled})
    assert torch.equal(method.model.perturbed_input, unlabeled)
    assert terms["loss_feature_perturbed"] < 0.02, "its targets are the weak view's own labels"
    mixed = 0.75 * terms["loss_unlabeled"] + 0.25 * terms["loss_feature_perturbed"]
    assert terms["loss"].item() == pytest.approx((terms["loss_supervised"] + 2.0 * mixed).item(), rel=1e-5)

    method.model = _PerturbableOracle(scale=-1.0)  # a student wrong everywhere; the teacher is still the oracle
    wrong = method.training_step({"image": images, "mask": masks, "unlabeled_image": unlabeled})
    assert wrong["loss_feature_perturbed"] > 1, "the targets are the teacher's, not the student's own"
    unsure_method = built_method(config)
    unsure_method.model = _PerturbableOracle(scale=0.01)  # teacher and student: no pixel reaches 0.95
    unsure = unsure_method.training_step({"image": images, "mask": masks, "unlabeled_image": unlabeled})
    assert unsure["loss_feature_perturbed"] == 0


def test_invalid_options_are_refused(phantom_config):
    config = phantom_config()
    config["method"] = {"name": "fixmatch", "cutmix": 1.5}
    with pytest.raises(ValueError, match="method.cutmix"):
        built_method(config)
    config["method"] = {"name": "fixmatch", "feature_perturbation": 0.5}
    config["model"] = {"name": "unetpp", "features": [4, 8, 16]}
    with pytest.raises(ValueError, match="feature_perturbation needs a model with forward_perturbed"):
        built_method(config)
