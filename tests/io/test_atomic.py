from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from alps.io import atomic_output, atomic_write_text
from alps.io.atomic import BUILD_OWNER, atomic_directory, is_temp_name


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
    """mkstemp made every output 0600 whatever the umask."""
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "out.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~umask


# A build that stops in the middle: it prints its build folder, then waits to be killed.
_BUILDER = """
import sys, time
from alps.io.atomic import atomic_directory
with atomic_directory(sys.argv[1]) as built:
    (built / "part.png").write_bytes(b"half")
    print(built, flush=True)
    time.sleep(120)
"""


def _start_builder(target: Path) -> tuple[subprocess.Popen[str], Path]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-c", _BUILDER, str(target)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    built = Path(process.stdout.readline().strip())
    assert built.is_dir(), "the builder did not start its build"
    return process, built


def _kill(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _build(target: Path, text: str) -> None:
    with atomic_directory(target) as built:
        (built / "part.png").write_text(text)


def test_a_killed_builds_folder_is_swept_by_the_next_build(tmp_path):
    target = tmp_path / "shard_0000"
    process, built = _start_builder(target)
    _kill(process)  # SIGKILL: no cleanup runs
    assert built.is_dir() and built.name.startswith(f".shard_0000.tmp-{process.pid}-")
    _build(target, "whole")
    assert not built.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard_0000"]
    # The owner marker stays out of the output.
    assert sorted(p.name for p in target.iterdir()) == ["part.png"]
    assert (target / "part.png").read_text() == "whole"


def test_live_builds_and_look_alikes_survive_the_sweep(tmp_path):
    target = tmp_path / "out"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = int(gone.stdout)
    owner = {"pid": dead, "host": socket.gethostname(), "start": None}

    def folder(name: str, marker: dict | None) -> Path:
        path = tmp_path / name
        path.mkdir()
        if marker is not None:
            (path / BUILD_OWNER).write_text(json.dumps(marker))
        return path

    keep = [
        folder(f".out.tmp-{dead}-0123abcd", None),  # our name, but no marker of ours: not ours
        folder(f".out.tmp-{dead}-0123abcdx", owner),  # not exactly our pattern
        folder(f".out.tmp-{dead + 1}-0123abcd", owner),  # the marker names another process
        folder(f".other.tmp-{dead}-0123abcd", owner),  # another target's build
        folder(
            f".out.tmp-{dead}-89abcdef", {**owner, "host": "another-node"}
        ),  # its process is not ours to see
    ]
    (tmp_path / f".out.tmp-{dead}-fedcba98").write_text("a file")  # not a folder
    keep.append(tmp_path / f".out.tmp-{dead}-fedcba98")
    stale = folder(f".out.tmp-{dead}-76543210", owner)
    process, live = _start_builder(target)
    try:
        _build(target, "first")
        assert live.is_dir() and (live / "part.png").read_bytes() == b"half"  # a running build is left alone
        assert all(os.path.lexists(path) for path in keep)
        assert not stale.exists()
    finally:
        _kill(process)
    _build(target, "second")  # now that its process is gone, its folder goes too
    assert not live.exists()
    assert all(os.path.lexists(path) for path in keep)
    assert (target / "part.png").read_text() == "second"
