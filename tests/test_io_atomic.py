from __future__ import annotations

import os
import stat

import pytest

from alps.io import atomic_output, atomic_write_text
from alps.io.atomic import is_temp_name


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "good")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "good"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_temp_files_are_hidden_and_never_match_a_data_glob(tmp_path):
    with atomic_output(tmp_path / "x.parquet") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".x.parquet.") and is_temp_name(tmp.name)
        assert list(tmp_path.glob("*.parquet")) == []
        tmp.write_bytes(b"1")
    assert (tmp_path / "x.parquet").read_bytes() == b"1"
    # A library that picks the format from the name gets the suffix asked for (still a temp name).
    with atomic_output(tmp_path / "y.tif", suffix=".tif") as tmp:
        assert tmp.suffix == ".tif" and is_temp_name(tmp.name)
        tmp.write_bytes(b"2")
    assert not is_temp_name("y.tif") and not is_temp_name(".hidden.png")


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_outputs_get_the_umasks_permissions(tmp_path, umask):
    """mkstemp made every output 0600 whatever the umask (issue 14)."""
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "out.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~umask
