"""Score-CAM (Wang et al., CVPRW 2020): no gradient; each channel of the deepest stage, brought to the input's size
and scaled to [0, 1], masks the images, and the channel is weighed by the softmax over channels of the score the
masked images get. One forward pass of the batch per channel: the slowest method here."""

from __future__ import annotations

import torch

from medseg.explain.base import Explainer, Request, capture, register_explainer
from medseg.explain.targets import normalise, to_input_size


@register_explainer("scorecam")
class ScoreCAM(Explainer):
    gradients = False

    def maps(self, request: Request) -> torch.Tensor:
        model, images = request.model, request.images
        (activation,) = capture(model, self.layers(model, request), images, request.target, False).activations
        batch, channels = activation.shape[:2]
        height, width = images.shape[-2:]
        scores = torch.empty(batch, channels, device=images.device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for channel in range(channels):
                    mask = normalise(to_input_size(activation[:, channel : channel + 1], height, width))
                    scores[:, channel] = request.target(model(images * mask.to(images.dtype))).float()
        finally:
            model.train(was_training)
        weights = torch.softmax(scores, dim=1)[..., None, None]  # (B, C, 1, 1)
        return to_input_size(torch.relu((weights * activation).sum(1, keepdim=True)), height, width)
