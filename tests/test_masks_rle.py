"""Masks from files are checked before pycocotools' C code sees them (``alps.masks.rle``)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from alps.masks.rle import MaskFormatError, check_polygons, check_rle, check_rle_batch, rle_counts

from conftest import REPO_ROOT

FUZZ = REPO_ROOT / "tests" / "fuzz_inputs.py"


def _runs(mask: np.ndarray) -> list[int]:
    """Run lengths of a mask in COCO's column-major order, from background."""
    flat = mask.ravel(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] if flat[0] else []) + runs


def test_valid_rles_decode_to_pycocotools_runs(rng):
    for _ in range(200):
        height, width = rng.integers(1, 80, 2)
        mask = rng.random((height, width)) < rng.random()
        if rng.random() < 0.3:
            mask[:] = False
            mask[height // 4 : height // 2, width // 3 :] = True
        rle = mask_utils.encode(np.asfortranarray(mask[..., None].astype(np.uint8)))[0]
        assert rle_counts(rle["counts"], height, width, "t").tolist() == _runs(mask)
        assert check_rle(rle, int(height), int(width), "t")["counts"] == rle["counts"]


@pytest.mark.parametrize(
    ("counts", "fragment"),
    [
        (b"", "empty RLE"),
        (b"0\x7f", "outside '0'..'o'"),
        (b"5p", "outside '0'..'o'"),
        (b"1o", "unterminated"),  # 'o' asks for another character: pycocotools reads past the end
        (b"ooooooo0", "8 characters .at most 6."),
        (b"5", "cover 5 pixels"),  # sums to 5 of 16
        (b"0A", "run outside"),  # a negative run
        (b"n5", "run outside"),  # a run longer than the mask
    ],
)
def test_malformed_rles_are_refused(counts, fragment):
    with pytest.raises(MaskFormatError, match=fragment):
        check_rle({"size": [4, 4], "counts": counts}, 4, 4, "shard.parquet: image 'a', mask 0")


def test_uncompressed_counts_and_sizes_are_checked():
    assert check_rle({"size": [2, 2], "counts": [1, 2, 1]}, 2, 2, "t")["counts"] == [1, 2, 1]
    for counts in ([1, 2], [1, -1, 4], [1, True, 2], "é"):
        with pytest.raises(MaskFormatError):
            check_rle({"size": [2, 2], "counts": counts}, 2, 2, "t")
    with pytest.raises(MaskFormatError, match="is not the image's"):
        check_rle({"size": [2, 3], "counts": [6]}, 2, 2, "t")


def test_polygons_are_bounded_before_frpyobjects():
    assert check_polygons([[0, 0, 10, 0, 10, 10]], 20, 20, "t") == [[0.0, 0.0, 10.0, 0.0, 10.0, 10.0]]
    for polygons in (
        [[0, 0, 5e8, 0, 5e8, 5e8]],  # killed `alps label --masks coco` with SIGSEGV
        [[0, 0, float("nan"), 0, 1, 1]],
        [[0, 0, 1, 1]],  # two points: pycocotools would read it as a box
        [[0, 0, 1, 1, 2]],
        [["0", 0, 1, 1, 2, 2]],
        [],
        "polygon",
    ):
        with pytest.raises(MaskFormatError):
            check_polygons(polygons, 20, 20, "t")


def _fuzz(*args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, str(FUZZ), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.mark.slow
def test_fuzzed_shards_coco_files_and_class_maps_never_crash():
    """Hypothesis, derandomized: every input is read or refused with one error, never a signal."""
    result = _fuzz("--examples", "150", timeout=600)
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    assert "no crash" in result.stdout


def test_the_fuzz_harness_sees_a_crash_of_unchecked_input():
    """The control: the same RLE strings given to pycocotools unchecked end the process with a signal."""
    result = _fuzz("--unchecked", "--examples", "3000", timeout=300)
    if result.returncode == 0:
        pytest.skip("pycocotools survived 3000 unchecked strings on this platform")
    assert result.returncode < 0, result.stderr[-2000:]  # SIGSEGV or SIGABRT, not a Python error


def test_a_shards_rles_checked_at_once_agree_with_one_by_one(rng):
    """``check_rle_batch`` (a mask shard's RLEs in one vectorised pass) refuses exactly what ``rle_counts``
    refuses, naming one of the bad masks."""
    for _ in range(60):
        counts, heights, widths = [], [], []
        for _ in range(int(rng.integers(1, 12))):
            height, width = (int(v) for v in rng.integers(1, 30, 2))
            mask = rng.random((height, width, 1)) < rng.random()
            text = bytearray(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))[0]["counts"])
            if rng.random() < 0.15:  # a mutated string: often invalid, sometimes still valid
                text[int(rng.integers(len(text)))] = 48 + int(rng.integers(64))
            counts.append(bytes(text))
            heights.append(height)
            widths.append(width)
        bad = []
        for i, (c, h, w) in enumerate(zip(counts, heights, widths, strict=True)):
            try:
                rle_counts(c, h, w, f"mask {i}")
            except MaskFormatError:
                bad.append(i)
        if bad:
            with pytest.raises(MaskFormatError) as info:
                check_rle_batch(counts, heights, widths, lambda i: f"mask {i}")
            assert int(str(info.value).split(":")[0].split()[1]) in bad
        else:
            check_rle_batch(counts, heights, widths, lambda i: f"mask {i}")
