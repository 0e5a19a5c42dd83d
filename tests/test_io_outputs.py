"""The one output rule (``alps.io.outputs``): what a command may replace, what it refuses, and kills."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from alps.io import atomic
from alps.io.outputs import (
    OWNED_RECORD,
    OutputSet,
    OutputSetError,
    check_separate,
    folder_problems,
    output_file,
    output_folder,
)
from alps.label_folder import repair_label_output

WRITER = "alps tester"


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _write(out: Path, files: dict[str, str], writer: str = WRITER) -> None:
    with output_folder(out, writer) as built:
        for name, text in files.items():
            (built / name).parent.mkdir(parents=True, exist_ok=True)
            (built / name).write_text(text)


def test_a_folder_is_created_then_replaced_whole_with_a_record_of_its_files(tmp_path):
    out = tmp_path / "out"
    _write(out, {"labels/a.png": "1", "labels/b.png": "2", "stats.json": "{}"})
    record = json.loads((out / OWNED_RECORD).read_text())
    assert record["writer"] == WRITER and sorted(record["files"]) == [
        "labels/a.png",
        "labels/b.png",
        "stats.json",
    ]
    _write(out, {"labels/a.png": "3"})
    assert _tree(out).keys() == {"labels/a.png", OWNED_RECORD}  # b.png and stats.json of the old run gone
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no build folder or old copy left beside it


def test_an_empty_folder_and_a_recorded_file_deleted_since_are_fine(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".snakemake_timestamp").write_text("")  # Snakemake's marker in a directory() output
    _write(out, {"card.json": "1", "x.png": "1"})
    (out / "card.json").unlink()  # what Snakemake does with a declared output before it reruns the job
    _write(out, {"card.json": "2"})
    assert (out / "card.json").read_text() == "2"


@pytest.mark.parametrize(
    ("spoil", "fragment"),
    [
        (lambda out: (out / "notes.txt").write_text("mine"), "notes.txt (not written by alps tester)"),
        (lambda out: (out / "labels" / "a.png").write_text("edited"), "a.png (changed since alps tester"),
        (lambda out: (out / OWNED_RECORD).unlink(), "there is no .alps-output.json"),
    ],
)
def test_foreign_or_edited_files_stop_the_run_and_stay_as_they_are(tmp_path, spoil, fragment):
    out = tmp_path / "out"
    _write(out, {"labels/a.png": "1"})
    spoil(out)
    before = _tree(out)
    with pytest.raises(OutputSetError, match=re.escape(fragment)):
        _write(out, {"labels/a.png": "2"})
    assert _tree(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_another_commands_output_is_not_replaced(tmp_path):
    out = tmp_path / "out"
    _write(out, {"a.png": "1"}, writer="alps paint")
    with pytest.raises(OutputSetError, match="written by 'alps paint', not alps gallery"):
        _write(out, {"a.png": "2"}, writer="alps gallery")
    assert (out / "a.png").read_text() == "1"


def test_a_command_may_replace_the_same_kind_of_output_of_another(tmp_path):
    """pl/<set> is written by pl-dataset, or by apply-class-map for a set with a class map."""
    out = tmp_path / "pl"
    _write(out, {"dataset_card.json": "named"}, writer="alps apply-class-map")
    with output_folder(out, "alps pl-dataset", replaces=["alps apply-class-map"]) as built:
        (built / "dataset_card.json").write_text("clusters")
    assert json.loads((out / OWNED_RECORD).read_text())["writer"] == "alps pl-dataset"


def test_a_link_or_a_file_as_the_output_folder_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    assert folder_problems(tmp_path / "link", WRITER) == [
        f"{tmp_path / 'link'} is a symbolic link; give the folder itself"
    ]
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputSetError, match="exists and is not a folder"):
        _write(tmp_path / "file", {"a": "1"})
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize(
    ("out", "source", "how"),
    [
        ("data", "data", "is"),  # OUT equal to an input folder
        (".", "data/masks.parquet", "contains"),  # `alps paint masks.parquet ... .`
        ("data/pl", "data", "lies inside"),  # inside an input folder
    ],
)
def test_an_output_overlapping_an_input_is_refused(tmp_path, out, source, how):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "masks.parquet").write_text("input")
    with pytest.raises(OutputSetError, match=f"{how} the input"):
        check_separate(tmp_path / out, [tmp_path / source], WRITER)
    check_separate(tmp_path / "elsewhere", [tmp_path / source], WRITER)  # beside it is fine
    # An output beside an input file is fine too (`alps paint m.parquet f.npz km.npz painted/`).
    check_separate(tmp_path / "data" / "painted", [tmp_path / "data" / "masks.parquet"], WRITER)


@pytest.mark.parametrize("dies_at", ["build", "exchange", "removing the old folder"])
def test_a_kill_at_any_point_leaves_the_old_output_or_the_new_one(tmp_path, monkeypatch, dies_at):
    out = tmp_path / "out"
    _write(out, {"a.png": "old", "b.png": "old"})
    old = _tree(out)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    if dies_at == "exchange":
        monkeypatch.setattr(atomic, "rename_exchange", killed)
    elif dies_at == "removing the old folder":
        monkeypatch.setattr(atomic, "remove_build", killed)
    with pytest.raises(KeyboardInterrupt), output_folder(out, WRITER) as built:
        (built / "a.png").write_text("new")
        if dies_at == "build":
            killed()
    monkeypatch.undo()
    if dies_at == "removing the old folder":  # swapped in: the new output is whole
        assert _tree(out).keys() == {"a.png", OWNED_RECORD} and (out / "a.png").read_text() == "new"
    else:
        assert _tree(out) == old
    # The next run replaces it and sweeps what the killed one left beside it (it carries our marker).
    _write(out, {"a.png": "next"})
    assert (out / "a.png").read_text() == "next"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


_SLOW_BUILDER = """
import sys, time
from alps.io.outputs import output_folder
with output_folder(sys.argv[1], "alps tester") as built:
    (built / "part.png").write_text("half")
    print("building", flush=True)
    time.sleep(120)
