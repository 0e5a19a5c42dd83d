"""A tiny random-weight SAM checkpoint, so tests run the real checkpoint-loading and AMG code on CPU.

The ``vit_tiny`` architecture (``alps.masks.sam.SAM_ARCHITECTURES``) has no released weights; its masks are
near random, so tests that want masks use permissive AMG thresholds. The writer lives in
``miniature`` (the study's miniature, ``make test-study``, uses it too).
"""

from __future__ import annotations

from miniature import tiny_sam_checkpoint as make_tiny_sam_checkpoint

__all__ = ["make_tiny_sam_checkpoint"]
