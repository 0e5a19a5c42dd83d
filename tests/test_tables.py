"""alps.tables and ``alps tables``: published tables, reproduced values beside them, errors.

Every metrics.json in these tests is SYNTHETIC: written by the test under tmp_path, marked
``"synthetic": true`` in its content, with values made from the published ones (published + 1.00) so that
every difference is known. None of them is a training result.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from alps.cli import main
from alps.tables import (
    DEFAULT_PUBLISHED_DIR,
    ISAID_ABBREVIATIONS,
    ISAID_COLUMNS,
    KEY_TITLES,
    MEDICAL_COLUMNS,
    POTSDAM_ABBREVIATIONS,
    POTSDAM_COLUMNS,
    PUBLISHED_FILES,
    TABLE_IDS,
    TABLE_KEYS,
    VALUE_TITLES,
    TableError,
    TableRow,
    build_table,
    cell_text,
    collect,
    load_published,
    normalize_key,
    round2,
    rows_from_json,
    rows_to_json,
    tidy_published,
    write_published,
    write_tables,
)
from alps.verdicts import VERDICT_COLUMNS

from conftest import REPO_ROOT

PAPER_DIR = REPO_ROOT / "results" / "paper"
SHARED_PAPER = REPO_ROOT.parent / "shared" / "paper"
DELTA = 1.0
"""Synthetic value = published + DELTA, so every difference must be +1.00."""


def _squeeze(text: str) -> str:
    """Markdown with the column padding (runs of spaces, or of dashes in the rule line) squeezed to one."""
    return re.sub(r"-{3,}", "---", re.sub(r" {2,}", " ", text))


def shared_paper() -> Path:
    """../shared/paper, or skip the test with the reason when it is not beside the clone."""
    if not SHARED_PAPER.is_dir():
        pytest.skip(f"the paper's tables {SHARED_PAPER} are absent (they live in ../shared/paper)")
    return SHARED_PAPER


@pytest.fixture(scope="module")
def published() -> dict[str, pd.DataFrame]:
    return load_published(PAPER_DIR)


# --------------------------------------------------------------------------------------------------------
# (a) the committed published tables
# --------------------------------------------------------------------------------------------------------


def test_tidy_csvs_are_what_tidy_published_builds_from_shared(tmp_path: Path) -> None:
    source = shared_paper()
    written = write_published(tidy_published(source), tmp_path)
    assert sorted(p.name for p in written) == sorted(PUBLISHED_FILES.values())
    for path in written:
        assert path.read_text() == (PAPER_DIR / path.name).read_text(), path.name


def test_tidy_csvs_agree_with_shared_values() -> None:
    """Independent of alps.tables: plain pandas, rows matched ignoring case."""
    source = shared_paper()
    for table_id, name in PUBLISHED_FILES.items():
        ours = pd.read_csv(PAPER_DIR / name, dtype={"table": str, "area_threshold": str})
        theirs = pd.read_csv(source / name, dtype={"table": str, "area_threshold": str})
        assert list(ours.columns) == list(theirs.columns), name
        keys = list(TABLE_KEYS[table_id])
        values = [c for c in ours.columns if c not in ("table", *keys)]
        if table_id == "3a":
            # The shared 3a file: its own 8 rows, then Table 3b's 8 rows again (which the tidy 3b keeps).
            own, rest = theirs.iloc[:8], theirs.iloc[8:]
            assert set(own["pretrained"]) == {"SAMRS*", "SAMRS-PL"} and len(ours) == 8
            b = pd.read_csv(PAPER_DIR / PUBLISHED_FILES["3b"])
            assert len(rest) == len(b) == 8
            assert (rest[values].to_numpy() == b[values].to_numpy()).all()
            theirs = own
        assert len(ours) == len(theirs), name
        for (_, mine), (_, shared) in zip(ours.iterrows(), theirs.iterrows(), strict=True):
            for key in keys:
                assert str(mine[key]).lower() == str(shared[key]).lower(), (name, key)
            assert (mine[values].astype(float) == shared[values].astype(float)).all(), name


def test_tidy_csvs_spelling_and_shape() -> None:
    """Runs without ../shared: the committed files follow the curation rules of results/paper/README.md."""
    counts = {"1": 56, "2": 56, "3a": 8, "3b": 8, "4": 32, "5": 5, "6": 6}
    for table_id, name in PUBLISHED_FILES.items():
        text = (PAPER_DIR / name).read_text()
        assert "Pspnet" not in text and "80K" not in text, name
        frame = pd.read_csv(PAPER_DIR / name, dtype=str)
        assert list(frame.columns[1 : 1 + len(TABLE_KEYS[table_id])]) == list(TABLE_KEYS[table_id])
        assert len(frame) == counts[table_id] and (frame["table"] == table_id).all()
        if "step" in frame:
            assert (frame["step"] == frame["step"].str.lower()).all()
    isaid = pd.read_csv(PAPER_DIR / PUBLISHED_FILES["1"])
    assert list(isaid.columns[6:]) == [*ISAID_ABBREVIATIONS, "mIoU", "mAcc"]
    potsdam = pd.read_csv(PAPER_DIR / PUBLISHED_FILES["2"])
    assert list(potsdam.columns[6:]) == [*POTSDAM_ABBREVIATIONS, "mIoU", "mAcc"]
    atlas = pd.read_csv(PAPER_DIR / PUBLISHED_FILES["6"])
    assert list(atlas.columns[3:]) == list(MEDICAL_COLUMNS)
    # The paper's Table 6 means are liver+tumour means rounded half up.
    for prefix, mean in (("dsc", "dsc_mean"), ("iou", "miou")):
        expected = [
            round2((a + b) / 2)
            for a, b in zip(atlas[f"{prefix}_liver"], atlas[f"{prefix}_tumor"], strict=True)
        ]
        assert list(atlas[mean]) == expected
    three_a = pd.read_csv(PAPER_DIR / PUBLISHED_FILES["3a"])
    assert set(three_a["pretrained"]) == {"SAMRS*", "SAMRS-PL"}


def test_results_paper_is_not_gitignored() -> None:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for name in ("README.md", *PUBLISHED_FILES.values()):
        result = subprocess.run(
            ["git", "check-ignore", "-q", f"results/paper/{name}"], cwd=REPO_ROOT, check=False
        )
        assert result.returncode == 1, f"results/paper/{name} is git-ignored"


def test_default_published_dir_is_the_repository_one() -> None:
    assert PAPER_DIR.resolve() == DEFAULT_PUBLISHED_DIR


def test_load_published_reads_the_shared_folder_as_it_is() -> None:
    """The shared 3a file repeats 3b's rows under id 3a; exact repeats (the SAMRS-PL rows) are dropped."""
    tables = load_published(shared_paper())
    assert set(tables) == set(TABLE_IDS)
    assert len(tables["3a"]) == 14  # 8 own + Binary Mask, iSAID-PL, Mixed-PL for two methods


