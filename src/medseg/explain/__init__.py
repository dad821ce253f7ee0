"""Explanations: where a trained network looks (attention maps; class activation maps)."""

from medseg.explain.attention_maps import spatial_attention_maps

__all__ = ["spatial_attention_maps"]
