"""A tiny random-weight SAM checkpoint, so tests run the real checkpoint-loading and AMG code on CPU.

The ``vit_tiny`` architecture (``alps.masks.sam.SAM_ARCHITECTURES``) has no released weights; its masks are
near random, so tests that want masks use permissive AMG thresholds.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from alps.masks.sam import build_sam


def make_tiny_sam_checkpoint(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write the state dict of a randomly initialised ``vit_tiny`` SAM, as the official checkpoints are.

    Arguments:
        path: the ``.pth`` file to write (its folder must exist).
        seed: torch seed of the random initialisation; the same seed gives the same weights.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    # Fork the RNG so building the fixture does not shift the random stream of the test that calls it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_sam("vit_tiny")
    torch.save(model.state_dict(), path)
    return path
