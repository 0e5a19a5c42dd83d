"""alps.verdicts: each row's baseline in the paper's tables, and the verdicts on hand-made numbers."""

from __future__ import annotations

import pandas as pd
import pytest

from alps.stats import INCONCLUSIVE, NO_PUBLISHED, NOT_REPRODUCED, REPRODUCED, summarize
from alps.study import PUBLISHED_FILES, TABLE_KEYS
from alps.verdicts import (
    BASELINE,
    NO_BASELINE,
    NOT_RUN,
    ROW_VERDICTS,
    compare_rows,
    count_verdicts,
    delta_text,
    pair_rows,
    published_delta,
    verdict_column,
    verdict_line,
)

from conftest import REPO_ROOT

PAPER_DIR = REPO_ROOT / "results" / "paper"


def published_keys(table: str) -> list[dict[str, str]]:
    frame = pd.read_csv(PAPER_DIR / PUBLISHED_FILES[table], dtype=str)
    return frame[list(TABLE_KEYS[table])].to_dict("records")


def baselines_by_row(table: str) -> list[dict[str, str] | None]:
    """Each published row's baseline row (its keys), None for baselines and rows without one."""
    keys = published_keys(table)
    pairing = pair_rows(table, keys)
    return [keys[pairing.baseline_of[i]] if i in pairing.baseline_of else None for i in range(len(keys))]


@pytest.mark.parametrize("table", ["1", "2"])
def test_tables_1_and_2_compare_each_row_with_the_baseline_of_its_method(table: str) -> None:
    keys = published_keys(table)
    pairing = pair_rows(table, keys)
    assert len(pairing.baselines) == 8  # one Baseline row per method
    for i, row in enumerate(keys):
        if row["type"] == "Baseline":
            assert i in pairing.baselines and i not in pairing.baseline_of
        else:
            base = keys[pairing.baseline_of[i]]
            assert base["type"] == "Baseline" and base["method"] == row["method"]


def test_table_3a_compares_samrs_pl_with_samrs_star_of_the_same_init() -> None:
    for row, base in zip(published_keys("3a"), baselines_by_row("3a"), strict=True):
        if row["pretrained"] == "SAMRS*":
            assert base is None
        else:
            assert base == {**row, "pretrained": "SAMRS*"}


def test_table_3b_compares_every_pseudo_label_set_with_binary_masks() -> None:
    for row, base in zip(published_keys("3b"), baselines_by_row("3b"), strict=True):
        expected = None if row["pretrained"] == "Binary Mask" else {**row, "pretrained": "Binary Mask"}
        assert base == expected


def test_table_4_compares_320k_with_the_base_schedule() -> None:
    pairs = [(row, base) for row, base in zip(published_keys("4"), baselines_by_row("4"), strict=True)]
    assert all((base is None) == (row["step"] != "320k") for row, base in pairs)
    for row, base in pairs:
        if base is not None:
            assert base["step"] in ("80k", "160k") and {**base, "step": "320k"} == row


def test_table_5_compares_every_threshold_with_0_3() -> None:
    for row, base in zip(published_keys("5"), baselines_by_row("5"), strict=True):
        assert (base is None) == (row["area_threshold"] == "0.3")
        assert base is None or base["area_threshold"] == "0.3"


def test_table_6_compares_atlas_pl_with_the_baseline_of_its_model_on_mean_dsc() -> None:
    for row, base in zip(published_keys("6"), baselines_by_row("6"), strict=True):
        assert base == (None if row["pretrained"] == "baseline" else {**row, "pretrained": "baseline"})
    assert verdict_column("6", ["dsc_liver", "dsc_mean", "miou"]) == "dsc_mean"
    assert verdict_column("1", ["BG", "mIoU", "mAcc"]) == "mIoU"
    assert verdict_column("1", ["dsc_mean"]) is None


def test_a_table_without_a_rule_or_a_group_without_its_baseline_pairs_nothing() -> None:
    assert pair_rows("demo", [{"method": "a"}, {"method": "b"}]).baseline_of == {}
    # Table 1 without the Baseline row of UperNet: its pre-trained rows have no baseline.
    rows = [r for r in published_keys("1") if not (r["method"] == "UperNet" and r["type"] == "Baseline")]
    pairing = pair_rows("1", rows)
    upernet = [i for i, r in enumerate(rows) if r["method"] == "UperNet"]
    assert not set(upernet) & (set(pairing.baseline_of) | pairing.baselines)


def test_published_delta_is_exact_to_two_decimals() -> None:
    assert published_delta(64.90, 64.52) == 0.38
    assert published_delta(70.17, 71.03) == -0.86
    assert published_delta(None, 64.52) is None


