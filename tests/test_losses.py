import torch

from medseg.losses import HybridLoss, soft_dice_loss


def test_good_prediction_has_lower_loss_than_bad():
    mask = torch.zeros(2, 16, 16, dtype=torch.long)
    mask[:, 4:10, 4:10] = 1
    good = (mask.float() * 20 - 10).unsqueeze(1)
    loss = HybridLoss()
    assert loss(good, mask) < 0.01
    assert loss(-good, mask) > 1.0


def test_multiclass_uses_cross_entropy_and_foreground_dice():
    mask = torch.randint(0, 3, (2, 8, 8))
    perfect = torch.nn.functional.one_hot(mask, 3).permute(0, 3, 1, 2).float() * 20
    assert HybridLoss()(perfect, mask) < 0.01
    assert HybridLoss()(torch.zeros(2, 3, 8, 8), mask) > 0.5


def test_soft_dice_ignores_invalid_pixels():
    probs = torch.ones(1, 1, 4, 4)
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :] = 1
    valid = target.clone()  # only the foreground half counts
    assert soft_dice_loss(probs, target, valid) < 0.1
    assert soft_dice_loss(probs, target) > 0.3
