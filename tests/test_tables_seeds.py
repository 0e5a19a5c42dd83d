"""alps.tables over several seeds: aggregation of seed metrics files, missing seeds, verdicts, rendering.

Every metrics.json here is SYNTHETIC (written by the test, ``"synthetic": true``), with hand-made mIoU per
seed so that every mean, standard deviation, interval and verdict is known.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from alps.tables import TableError, TableRow, rows_from_json, rows_to_json, table_metrics, write_tables

from conftest import REPO_ROOT

PAPER_DIR = REPO_ROOT / "results" / "paper"
AREAS = ("0.1", "0.3", "0.5", "0.7", "1.0")
"""Table 5's rows; published mIoU 70.17, 71.03 (the baseline), 65.22, 47.81, 42.99."""

MIOU: dict[str, dict[int, float]] = {
    "0.1": {0: 70.1, 1: 71.2, 2: 70.6},  # deltas -0.9, -0.8, -0.9: reproduces the paper's -0.86
    "0.3": {0: 71.0, 1: 72.0, 2: 71.5},
    "0.5": {0: 71.1, 1: 72.2, 2: 71.4},  # deltas +0.1, +0.2, -0.1: not the paper's -5.81
    "0.7": {0: 50.0},  # seeds 1 and 2 not run: n = 1, inconclusive
    "1.0": {0: 60.0, 1: 80.0},  # deltas -11, +8: the interval holds 0 and -28.04, inconclusive
}


def write_metrics(path: Path, miou: float, seed: int) -> None:
    """A SYNTHETIC Potsdam fine-tuning result of one seed."""
    record = {
        "synthetic": True,
        "role": "finetune",
        "dataset": {"kind": "potsdam"},
        "evaluated": True,
        "seed": seed,
        "metrics": {"mIoU": miou, "mAcc": miou + 10.0},
        "per_class": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def table5_rows(root: Path, seeds: tuple[int, ...] = (0, 1, 2)) -> list[TableRow]:
    """Table 5 rows with a metrics.json per seed in ``MIOU`` (the others planned but absent)."""
    rows = []
    for area in AREAS:
        paths = {seed: root / area / f"seed{seed}" / "metrics.json" for seed in seeds}
        for seed, miou in MIOU[area].items():
            if seed in paths:
                write_metrics(paths[seed], miou, seed)
        keys = {"area_threshold": area, "method": "UperNet", "finetune_dataset": "Potsdam", "step": "80k"}
        rows.append(TableRow("5", keys, paths, "potsdam"))
    return rows


@pytest.fixture
def table5(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    out = tmp_path / "tables"
    write_tables(table5_rows(tmp_path / "runs"), out, PAPER_DIR)
    return out, read_long(out / "table5.csv")


def read_long(path: Path) -> pd.DataFrame:
    """A long table: numbers as numbers (NaN where empty), the text columns as text ("" where empty)."""
    frame = pd.read_csv(path, dtype={"area_threshold": str, "verdict": str, "seeds": str})
    frame[["verdict", "seeds"]] = frame[["verdict", "seeds"]].fillna("")
    return frame.set_index(["area_threshold", "column"])


def test_each_value_is_the_mean_of_its_seeds_with_std_and_n(table5: tuple[Path, pd.DataFrame]) -> None:
    _, frame = table5
    baseline = frame.loc[("0.3", "mIoU")]
    assert (baseline["n"], baseline["reproduced"], baseline["std"]) == (3, 71.5, 0.5)
    assert frame.loc[("0.1", "mIoU"), "std"] == 0.55  # 70.1, 71.2, 70.6: sample std 0.5508
    assert baseline["seeds"] == "0;1;2" and baseline["verdict"] == "baseline"
    assert frame.loc[("0.3", "mAcc"), "reproduced"] == 81.5 and frame.loc[("0.3", "mAcc"), "verdict"] == ""
    assert frame.loc[("0.1", "mIoU"), "difference"] == pytest.approx(70.63 - 70.17)


def test_delta_interval_and_verdict_per_row(table5: tuple[Path, pd.DataFrame]) -> None:
    _, frame = table5
    miou = frame.xs("mIoU", level="column")
    expected = ["reproduced", "baseline", "not reproduced", "inconclusive", "inconclusive"]
    assert list(miou["verdict"]) == expected
    assert list(miou["baseline_row"].fillna(0)) == [2, 0, 2, 2, 2]
    first = miou.loc["0.1"]
    assert (first["delta"], first["delta_low"], first["delta_high"]) == (-0.87, -1.01, -0.72)
    assert (first["delta_n"], first["published_delta"]) == (3, -0.86)
    # Every value column carries its delta; only the verdict column a verdict.
    assert frame.loc[("0.1", "mAcc"), "delta"] == -0.87 and frame.loc[("0.1", "mAcc"), "verdict"] == ""


def test_a_missing_seed_is_left_out_and_shown(table5: tuple[Path, pd.DataFrame]) -> None:
    out, frame = table5
    row = frame.loc[("0.7", "mIoU")]
    assert (row["n"], row["reproduced"], row["seeds"]) == (1, 50.0, "0") and pd.isna(row["std"])
    assert (row["delta_n"], row["delta"]) == (1, -21.0) and pd.isna(row["delta_low"])  # n = 1: no interval
    assert row["status"] == "compared"
    md = (out / "table5.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| 0.7 "))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[4] == "50.00 (paper 47.81, +2.19)"  # one seed: no ± part
    assert cells[6:10] == ["1 of 3", "-21.00 (n = 1)", "-23.22", "inconclusive"]


def test_markdown_and_latex_show_mean_std_and_the_verdict_counts(table5: tuple[Path, pd.DataFrame]) -> None:
    out, _ = table5
    md = (out / "table5.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| 0.1 "))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[4] == "70.63 ± 0.55 (paper 70.17, +0.46)"
    assert cells[6:10] == ["3", "-0.87 [-1.01, -0.72]", "-0.86", "reproduced"]
    counts = "1 reproduced, 1 not reproduced, 2 inconclusive, 0 no published delta; 1 baseline"
    assert counts in md
    tex = (out / "table5.tex").read_text()
    assert "70.63 $\\pm$ 0.55 (paper 70.17, +0.46)" in tex
    assert "$\\Delta$ mIoU [95 \\% CI]" in tex and counts in tex
    summary = json.loads((out / "tables.json").read_text())["tables"][0]
    assert summary["verdicts"]["reproduced"] == 1 and summary["verdicts"]["inconclusive"] == 2
    details = summary["row_details"]
    assert details[0]["delta"] == {"n": 3, "mean": -0.87, "std": 0.06, "low": -1.01, "high": -0.72}
    assert details[3]["seeds"] == [0] and details[3]["planned_runs"] == 3
    assert "1 reproduced, 1 not reproduced, 2 inconclusive, 1 baseline" in (out / "README.md").read_text()


