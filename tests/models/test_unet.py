import pytest
import torch

from medseg.models.unet import UNet


def test_label_head_predicts_one_class_vector_per_image_beside_the_same_masks():
    model = UNet(1, 1, [4, 8, 16], pyramid=1, label_classes=3).eval()
    x = torch.randn(2, 1, 37, 41)
    pyramid, label = model.forward_heads_and_label(x)
    assert label.shape == (2, 3)
    for with_label, without in zip(pyramid, model.forward_heads(x), strict=True):
        torch.testing.assert_close(with_label, without)
    # the head reads the bottleneck's global average: an image with a different bottleneck gets other logits
    assert not torch.allclose(label, model.forward_heads_and_label(x.flip(-1) * 3)[1])


def test_a_unet_without_label_head_says_how_to_get_one():
    with pytest.raises(ValueError, match="no label head: build it with model.label_classes > 0"):
        UNet(1, 1, [4, 8, 16]).forward_heads_and_label(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match="model.label_classes must be ≥ 0, got -1"):
        UNet(1, 1, [4, 8, 16], label_classes=-1)


def test_forward_perturbed_perturbs_every_encoder_feature_map_before_the_decoder():
    model = UNet(1, 1, [4, 8, 16]).eval()
    x = torch.randn(2, 1, 37, 41)
    torch.testing.assert_close(model.forward_perturbed(x, lambda f: f), model(x))
    shapes = []
    zeroed = model.forward_perturbed(x, lambda f: shapes.append(f.shape) or torch.zeros_like(f))
    assert [s[1] for s in shapes] == [4, 8, 16], "each skip and the bottleneck"
    assert zeroed.shape == (2, 1, 37, 41) and not torch.allclose(zeroed, model(x))
    # all-zero features leave the decoder nothing from the image: two different images give the same logits
    torch.testing.assert_close(zeroed[0], zeroed[1])