def test_load_published_refuses_conflicting_repeats(tmp_path: Path) -> None:
    text = (PAPER_DIR / PUBLISHED_FILES["5"]).read_text().splitlines()
    conflicting = text[1].replace("70.17", "70.18").replace("80k", "80K")
    (tmp_path / PUBLISHED_FILES["5"]).write_text("\n".join([*text, conflicting]) + "\n")
    with pytest.raises(TableError, match="two rows with the keys"):
        load_published(tmp_path)


# --------------------------------------------------------------------------------------------------------
# Synthetic runs for every published row
# --------------------------------------------------------------------------------------------------------


def _kind(table_id: str, keys: dict[str, str]) -> str:
    if table_id == "6":
        return "medical"
    return "isaid" if keys["finetune_dataset"] == "iSAID" else "potsdam"


def _synthetic_metrics(path: Path, kind: str, values: dict[str, float], delta: float = DELTA) -> None:
    """Write a SYNTHETIC metrics.json whose values are published + delta (labelled as synthetic)."""
    record: dict[str, Any] = {
        "synthetic": True,
        "comment": "synthetic test data written by tests/test_tables.py, not a training result",
        "role": "finetune",
        "model": "synthetic",
        "dataset": {"kind": kind},
        "evaluated": True,
        "split": "val",
        "checkpoint": "iter_1.pth",
        "iter": 1,
        "config_hash": "0" * 64,
        "seed": 0,
        "init": "none",
        "metrics": {"aAcc": 90.0},
        "per_class": {},
    }
    if kind == "medical":
        liver, tumour = values["dsc_liver"] + delta, values["dsc_tumor"] + delta
        iou_liver, iou_tumour = values["iou_liver"] + delta, values["iou_tumor"] + delta
        # mmseg's means include background; Table 6's do not, so these must not be what the table shows.
        record["metrics"].update(
            {
                "mIoU": round((99.0 + iou_liver + iou_tumour) / 3, 2),
                "mAcc": 95.0,
                "mDice": round((99.5 + liver + tumour) / 3, 2),
            }
        )
        record["per_class"] = {
            "IoU": {"background": 99.0, "liver": iou_liver, "tumour": iou_tumour},
            "Dice": {"background": 99.5, "liver": liver, "tumour": tumour},
        }
    else:
        columns = ISAID_COLUMNS if kind == "isaid" else POTSDAM_COLUMNS
        record["metrics"].update({m: values[m] + delta for m in ("mIoU", "mAcc")})
        # Tables 4 and 5 print only mIoU/mAcc; a real file still has every class.
        record["per_class"] = {"IoU": {name: values.get(col, 50.0) + delta for col, name in columns.items()}}
        record["per_class"]["Acc"] = dict.fromkeys(columns.values(), 80.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))


def _rows_for(
    table_id: str, published: dict[str, pd.DataFrame], root: Path, write: bool = True
) -> list[TableRow]:
    rows = []
    for i, record in enumerate(published[table_id].to_dict("records")):
        keys = {k: record[k] for k in TABLE_KEYS[table_id]}
        path = root / f"table{table_id}" / f"row{i:02d}" / "metrics.json"
        if write:
            _synthetic_metrics(path, _kind(table_id, keys), record)
        rows.append(TableRow(table_id, keys, path, _kind(table_id, keys), note="synthetic run"))
    return rows


