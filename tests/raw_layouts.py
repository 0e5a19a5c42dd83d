"""The paper's datasets in their download layouts, built from the real samples in ../shared/data.

Each builder skips the calling test (``conftest.shared_data``) where the samples are absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from miniature import atlas_raw, isaid_raw, potsdam_raw, samrs_raw

from conftest import shared_data


def atlas(root: Path, patients: int = 3) -> Path:
    """``imagesTr/im<N>.nii.gz`` and ``labelsTr/lb<N>.nii.gz``; patient 0's label is empty above slice 14."""
    return atlas_raw(shared_data("medical", "totalsegmentator_abdomen_mr").parents[1], root, patients)


def isaid(root: Path, ids: tuple[str, ...] = ("P0003", "P0004", "P0005")) -> Path:
    """The iSAID download layout: train as zips, val extracted (both forms are accepted)."""
    return isaid_raw(shared_data("isaid", "full").parents[1], root, ids)


def potsdam(root: Path, tile_data: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Path:
    """``2_Ortho_RGB.zip`` (tiles in a sub-folder, as ISPRS ships it) and ``5_Labels_all_noBoundary.zip``."""
    return potsdam_raw(shared_data("potsdam").parent, root, tile_data)


def samrs(root: Path) -> Path:
    """SOTA/ and FAST/ as folders, SIOR as SIOR.zip; SOTA has gray labels."""
    return samrs_raw(shared_data("isaid", "full").parents[1], root)
