from __future__ import annotations

import pytest

from alps.io import atomic_output, atomic_write_text


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "good")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "good"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_temp_file_keeps_suffix_for_format_detection(tmp_path):
    with atomic_output(tmp_path / "x.parquet") as tmp:
        assert tmp.suffix == ".parquet" and tmp.parent == tmp_path
        tmp.write_bytes(b"1")
    assert (tmp_path / "x.parquet").read_bytes() == b"1"
