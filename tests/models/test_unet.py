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
