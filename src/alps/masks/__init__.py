"""Mask backends behind one interface, and the mask shard format."""

from alps.masks.base import MaskGenerator, MaskSet, encode_masks

__all__ = ["MaskGenerator", "MaskSet", "encode_masks"]
