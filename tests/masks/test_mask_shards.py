from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from alps.masks import MaskSet
from alps.masks.shards import MASK_SHARD_SCHEMA, read_mask_shard, write_mask_shard


def _mask_sets(rng):
    first = MaskSet.from_binary(
        "a", rng.random((4, 10, 12)) > 0.5, predicted_iou=rng.random(4), stability_score=rng.random(4)
    )
    empty = MaskSet.from_binary("b", np.zeros((0, 7, 9), dtype=bool))
    return [first, empty]


def test_roundtrip_keeps_every_mask_and_image(tmp_path, rng):
    sets = _mask_sets(rng)
    path = tmp_path / "shard.parquet"
    write_mask_shard(path, sets)
    back = read_mask_shard(path)
    assert [s.image_id for s in back] == ["a", "b"]
    assert (back[1].height, back[1].width, len(back[1])) == (7, 9, 0)
    np.testing.assert_array_equal(back[0].decode(), sets[0].decode())
    np.testing.assert_allclose(back[0].predicted_iou, sets[0].predicted_iou)
    np.testing.assert_allclose(back[0].stability_score, sets[0].stability_score)


def test_schema_is_the_contract(tmp_path, rng):
    path = tmp_path / "shard.parquet"
    write_mask_shard(path, _mask_sets(rng))
    table = pq.read_table(path)
    assert table.schema.remove_metadata() == MASK_SHARD_SCHEMA
    np.testing.assert_array_equal(table.column("mask_id").to_pylist(), [0, 1, 2, 3])


def test_identical_bytes_for_identical_input(tmp_path, rng):
    sets = _mask_sets(rng)
    write_mask_shard(tmp_path / "1.parquet", sets)
    write_mask_shard(tmp_path / "2.parquet", sets)
    assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "2.parquet").read_bytes()


def test_bad_files_are_named(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"truncated")
    with pytest.raises(ValueError, match="bad.parquet: not a readable Parquet mask shard"):
        read_mask_shard(bad)
    other = tmp_path / "other.parquet"
    import pyarrow as pa

    pq.write_table(pa.table({"x": [1]}), other)
    with pytest.raises(ValueError, match="not an ALPS mask shard"):
        read_mask_shard(other)
