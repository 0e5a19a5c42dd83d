"""Feature shards: round trip, validation of bad files, the clustering's block stream and the area gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alps.features.shards import (
    FLOAT16_MAX,
    iter_feature_blocks,
    read_feature_shard,
    write_feature_shard,
)


def write_numbered_shards(directory: Path, sizes: list[int], dim: int = 4) -> tuple[list[Path], np.ndarray]:
    """Shards whose first vector component is the row's global number, to trace every row."""
    paths, areas, start = [], [], 0
    for i, n in enumerate(sizes):
        vectors = np.zeros((n, dim), dtype=np.float32)
        vectors[:, 0] = np.arange(start, start + n)
        area = (np.arange(n) % 10) / 10.0  # 0.0, 0.1, ..., 0.9
        paths.append(
            write_feature_shard(
                directory / f"shard{i:03d}.npz", vectors, f"img{i}", np.arange(n), area, "fake"
            )
        )
        areas.append(area)
        start += n
    return paths, np.concatenate(areas).astype(np.float32)


def row_numbers(batches: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([b[:, 0] for b in batches]).astype(np.int64) if batches else np.zeros(0, np.int64)


def test_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 7)).astype(np.float32)
    ids = ["a", "bb", "a", "ccc", "é-unicode"]
    path = write_feature_shard(
        tmp_path / "s.npz", vectors, ids, [0, 1, 2, 0, 9], [0.1, 0.2, 0.3, 0.4, 1.0], "sam"
    )
    shard = read_feature_shard(path)
    assert len(shard) == 5 and shard.feature_dim == 7 and shard.encoder == "sam"
    assert shard.vectors.dtype == np.float16
    np.testing.assert_allclose(shard.vectors, vectors, rtol=1e-3, atol=1e-3)
    assert shard.image_ids.tolist() == ids
    assert shard.mask_ids.dtype == np.int32 and shard.mask_ids.tolist() == [0, 1, 2, 0, 9]
    assert shard.area_fraction.dtype == np.float32
    # the format is plain numpy: no pickle, exactly the documented arrays
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(
            ["vectors", "image_ids", "mask_ids", "area_fraction", "encoder", "feature_dim"]
        )
        assert npz["encoder"].shape == () and int(npz["feature_dim"]) == 7
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temporary file left behind


def test_single_image_id_empty_shard_and_suffixless_path(tmp_path: Path) -> None:
    path = write_feature_shard(tmp_path / "one", np.ones((2, 3)), "img", [0, 1], [0.5, 0.5], "x")
    assert path == tmp_path / "one" and path.is_file()
    assert read_feature_shard(path).image_ids.tolist() == ["img", "img"]
    empty = read_feature_shard(write_feature_shard(tmp_path / "e.npz", np.zeros((0, 3)), [], [], [], "x"))
    assert len(empty) == 0 and empty.vectors.shape == (0, 3) and empty.feature_dim == 3


def test_float16_range_is_clipped_and_non_finite_rejected(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="float16 range"):
        path = write_feature_shard(tmp_path / "big.npz", [[1e6, -1e9, 1.0]], "i", [0], [0.1], "x")
    assert read_feature_shard(path).vectors.tolist() == [[FLOAT16_MAX, -FLOAT16_MAX, 1.0]]
    with pytest.raises(ValueError, match="NaN"):
        write_feature_shard(tmp_path / "nan.npz", [[np.nan, 1.0]], "i", [0], [0.1], "x")


def test_write_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"mask_ids must have shape \(2,\)"):
        write_feature_shard(tmp_path / "a.npz", np.ones((2, 3)), "i", [0], [0.1, 0.2], "x")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        write_feature_shard(tmp_path / "a.npz", np.ones((2, 3)), "i", [0, 1], [0.1, 1.5], "x")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        write_feature_shard(tmp_path / "a.npz", np.ones(3), "i", [0], [0.1], "x")
    with pytest.raises(ValueError, match="strings"):
        write_feature_shard(tmp_path / "a.npz", np.ones((2, 3)), [1, 2], [0, 1], [0.1, 0.2], "x")
    assert not list(tmp_path.iterdir())