# Hand-made Table 5: the 0.3 row is every row's baseline; published mIoU 70.17 (0.1), 71.03 (0.3),
# 65.22 (0.5), 47.81 (0.7) and 42.99 (1.0), so the published deltas are -0.86, -5.81, -23.22 and -28.04.
AREAS = ["0.1", "0.3", "0.5", "0.7", "1.0"]
KEYS = [
    {"area_threshold": a, "method": "UperNet", "finetune_dataset": "Potsdam", "step": "80k"} for a in AREAS
]
PUBLISHED = [{"mIoU": v} for v in (70.17, 71.03, 65.22, 47.81, 42.99)]


def test_verdicts_of_hand_made_rows() -> None:
    values = [
        # 0.1: per-seed deltas -0.9, -0.8, -0.9: mean -0.87, interval [-1.01, -0.72] holds -0.86, not 0.
        {"mIoU": {0: 70.1, 1: 71.2, 2: 70.6}},
        {"mIoU": {0: 71.0, 1: 72.0, 2: 71.5}},
        # 0.5: deltas +0.1, +0.2, -0.1: interval [-0.31, +0.45] excludes the published -5.81.
        {"mIoU": {0: 71.1, 1: 72.2, 2: 71.4}},
        # 0.7: one seed run: n = 1.
        {"mIoU": {0: 50.0}},
        # 1.0: not run at all.
        {},
    ]
    comparisons = compare_rows("5", KEYS, values, PUBLISHED, "mIoU")
    assert [c.verdict for c in comparisons] == [REPRODUCED, BASELINE, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN]
    assert [c.baseline for c in comparisons] == [1, None, 1, 1, 1]
    first = comparisons[0].deltas["mIoU"]
    assert first.n == 3 and first.mean == pytest.approx(-0.8667, abs=1e-4)
    assert (first.low, first.high) == (pytest.approx(-1.0101, abs=1e-4), pytest.approx(-0.7232, abs=1e-4))
    assert comparisons[0].published_deltas == {"mIoU": -0.86}
    assert comparisons[3].deltas["mIoU"].n == 1  # paired over the one seed both rows have
    assert delta_text(first) == "-0.87 [-1.01, -0.72]"
    assert delta_text(comparisons[3].deltas["mIoU"]) == "-21.00 (n = 1)"
    assert delta_text(None) == "" and delta_text(summarize([])) == ""


def test_an_interval_holding_zero_and_the_published_delta_is_inconclusive() -> None:
    values = [{}, {"mIoU": {0: 71.0, 1: 72.0}}, {}, {}, {"mIoU": {0: 60.0, 1: 80.0}}]
    comparisons = compare_rows("5", KEYS, values, PUBLISHED, "mIoU")
    # Deltas -11 and +8: mean -1.5, t(0.975, 1) = 12.71 makes the interval about +-121 wide.
    assert comparisons[4].verdict == INCONCLUSIVE
    delta = comparisons[4].deltas["mIoU"]
    assert delta.contains(0.0) and delta.contains(-28.04)


def test_rows_without_published_values_or_baseline() -> None:
    values = [{"mIoU": {0: 1.0, 1: 2.0}}, {"mIoU": {0: 0.0, 1: 0.5}}]
    keys = KEYS[:2]
    none = [{"mIoU": None}, {"mIoU": None}]
    assert [c.verdict for c in compare_rows("5", keys, values, none, "mIoU")] == [NO_PUBLISHED, BASELINE]
    assert [c.verdict for c in compare_rows("demo", keys, values, none, "mIoU")] == [NO_BASELINE] * 2
    assert [c.verdict for c in compare_rows("5", keys, values, none, None)] == ["", ""]


def test_only_seeds_both_rows_ran_are_paired() -> None:
    values = [{"mIoU": {0: 70.0, 1: 71.0, 2: 99.0}}, {"mIoU": {0: 71.0, 1: 72.0, 3: 10.0}}]
    delta = compare_rows("5", KEYS[:2], values, PUBLISHED[:2], "mIoU")[0].deltas["mIoU"]
    assert delta.n == 2 and delta.mean == pytest.approx(-1.0)


def test_the_summary_line_counts_every_verdict() -> None:
    counts = count_verdicts([REPRODUCED, BASELINE, INCONCLUSIVE, INCONCLUSIVE, NOT_RUN])
    assert list(counts) == list(ROW_VERDICTS) and sum(counts.values()) == 5
    line = verdict_line(counts, "mIoU")
    assert line.startswith("Verdicts on the mIoU delta against each row's baseline")
    assert "1 reproduced, 0 not reproduced, 2 inconclusive, 0 no published delta" in line
    assert "1 baseline, 0 no baseline, 1 not run" in line


def test_a_row_without_runs_is_not_run_whatever_its_role() -> None:
    # The 0.3 baseline row not run: it and every row compared with it are "not run".
    values = [{"mIoU": {0: 70.0, 1: 71.0}}, {}, {}, {}, {}]
    assert {c.verdict for c in compare_rows("5", KEYS, values, PUBLISHED, "mIoU")} == {NOT_RUN}