"""


def test_sigkill_mid_build_leaves_the_old_output_and_the_next_run_sweeps(tmp_path):
    out = tmp_path / "out"
    _write(out, {"a.png": "old"})
    old = _tree(out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_BUILDER, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "building"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert _tree(out) == old
    assert len(list(tmp_path.iterdir())) == 2  # the killed build beside it
    _write(out, {"a.png": "new"})
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_one_file_is_replaced_only_when_it_is_the_commands_own(tmp_path):
    out = tmp_path / "polygons.gpkg"
    for text in ("first", "second"):
        with output_file(out, WRITER) as tmp:
            tmp.write_text(text)
    assert out.read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".polygons.gpkg.alps-output.json", "polygons.gpkg"]
    out.write_text("edited by hand")
    with pytest.raises(OutputSetError, match="changed since alps tester wrote it"), output_file(out, WRITER):
        pass
    mine = tmp_path / "thesis.gpkg"
    mine.write_text("mine")
    with pytest.raises(OutputSetError, match="was not written by alps tester"), output_file(mine, WRITER):
        pass
    with pytest.raises(OutputSetError, match="is the input"), output_file(mine, WRITER, inputs=[mine]):
        pass
    assert mine.read_text() == "mine" and out.read_text() == "edited by hand"


# ------------------------------------------------------------------------- alps label's journal


def _published(out: Path) -> OutputSet:
    outputs = OutputSet(out, "alps-label", "alps label")
    with outputs:
        (outputs.build_dir / "labels").mkdir()
        (outputs.build_dir / "labels" / "a.png").write_text("old")
        outputs.publish()
    return outputs


def test_a_forged_journal_cannot_get_user_files_deleted(tmp_path):
    """Defect: OUT/.alps-label.publish.json naming thesis.txt and mydata/ under `retire` deleted them."""
    out = tmp_path / "out"
    outputs = _published(out)
    (out / "thesis.txt").write_text("four years")
    (out / "mydata").mkdir()
    (out / "mydata" / "x.csv").write_text("1,2")
    record = json.loads(outputs.record_path.read_text())
    journal = {"retire": ["thesis.txt", "mydata", "labels"], "publish": ["labels"], "record": record}
    outputs.journal_path.write_text(json.dumps(journal))
    before = _tree(out)
    with pytest.raises(OutputSetError, match=r"thesis\.txt \(not written by alps label\)"):
        repair_label_output(out)
    with pytest.raises(OutputSetError, match="cannot be finished"), outputs:
        pass
    assert _tree(out) == before


def test_a_forged_journal_cannot_publish_over_a_user_file(tmp_path):
    out = tmp_path / "out"
    outputs = _published(out)
    (out / "notes.txt").write_text("mine")
    outputs.build_dir.mkdir()
    (outputs.build_dir / "notes.txt").write_text("overwritten")
    record = {"format": "alps-output-set/1", "entries": ["notes.txt"], "files": {}}
    outputs.journal_path.write_text(json.dumps({"retire": [], "publish": ["notes.txt"], "record": record}))
    with pytest.raises(OutputSetError, match=r"notes\.txt \(would be overwritten\)"):
        repair_label_output(out)
    assert (out / "notes.txt").read_text() == "mine"


def test_a_cut_publication_is_finished_by_the_next_command_even_one_that_fails(tmp_path, monkeypatch, capsys):
    """Defect: a kill while publishing left old and new outputs mixed, and a rerun that failed on its
    arguments did not repair it."""
    from alps.cli import main

    out = tmp_path / "out"
    outputs = _published(out)
    replace, calls = os.replace, []

    def dies_on_the_second_rename(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # the journal, the old labels aside, then killed before the new ones come in
            raise KeyboardInterrupt
        return replace(src, dst)

    with outputs:
        (outputs.build_dir / "labels").mkdir()
        (outputs.build_dir / "labels" / "a.png").write_text("new")
        monkeypatch.setattr(os, "replace", dies_on_the_second_rename)
        with pytest.raises(KeyboardInterrupt):
            outputs.publish()
        monkeypatch.setattr(os, "replace", replace)
    assert not (out / "labels").exists() and outputs.journal_path.exists()  # half published
    assert main(["label", str(tmp_path / "no-such-images"), str(out)]) == 2
    assert "no-such-images" in capsys.readouterr().err
    assert (out / "labels" / "a.png").read_text() == "new" and not outputs.journal_path.exists()


def test_the_current_directory_is_never_an_output_folder(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    for out in (".", str(tmp_path)):
        with pytest.raises(OutputSetError, match="the current directory"), output_folder(out, WRITER):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