def good_arrays() -> dict[str, np.ndarray]:
    return {
        "vectors": np.ones((2, 3), np.float16),
        "image_ids": np.array(["a", "b"]),
        "mask_ids": np.array([0, 1], np.int32),
        "area_fraction": np.array([0.1, 0.2], np.float32),
        "encoder": np.array("x"),
        "feature_dim": np.array(3),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mask_ids": None}, r"missing array\(s\) \['mask_ids'\]"),
        ({"vectors": np.ones((2, 3), np.float32)}, "vectors must be a float16"),
        ({"vectors": np.ones(6, np.float16)}, "vectors must be a float16"),
        ({"image_ids": np.array(["a"])}, r"image_ids must be unicode of shape \(2,\)"),
        ({"image_ids": np.array([1, 2])}, "image_ids must be unicode"),
        ({"mask_ids": np.array([0, 1], np.int64)}, "mask_ids must be int32"),
        ({"area_fraction": np.array([0.1, 0.2])}, "area_fraction must be float32"),
        ({"feature_dim": np.array(4)}, "does not match"),
        ({"feature_dim": np.array([3])}, "feature_dim must be a 0-d integer"),
        ({"encoder": np.array(["x"])}, "encoder must be a 0-d string"),
        ({"image_ids": np.array(["a", "b"], dtype=object)}, "allow_pickle"),
    ],
)
def test_bad_files_raise_value_errors_naming_the_file(tmp_path: Path, change: dict, message: str) -> None:
    arrays = good_arrays()
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as info:
        read_feature_shard(path)
    assert str(path) in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="garbage.npz"):
        read_feature_shard(garbage)
    bare = tmp_path / "bare.npy"
    np.save(bare, np.ones(3))
    with pytest.raises(ValueError, match="not an .npz"):
        read_feature_shard(bare)
    truncated = tmp_path / "truncated.npz"
    np.savez(truncated, **good_arrays())
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated.npz"):
        read_feature_shard(truncated)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        read_feature_shard(tmp_path / "missing.npz")


def test_blocks_cover_every_row_once_with_its_ids(tmp_path: Path) -> None:
    paths, _ = write_numbered_shards(tmp_path, [7, 0, 13, 5, 20])
    blocks = list(iter_feature_blocks(list(reversed(paths)), block_size=6))
    assert all(b.vectors.dtype == np.float16 and b.vectors.shape[1] == 4 for b in blocks)
    assert all(len(b.vectors) <= 6 for b in blocks)
    # shards in path order whatever the order given, rows in shard order; ids travel with the rows
    rows = row_numbers([b.vectors for b in blocks])
    assert rows.tolist() == list(range(45))
    ids = np.concatenate([b.image_ids for b in blocks])
    masks = np.concatenate([b.mask_ids for b in blocks])
    assert ids[:7].tolist() == ["img0"] * 7 and masks[:7].tolist() == list(range(7))
    assert ids[7:].tolist() == ["img2"] * 13 + ["img3"] * 5 + ["img4"] * 20
    # one block per shard without a block size
    assert [len(b.vectors) for b in iter_feature_blocks(paths)] == [7, 13, 5, 20]
    assert list(iter_feature_blocks([])) == []


def test_area_gate_keeps_masks_at_or_below_the_threshold(tmp_path: Path) -> None:
    paths, areas = write_numbered_shards(tmp_path, [10, 25, 8])
    kept = row_numbers([b.vectors for b in iter_feature_blocks(paths, area_threshold=0.3, block_size=4)])
    expected = np.flatnonzero(areas <= np.float32(0.3))
    assert kept.tolist() == expected.tolist()
    assert (areas[kept] <= np.float32(0.3)).all() and np.isclose(areas[kept], 0.3).any()  # boundary kept
    assert list(iter_feature_blocks(paths, area_threshold=-1.0)) == []


def test_batch_errors(tmp_path: Path) -> None:
    paths, _ = write_numbered_shards(tmp_path, [3])
    other = write_feature_shard(tmp_path / "other.npz", np.ones((2, 5)), "i", [0, 1], [0.1, 0.2], "sam")
    with pytest.raises(ValueError, match="differs"):
        list(iter_feature_blocks([*paths, other]))
    with pytest.raises(ValueError, match="block_size"):
        list(iter_feature_blocks(paths, block_size=0))
    with pytest.raises(ValueError, match="area_threshold"):
        list(iter_feature_blocks(paths, area_threshold=float("nan")))
