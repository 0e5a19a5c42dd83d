"""ALPS: automatic labeling for pre-training in segmentation, with Segment Anything."""

__version__ = "0.1.0"