def test_one_seed_is_inconclusive_against_a_published_delta(tmp_path: Path) -> None:
    rows = table5_rows(tmp_path / "runs", seeds=(0,))
    frame = read_long(write_tables(rows, tmp_path / "out", PAPER_DIR)[0])
    verdicts = frame.xs("mIoU", level="column")["verdict"]
    assert list(verdicts) == ["inconclusive", "baseline", "inconclusive", "inconclusive", "inconclusive"]
    assert (frame["n"] == 1).all() and frame["std"].isna().all()


def test_dvc_metrics_carry_spread_delta_and_verdict(tmp_path: Path) -> None:
    from alps.tables import collect, load_published

    frames = collect(table5_rows(tmp_path / "runs"), load_published(PAPER_DIR))
    entry = table_metrics(frames)["table5"]["0.1 | UperNet | Potsdam | 80k"]
    assert entry["mIoU"] == 70.63 and entry["mIoU_std"] == 0.55 and entry["mIoU_n"] == 3
    assert (entry["delta_mIoU"], entry["delta_mIoU_low"], entry["delta_mIoU_high"]) == (-0.87, -1.01, -0.72)
    assert entry["verdict"] == "reproduced"


def test_a_file_of_another_seed_is_refused(tmp_path: Path) -> None:
    rows = table5_rows(tmp_path / "runs")
    swapped = rows[0].runs[1]
    write_metrics(swapped, 70.0, seed=2)  # the file planned for seed 1 records seed 2
    with pytest.raises(TableError, match="records seed 2, but its table 5 row lists it as seed 1"):
        write_tables(rows, tmp_path / "out", PAPER_DIR)
    assert not (tmp_path / "out").exists()


def test_rows_json_keeps_the_seeds(tmp_path: Path) -> None:
    rows = table5_rows(tmp_path / "runs")
    text = rows_to_json(rows)
    assert json.loads(text)[0]["metrics_path"]["2"].endswith("0.1/seed2/metrics.json")
    assert rows_from_json(text) == rows
    with pytest.raises(TableError, match="seeds must be integers >= 0"):
        TableRow("5", rows[0].keys, {"one": "m.json"}, "potsdam")
