"""Explanations: where a trained network looks (class activation maps of every kind, attention maps), one registry
of methods (`medseg.explain.base.EXPLAINERS`)."""

from medseg.explain import methods  # noqa: F401  (registration)
from medseg.explain.attention_maps import spatial_attention_maps
from medseg.explain.base import EXPLAINERS, Explainer, Request, map_methods, register_explainer

__all__ = ["EXPLAINERS", "Explainer", "Request", "map_methods", "register_explainer", "spatial_attention_maps"]