@pytest.fixture(scope="module")
def all_tables(
    tmp_path_factory: pytest.TempPathFactory, published: dict[str, pd.DataFrame]
) -> dict[str, Any]:
    """SYNTHETIC metrics (published + 1.00) for every published row of all seven tables, tabulated."""
    root = tmp_path_factory.mktemp("synthetic")
    rows = [row for t in TABLE_IDS for row in _rows_for(t, published, root / "runs")]
    out = root / "tables"
    written = write_tables(rows, out, PAPER_DIR)
    return {"rows": rows, "out": out, "written": written}


def test_every_table_is_written(all_tables: dict[str, Any]) -> None:
    out = all_tables["out"]
    expected = [out / f"table{t}.{s}" for t in TABLE_IDS for s in ("csv", "md", "tex")]
    assert all_tables["written"] == [*expected, out / "README.md", out / "tables.json"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in all_tables["written"])


@pytest.mark.parametrize("table_id", TABLE_IDS)
def test_long_csv_has_the_papers_rows_columns_values_and_differences(
    table_id: str, all_tables: dict[str, Any], published: dict[str, pd.DataFrame]
) -> None:
    paper = published[table_id]
    keys = list(TABLE_KEYS[table_id])
    values = [c for c in paper.columns if c not in ("table", *keys)]
    frame = pd.read_csv(all_tables["out"] / f"table{table_id}.csv", dtype={k: str for k in keys})
    assert list(frame.columns) == [
        "table", "row", *keys, "column", "n", "reproduced", "std", "published", "difference", "status",
        "baseline_row", "delta", "delta_low", "delta_high", "delta_n", "published_delta", "verdict", "seeds",
        "note", "metrics_path",
    ]  # fmt: skip
    assert len(frame) == len(paper) * len(values)
    # One run per row (seed 0): n 1, no spread, no interval; every compared row's verdict is inconclusive.
    assert (frame["n"] == 1).all() and frame["std"].isna().all() and frame["delta_low"].isna().all()
    assert set(frame["verdict"].dropna()) <= {"inconclusive", "baseline", "no baseline"}
    assert list(frame["column"][: len(values)]) == values
    # Rows in the given (= published) order, with the published keys and values.
    wide_pub = frame.pivot(index="row", columns="column", values="published")[values]
    assert (wide_pub.to_numpy() == paper[values].to_numpy()).all()
    firsts = frame.drop_duplicates("row")
    assert (firsts[keys].to_numpy() == paper[keys].to_numpy()).all()
    assert (frame["status"] == "compared").all()
    assert (frame["difference"] == DELTA).all()
    assert ((frame["reproduced"] - frame["published"]).round(2) == DELTA).all()


