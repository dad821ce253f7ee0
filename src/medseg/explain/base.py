"""One interface for every explanation method, and their registry.

A method is a subclass of `Explainer` in its own file under `medseg/explain/methods/`, registered with one line
(`@register_explainer("name")`). Most only say how to weigh a layer's activations A `(B, C, h, w)` and the gradient
g = ∂score/∂A (`weigh`); the base captures both once (forward hooks, one backward pass, the model's parameter
gradients untouched), brings each layer's map to the input's pixels and, over several layers, combines them by
their per-pixel maximum after dividing each by its peak. `medseg explain`, the weak pipeline (`weak.maps`,
`weak.choose_maps`, `method.maps` of wsr) and the report's gallery all look methods up here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from medseg.explain.targets import encoder_stages, scale_to_peak, to_input_size
from medseg.models.classifier import Classifier
from medseg.registry import Registry

__all__ = [
    "EXPLAINERS",
    "Captured",
    "Explainer",
    "Request",
    "capture",
    "map_methods",
    "register_explainer",
]

Target = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Request:
    """What to explain.

    Attributes:
        model: the network (its training mode is restored afterwards).
        images: `(B, C, H, W)` preprocessed images on the model's device.
        target: the score explained, model outputs → `(B,)` (a class logit, or a class's logits over a region).
        class_index: the class explained, one or one per image `(B,)` (CAM reads the classifier's weights of it).
        layers: the modules whose outputs are explained, shallow to deep (default: the method's deepest stages).
    """

    model: nn.Module
    images: torch.Tensor
    target: Target
    class_index: int | torch.Tensor = 0
    layers: tuple[nn.Module, ...] | None = None


@dataclass(frozen=True)
class Captured:
    """Each layer's output `(B, C, h, w)` float32 and, where asked, the gradient of the summed score with respect to
    it; `score` is the target's `(B,)`."""

    activations: list[torch.Tensor]
    gradients: list[torch.Tensor] | None
    score: torch.Tensor


def capture(
    model: nn.Module, layers: list[nn.Module], images: torch.Tensor, target: Target, gradients: bool
) -> Captured:
    """Run `model` once on `images` in eval mode, keeping `layers`' outputs and (with `gradients`) ∂Σscore/∂output;
    the model's mode is restored and its parameters' gradients are left untouched."""
    outputs: dict[int, torch.Tensor] = {}
    handles = [
        layer.register_forward_hook(lambda module, args, output, i=i: outputs.__setitem__(i, output))
        for i, layer in enumerate(layers)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad() if gradients else torch.no_grad():
            inputs = images.detach().requires_grad_(gradients)  # a graph to the layers even if no parameter has one
            score = target(model(inputs))
            found = [outputs[i] for i in range(len(layers))]
            grads = list(torch.autograd.grad(score.sum(), found)) if gradients else None
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return Captured(
        [a.detach().float() for a in found], [g.float() for g in grads] if grads is not None else None, score.detach()
    )


class Explainer:
    """An explanation method. Subclasses set the class attributes and implement `weigh`, or `maps` for methods that
    are not a weighing of captured layers (CAM, Score-CAM, attention maps)."""

    name: ClassVar[str]
    gradients: ClassVar[bool] = True  # needs ∂score/∂A
    stages: ClassVar[int] = 1  # how many of the deepest encoder stages it reads by default
    classifier_only: ClassVar[bool] = False  # reads a classifier's own weights (CAM, ACAM)
    single_map: ClassVar[bool] = True  # one map of the target per image (False: several named maps)
    # the model families it explains: classifiers, segmentation networks, networks with spatial attention blocks
    families: ClassVar[tuple[str, ...]] = ("classifier", "segmentation")

    def check(self, model: nn.Module) -> None:
        """Raise ValueError where this method cannot explain `model` (the message says what would)."""
        if self.classifier_only and not isinstance(model, Classifier):
            raise ValueError(f"--method {self.name} needs a classifier (model.name: classifier); use gradcam")

    def layers(self, model: nn.Module, request: Request) -> list[nn.Module]:
        """The request's layers, else this method's `stages` deepest encoder stages (`encoder_stages`)."""
        if request.layers:
            return list(request.layers)
        return encoder_stages(model)[-self.stages :]

    def weigh(self, activation: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        """One layer's map `(B, 1, h, w)` from its activations `(B, C, h, w)` and gradient (None without)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither weigh nor maps")

    def layer_maps(self, request: Request) -> list[torch.Tensor]:
        """Each layer's map `(B, 1, h, w)` ≥ 0 at that layer's resolution: ReLU of `weigh`."""
        self.check(request.model)
        layers = self.layers(request.model, request)
        captured = capture(request.model, layers, request.images, request.target, self.gradients)
        grads = captured.gradients or [None] * len(layers)
        return [torch.relu(self.weigh(a, g)) for a, g in zip(captured.activations, grads, strict=True)]

    def maps(self, request: Request) -> torch.Tensor:
        """`(B, 1, H, W)` ≥ 0 on the input's pixels, not normalised (one layer), or combined over layers as the
        module docstring says (each divided by its peak, then the per-pixel maximum)."""
        height, width = request.images.shape[-2:]
        per_layer = [to_input_size(m, height, width) for m in self.layer_maps(request)]
        if len(per_layer) == 1:
            return per_layer[0]
        return torch.stack([scale_to_peak(m) for m in per_layer]).amax(0)

    def named_maps(self, request: Request) -> dict[str, torch.Tensor]:
        """The maps this method draws, by name: one, named after the method (attention: one per block)."""
        return {self.name: self.maps(request)}


EXPLAINERS: Registry[type[Explainer]] = Registry("explanation method")


def register_explainer(name: str) -> Callable[[type[Explainer]], type[Explainer]]:
    """`@register_explainer("name")`: add a method to the registry under `name` (sets `cls.name`)."""
    return EXPLAINERS.register_named(name)


def map_methods() -> list[str]:
    """The methods that give one map of a target per image: what the weak pipeline can turn into pseudo-masks."""
    return [name for name in EXPLAINERS.names() if EXPLAINERS[name].single_map]