@pytest.mark.parametrize("table_id", TABLE_IDS)
def test_markdown_and_latex_have_the_papers_layout(
    table_id: str, all_tables: dict[str, Any], published: dict[str, pd.DataFrame]
) -> None:
    paper = published[table_id]
    keys = list(TABLE_KEYS[table_id])
    values = [c for c in paper.columns if c not in ("table", *keys)]
    judged = VALUE_TITLES.get(VERDICT_COLUMNS.get(table_id, "mIoU"), "mIoU")
    verdict_columns = ["n", f"Δ {judged} [95 % CI]", "Paper Δ", "Verdict"]
    header = [KEY_TITLES[k] for k in keys] + [VALUE_TITLES.get(v, v) for v in values]
    header += [*verdict_columns, "Note"]
    md = (all_tables["out"] / f"table{table_id}.md").read_text().splitlines()
    table_lines = [_squeeze(line) for line in md if line.startswith("|")]
    assert table_lines[0] == "| " + " | ".join(header) + " |"
    # Keys left-aligned, values right-aligned, the note left-aligned.
    assert [c.strip() for c in table_lines[1].strip("|").split("|")] == (
        [":---"] * len(keys) + ["---:"] * (len(values) + 3) + [":---", ":---"]
    )
    body = table_lines[2:]
    assert len(body) == len(paper)
    first = paper.iloc[0]
    cells = body[0].strip("| ").split(" | ")
    assert cells[: len(keys)] == [str(first[k]) for k in keys]
    last = values[-1]
    expected = f"{first[last] + DELTA:.2f} (paper {first[last]:.2f}, +1.00)"
    assert cells[len(keys) + len(values) - 1] == expected
    assert cells[len(keys) + len(values)] == "1"  # seeds run
    assert cells[-1] == "synthetic run"
    # The summary line counts the verdicts.
    assert any(line.startswith("Verdicts on the ") for line in md)

    tex = (all_tables["out"] / f"table{table_id}.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "Δ" not in tex and "±" not in tex  # pdflatex has no glyph for them: $\Delta$, $\pm$
    spec = "l" * len(keys) + "r" * (len(values) + 3) + "ll"
    assert f"\\begin{{tabular}}{{{spec}}}" in tex
    rows = tex.split("\\midrule\n")[1].split("\\bottomrule")[0].strip().splitlines()
    assert len(rows) == len(paper) and all(r.endswith("\\\\") for r in rows)
    assert expected in rows[0]


def test_index_summarises_every_table(all_tables: dict[str, Any], published: dict[str, pd.DataFrame]) -> None:
    summary = json.loads((all_tables["out"] / "tables.json").read_text())
    assert [t["table"] for t in summary["tables"]] == list(TABLE_IDS)
    for entry in summary["tables"]:
        n = len(published[entry["table"]])
        assert entry["rows"] == entry["rows_run"] == entry["rows_in_paper"] == n
        assert entry["values"]["compared"] == n * len(entry["value_columns"])
        assert entry["mean_difference"] == entry["max_abs_difference"] == DELTA
        assert entry["row_details"][0]["provenance"]["0"]["model"] == "synthetic"
        assert sum(entry["verdicts"].values()) == n
    readme = (all_tables["out"] / "README.md").read_text()
    assert "ALPS: An Auto-Labeling and Pre-training Scheme" in readme
    assert "[md](table3a.md)" in readme


def test_table6_means_are_liver_tumour_means(all_tables: dict[str, Any]) -> None:
    frame = pd.read_csv(all_tables["out"] / "table6.csv")
    wide = frame.pivot(index="row", columns="column", values="reproduced")
    for liver, tumour, mean in (("dsc_liver", "dsc_tumor", "dsc_mean"), ("iou_liver", "iou_tumor", "miou")):
        halves = [round2((a + b) / 2) for a, b in zip(wide[liver], wide[tumour], strict=True)]
        assert halves == list(wide[mean])
    # DoDNet baseline, synthetic = published + 1: (80.54 + 25.03) / 2 = 52.785 -> 52.79 (half up).
    assert wide.loc[1, "dsc_mean"] == 52.79
    # ... and not mmseg's mDice, which averages background too.
    row = next(r for r in all_tables["rows"] if r.table == "6")
    record = json.loads(row.metrics_path.read_text())
    assert record["synthetic"] is True
    assert record["metrics"]["mDice"] != wide.loc[1, "dsc_mean"]


def test_half_up_rounding() -> None:
    assert round2(51.785) == 51.79
    assert round2(66.275) == 66.28
    assert round2(0.125) == 0.13
    assert round2(-0.125) == -0.13


# --------------------------------------------------------------------------------------------------------
# Not run, n/a, no published value, key matching, order
# --------------------------------------------------------------------------------------------------------


def test_missing_metrics_file_reads_not_run(tmp_path: Path, published: dict[str, pd.DataFrame]) -> None:
    """Table 5 with SYNTHETIC metrics for the first two thresholds only."""
    rows = _rows_for("5", published, tmp_path / "runs", write=False)
    for row, record in list(zip(rows, published["5"].to_dict("records"), strict=True))[:2]:
        _synthetic_metrics(row.metrics_path, "potsdam", record)
    write_tables(rows, tmp_path / "out", PAPER_DIR)
    frame = pd.read_csv(tmp_path / "out" / "table5.csv", keep_default_na=False)
    not_run = frame[frame["row"] > 2]
    assert (not_run["status"] == "not run").all() and (not_run["reproduced"] == "").all()
    assert (not_run["difference"] == "").all() and (not_run["published"] != "").all()
    md = _squeeze((tmp_path / "out" / "table5.md").read_text())
    assert "| 0.5 | UperNet | Potsdam | 80k | not run (paper 65.22) | not run (paper 76.90) |" in md
    assert "| 0.1 | UperNet | Potsdam | 80k | 71.17 (paper 70.17, +1.00) | 84.73 (paper 83.73, +1.00) |" in md
    summary = json.loads((tmp_path / "out" / "tables.json").read_text())["tables"][0]
    assert summary["rows_run"] == 2 and summary["values"]["not run"] == 6


def test_class_absent_is_na_and_rows_keep_the_given_order(
    tmp_path: Path, published: dict[str, pd.DataFrame]
) -> None:
    """SYNTHETIC Table 2 rows, given in reverse order; one run has no value for clutter (None)."""
    rows = list(reversed(_rows_for("2", published, tmp_path / "runs")))[:3]
    record = json.loads(rows[0].metrics_path.read_text())
    record["per_class"]["IoU"]["clutter"] = None
    rows[0].metrics_path.write_text(json.dumps(record))
    frame = build_table("2", rows, published)
    assert list(frame.drop_duplicates("row")["method"]) == ["Segformer"] * 3
    assert list(frame.drop_duplicates("row")["type"]) == ["Head", "Backbone", "Overall"]
    cl = frame[(frame["row"] == 1) & (frame["column"] == "CL")].iloc[0]
    assert cl["status"] == "absent" and pd.isna(cl["reproduced"]) and cl["published"] == 41.12
    assert cell_text(cl["reproduced"], cl["published"], cl["difference"], cl["status"]) == "n/a (paper 41.12)"


def test_keys_match_across_spelling(tmp_path: Path, published: dict[str, pd.DataFrame]) -> None:
    """SYNTHETIC runs whose keys are spelled as the raw paper does (Pspnet, 80K, 0.30)."""
    spelled = [
        ("4", {"method": "Pspnet", "type": "backbone", "pretrained": "SAMRS PL", "finetune_dataset": "isaid",
               "step": "80K"}, "isaid", 55.17),
        ("5", {"area_threshold": "0.30", "method": "UperNet", "finetune_dataset": "Potsdam", "step": "80000"},
         "potsdam", 71.03),
        ("6", {"method": "SAM-Med2D", "pretrained": "-"}, "medical", None),
    ]  # fmt: skip
    paper_rows = {"4": 4, "5": 1, "6": 4}  # the published rows these keys name
    rows = []
    for i, (table_id, keys, kind, _) in enumerate(spelled):
        match = published[table_id].iloc[paper_rows[table_id]].to_dict()
        path = tmp_path / f"r{i}" / "metrics.json"
        _synthetic_metrics(path, kind, match)
        rows.append(TableRow(table_id, keys, path, kind))
    tables = collect(rows, published)
    assert list(tables) == ["4", "5", "6"]
    for (table_id, keys, _, miou), frame in zip(spelled, tables.values(), strict=True):
        assert (frame["status"] == "compared").all(), table_id
        assert (frame["difference"] == DELTA).all()
        assert frame.iloc[0][list(keys)].to_dict() == keys  # shown as given
        if miou is not None:
            assert frame[frame["column"] == "mIoU"]["published"].iloc[0] == miou
    assert tables["6"][tables["6"]["column"] == "dsc_liver"]["published"].iloc[0] == 80.02


@pytest.mark.parametrize(
    ("column", "a", "b"),
    [
        ("method", "Pspnet", "PspNet"),
        ("method", "Deeplabv3plus", "DEEPLABV3PLUS"),
        ("step", "80K", "80k"),
        ("step", "80k", "80000"),
        ("area_threshold", "0.3", "0.30"),
        ("area_threshold", "1.0", "1"),
        ("pretrained", "-", "baseline"),
        ("pretrained", "iSAID-PL", "isaid pl"),
    ],
)
def test_normalize_key_equal(column: str, a: str, b: str) -> None:
    assert normalize_key(column, a) == normalize_key(column, b)


@pytest.mark.parametrize(
    ("column", "a", "b"),
    [("pretrained", "SAMRS*", "SAMRS-PL"), ("step", "80k", "320k"), ("area_threshold", "0.3", "0.03")],
)
def test_normalize_key_different(column: str, a: str, b: str) -> None:
    assert normalize_key(column, a) != normalize_key(column, b)


def test_row_not_in_paper_has_no_published_value(tmp_path: Path, published: dict[str, pd.DataFrame]) -> None:
    """A SYNTHETIC run of a method the paper did not have; the paper's rows given are not invented."""
    paper_row = published["2"].iloc[0].to_dict()
    path = tmp_path / "unet" / "metrics.json"
    _synthetic_metrics(path, "potsdam", paper_row)
    keys = {k: paper_row[k] for k in TABLE_KEYS["2"]} | {"method": "UNet"}
    frame = build_table("2", [TableRow("2", keys, path, "potsdam", note="not in the paper")], published)
    assert (frame["status"] == "no published value").all() and frame["published"].isna().all()
    assert frame["row"].max() == 1
    assert cell_text(72.18, None, None, "no published value") == "72.18 (no published value)"
    assert cell_text(None, None, None, "not run") == "not run"


def _demo_metrics(path: Path, iou: dict[str, float | None]) -> None:
    """A SYNTHETIC demo (folder kind) metrics.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "synthetic": True,
        "role": "finetune",
        "dataset": {"kind": "folder", "classes": list(iou)},
        "evaluated": True,
        "metrics": {"aAcc": 91.2, "mIoU": 80.1, "mAcc": 88.0},
        "per_class": {"IoU": iou, "Acc": dict.fromkeys(iou, 90.0)},
    }
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("published_dir", [PAPER_DIR, None])
def test_demo_table_without_published_values(tmp_path: Path, published_dir: Path | None) -> None:
    """SYNTHETIC demo runs: classes other/vegetation/water; one not run; no published table."""
    runs = tmp_path / "runs"
    _demo_metrics(runs / "overall" / "metrics.json", {"other": 70.0, "vegetation": 85.5, "water": 90.25})
    _demo_metrics(runs / "head" / "metrics.json", {"other": 71.0, "vegetation": 80.0, "water": None})
    rows = [
        TableRow("demo", {"method": "segformer-b0", "type": t}, runs / d / "metrics.json", "folder")
        for t, d in (("Baseline", "none"), ("Overall", "overall"), ("Head", "head"))
    ]
    written = write_tables(rows, tmp_path / "out", published_dir)
    names = ["tabledemo.csv", "tabledemo.md", "tabledemo.tex", "README.md", "tables.json"]
    assert [p.name for p in written] == names
    frame = pd.read_csv(tmp_path / "out" / "tabledemo.csv")
    assert list(frame["column"][:5]) == ["other", "vegetation", "water", "mIoU", "mAcc"]
    assert set(frame[frame["row"] == 1]["status"]) == {"not run"}
    assert set(frame[frame["row"] == 2]["status"]) == {"no published value"}
    assert frame[(frame["row"] == 3) & (frame["column"] == "water")]["status"].iloc[0] == "absent"
    md = _squeeze((tmp_path / "out" / "tabledemo.md").read_text())
    assert "| segformer-b0 | Baseline | not run | not run | not run | not run | not run |" in md
    assert "| segformer-b0 | Overall | 70.00 (no published value) | 85.50 (no published value) |" in md
    assert "| 71.00 (no published value) | 80.00 (no published value) | n/a |" in md


# --------------------------------------------------------------------------------------------------------
# (c) errors
# --------------------------------------------------------------------------------------------------------


def _isaid_row(tmp_path: Path, published: dict[str, pd.DataFrame]) -> TableRow:
    """One SYNTHETIC Table 1 run (UperNet baseline, published + 1)."""
    return _rows_for("1", published, tmp_path / "runs")[0]


def _edit(path: Path, change: Any) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(role="pretrain"), "is not a fine-tune result \\(role 'pretrain'"),
        (lambda r: r.update(evaluated=False), "holds no evaluation"),
        (lambda r: r["per_class"]["IoU"].pop("Harbor"), "lacks the class 'Harbor' needed for column HA"),
        (lambda r: r.pop("per_class"), "has no per_class IoU"),
        (lambda r: r["metrics"].pop("mIoU"), "metrics has no mIoU"),
        (lambda r: r["metrics"].update(mAcc="high"), "metrics mAcc is 'high', not a number"),
        (lambda r: r["metrics"].update(mIoU=6452), "outside 0-100"),
        (lambda r: r["dataset"].update(kind="potsdam"), "is a potsdam result, but its table 1 row is isaid"),
    ],
)
def test_bad_metrics_file_is_a_clear_error(
    tmp_path: Path, published: dict[str, pd.DataFrame], change: Any, message: str
) -> None:
    row = _isaid_row(tmp_path, published)
    _edit(row.metrics_path, change)
    with pytest.raises(TableError, match=message) as info:
        write_tables([row], tmp_path / "out", PAPER_DIR)
    assert str(row.metrics_path) in str(info.value)
    assert not (tmp_path / "out").exists()  # nothing written on error


def test_case_insensitive_class_lookup(tmp_path: Path, published: dict[str, pd.DataFrame]) -> None:
    row = _isaid_row(tmp_path, published)
    _edit(
        row.metrics_path,
        lambda r: r["per_class"].update(IoU={k.lower(): v for k, v in r["per_class"]["IoU"].items()}),
    )
    assert (build_table("1", [row], published)["status"] == "compared").all()


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "is not valid JSON"), ("[1, 2]", "is not a JSON object")],
)
def test_malformed_metrics_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(content)
    row = TableRow("5", {"area_threshold": "0.1", "method": "UperNet", "finetune_dataset": "Potsdam",
                         "step": "80k"}, path, "potsdam")  # fmt: skip
    with pytest.raises(TableError, match=message):
        write_tables([row], tmp_path / "out", None)


def test_medical_without_dice(tmp_path: Path, published: dict[str, pd.DataFrame]) -> None:
    row = _rows_for("6", published, tmp_path)[0]
    _edit(row.metrics_path, lambda r: r["per_class"].pop("Dice"))
    with pytest.raises(TableError, match="has no per_class Dice"):
        build_table("6", [row], published)


def test_row_errors(tmp_path: Path, published: dict[str, pd.DataFrame]) -> None:
    row = _isaid_row(tmp_path, published)
    with pytest.raises(TableError, match="keys must be finetune_dataset, method, type, pretrained, step"):
        build_table("1", [TableRow("1", {"method": "UperNet"}, row.metrics_path, "isaid")], published)
    same = TableRow("1", {**row.keys, "method": "UPERNET", "step": "80K"}, row.metrics_path, "isaid")
    with pytest.raises(TableError, match="rows 1 and 2 of table 1 have the same keys"):
        build_table("1", [row, same], published)
    with pytest.raises(TableError, match="a table 1 row was given to table 2"):
        build_table("2", [row], published)
    with pytest.raises(TableError, match="table id must be"):
        TableRow("../x", {}, row.metrics_path, "isaid")
    with pytest.raises(TableError, match="no rows"):
        write_tables([], tmp_path / "out", None)


# --------------------------------------------------------------------------------------------------------
# JSON rows and the CLI
# --------------------------------------------------------------------------------------------------------


def test_rows_json_round_trip(tmp_path: Path) -> None:
    keys5 = {"area_threshold": 0.3, "method": "UperNet", "finetune_dataset": "Potsdam", "step": "80k"}
    rows = [
        TableRow("5", keys5, "runs/t5/metrics.json", "potsdam", note="synthetic"),
        TableRow("6", {"method": "DoDNet", "pretrained": "ATLAS-PL"}, tmp_path / "m.json", "medical"),
    ]  # fmt: skip
    assert rows[0].keys["area_threshold"] == "0.3" and rows[0].metrics_path == Path("runs/t5/metrics.json")
    assert rows_from_json(rows_to_json(rows)) == rows
    based = rows_from_json(rows_to_json(rows), base_dir=tmp_path)
    assert based[0].metrics_path == tmp_path / "runs/t5/metrics.json"
    assert based[1].metrics_path == tmp_path / "m.json"
    assert len({*rows}) == 2  # hashable


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"table": "1"}', "must be a JSON list"),
        ("[3]", "row 0: expected a JSON object"),
        ('[{"table": "1", "keys": {}}]', "row 0: missing metrics_path, dataset_kind"),
        ('[{"table": "1", "keys": {}, "metrics_path": "m", "dataset_kind": "isaid", "x": 1}]', "unknown x"),
        ('[{"table": "1 2", "keys": {}, "metrics_path": "m", "dataset_kind": "isaid"}]', "row 0: table id"),
    ],
)
def test_rows_json_errors(text: str, message: str) -> None:
    with pytest.raises(TableError, match=message):
        rows_from_json(text)


def test_cli_tables(
    tmp_path: Path, published: dict[str, pd.DataFrame], capsys: pytest.CaptureFixture[str]
) -> None:
    """``alps tables --rows`` on SYNTHETIC Table 3a runs (one row not run)."""
    rows = _rows_for("3a", published, tmp_path / "runs")
    rows[-1].metrics_path.unlink()
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(rows_to_json(rows))
    out = tmp_path / "tables"
    assert main(["tables", "--rows", str(rows_file), "--out", str(out), "--published", str(PAPER_DIR)]) == 0
    frame = pd.read_csv(out / "table3a.csv")
    assert set(frame[frame["row"] == 8]["status"]) == {"not run"}
    assert set(frame[frame["row"] < 8]["status"]) == {"compared"}
    # Default published folder: the repository's results/paper.
    assert main(["tables", "--rows", str(rows_file), "--out", str(tmp_path / "default")]) == 0
    assert (tmp_path / "default" / "table3a.csv").read_text() == (out / "table3a.csv").read_text()

    _edit(rows[0].metrics_path, lambda r: r.update(role="pretrain"))
    assert main(["tables", "--rows", str(rows_file), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "alps tables: error:" in err and str(rows[0].metrics_path) in err and "role 'pretrain'" in err
    assert main(["tables", "--rows", str(tmp_path / "absent.json"), "--out", str(out)]) == 2
    with pytest.raises(SystemExit):
        main(["tables", "--out", str(out)])


# --------------------------------------------------------------------------------------------------------
# The paper's configuration, planned by alps.study and tabulated by `alps tables --config`
# --------------------------------------------------------------------------------------------------------


def test_paper_config_tables_from_synthetic_runs(tmp_path: Path, published: dict[str, pd.DataFrame]) -> None:
    """SYNTHETIC metrics for every fine-tuning that config/paper.yaml plans, through `alps tables --config`.

    Each run's metrics.json is written once, at the path the workflow gives it, from the first published
    row it fills (+1.00, and -0.20, 0, +0.20 for seeds 0, 1, 2, so the mean is +1.00 and the std 0.20;
    the UNet rows, which the paper lacks, get made-up values). Every table must come out with the paper's
    rows and columns, its published values, the differences, three seeds per cell and a verdict per row.
    """
    import yaml

    from alps.study import iter_table_rows, plan_study

    config = yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    study = plan_study(config, PAPER_DIR)
    written: set[str] = set()
    for row, paths in iter_table_rows(study):
        if not paths or paths[0] in written:
            continue
        paper = published[row.table]
        match = paper[
            pd.concat(
                [
                    paper[k].map(lambda v, k=k: normalize_key(k, v)) == normalize_key(k, row.keys[k])
                    for k in row.keys
                ],
                axis=1,
            ).all(axis=1)
        ]
        if len(match):
            values = match.iloc[0].to_dict()
        else:  # the UNet rows of Table 6
            values = {"dsc_liver": 70.0, "dsc_tumor": 20.0, "iou_liver": 60.0, "iou_tumor": 15.0}
        for seed, path in paths.items():
            _synthetic_metrics(Path(path), row.dataset_kind, values, delta=DELTA + (seed - 1) * 0.2)
            _edit(Path(path), lambda r, seed=seed: r.update(seed=seed))
            written.add(path)
    assert len(written) == len(study.finetune_runs) == 142 * 3

    out = tmp_path / "tables"
    args = [
        "tables",
        "--config",
        str(REPO_ROOT / "config/paper.yaml"),
        "--results-dir",
        str(tmp_path / "results"),
    ]
    assert main([*args, "--out", str(out), "--published", str(PAPER_DIR)]) == 0

    for table_id in TABLE_IDS:
        paper = published[table_id]
        keys = list(TABLE_KEYS[table_id])
        values = [c for c in paper.columns if c not in ("table", *keys)]
        frame = pd.read_csv(out / f"table{table_id}.csv", dtype={k: str for k in keys}, keep_default_na=False)
        rows = frame.drop_duplicates("row")
        extra = 2 if table_id == "6" else 0  # UNet baseline and ATLAS-PL
        assert len(rows) == len(paper) + extra, table_id
        assert list(frame["column"][: len(values)]) == values
        # The paper's rows, in its order, with its published values.
        firsts = rows.iloc[: len(paper)]
        for k in keys:
            assert [normalize_key(k, v) for v in firsts[k]] == [normalize_key(k, v) for v in paper[k]]
        compared = frame[frame["status"] == "compared"]
        assert (
            (compared["reproduced"].astype(float) - compared["published"].astype(float)).round(2)
            == compared["difference"].astype(float)
        ).all()
        if table_id == "6":
            # The paper's medical models are not in mmsegmentation: not run; UNet has no published value.
            assert set(frame["status"][: len(paper) * len(values)]) == {"not run"}
            assert set(frame["status"][len(paper) * len(values) :]) == {"no published value"}
        else:
            assert (frame["status"] == "compared").all(), table_id
            # Where a run's values came from this table's row, the difference is exactly +1.00; Tables 3a,
            # 3b and 4 repeat runs of Tables 1-2, whose printed values differ in a few cells.
            if table_id in ("1", "2", "5"):
                assert (compared["difference"].astype(float) == DELTA).all(), table_id
        run = frame[frame["status"] != "not run"]
        assert (run["n"].astype(str) == "3").all() and (run["seeds"] == "0;1;2").all(), table_id
        assert (run[run["column"].isin(["mIoU", "dsc_mean"])]["std"].astype(float) == 0.2).all(), table_id
    metrics = json.loads((out / "tables.json").read_text())
    assert [t["table"] for t in metrics["tables"]] == list(TABLE_IDS)
    # Every row has a verdict; each of the eight methods has its Baseline row in Tables 1 and 2.
    verdicts = {t["table"]: t["verdicts"] for t in metrics["tables"]}
    assert all(sum(t["verdicts"].values()) == t["rows"] for t in metrics["tables"])
    assert verdicts["1"]["baseline"] == verdicts["2"]["baseline"] == 8
    assert verdicts["4"]["baseline"] == 16 and verdicts["5"]["baseline"] == 1
    # Seed offsets cancel in the paired delta: our delta is exactly the paper's, with no spread, so every
    # compared row reproduces it (Table 2 has one zero delta: inconclusive).
    assert verdicts["1"]["reproduced"] == 48 and verdicts["5"]["reproduced"] == 4
    assert (verdicts["2"]["reproduced"], verdicts["2"]["inconclusive"]) == (47, 1)
    # Table 6: the paper's three models are not run (baselines included); UNet has no published delta.
    six = verdicts["6"]
    assert (six["baseline"], six["no published delta"], six["not run"]) == (1, 1, 6)


def test_study_tables_and_their_dvc_metrics(tmp_path: Path) -> None:
    """SYNTHETIC runs at the paths the demo config plans: the table files and metrics/tables.json agree."""
    import yaml

    from alps.study import iter_table_rows, plan_study
    from alps.tables import write_study_tables

    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    for number, (_, paths) in enumerate(iter_table_rows(plan_study(config))):
        (path,) = paths.values()  # the demo trains one seed
        if not Path(path).exists():
            _demo_metrics(Path(path), {"other": 10.0 + number, "vegetation": 80.0, "water": 90.0})
    out, metrics_path, log = (
        tmp_path / "tables",
        tmp_path / "metrics" / "tables.json",
        tmp_path / "tables.log",
    )
    written = write_study_tables(config, out, metrics_path, log=log)
    assert written[-1] == metrics_path and log.read_text().count("wrote ") == len(written)
    metrics = json.loads(metrics_path.read_text())
    assert set(metrics) == {"table1", "table3b", "table5"}
    for table in ("1", "3b", "5"):
        frame = pd.read_csv(out / f"table{table}.csv", dtype=str, keep_default_na=False)
        summary = frame[frame["column"].isin(["mIoU", "mAcc"])]
        assert len(summary) == len(metrics[f"table{table}"]) * 2
        for _, line in summary.iterrows():
            label = " | ".join(line[k] for k in TABLE_KEYS[table])
            entry = metrics[f"table{table}"][label]
            assert entry[line["column"]] == float(line["reproduced"]) and entry[f"{line['column']}_n"] == 1
            assert f"{line['column']}_std" not in entry  # one seed: no spread
        # One seed: every compared row is judged, with a delta but no interval, and no published delta.
        verdicts = {label: entry.get("verdict") for label, entry in metrics[f"table{table}"].items()}
        assert set(verdicts.values()) <= {"baseline", "no published delta"}
