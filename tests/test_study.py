"""The study planner: configurations -> pseudo-label sets, pre-trainings, fine-tunings and table rows."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import yaml
from snakemake.utils import validate

from alps.study import SCRATCH, StudyError, normalize_key, plan_study

from conftest import REPO_ROOT

SCHEMA = str(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml")
PUBLISHED = REPO_ROOT / "results" / "paper"


def load(name: str) -> dict:
    config = yaml.safe_load((REPO_ROOT / "config" / name).read_text())
    validate(config, SCHEMA)
    return config


@pytest.fixture
def demo() -> dict:
    return load("config.yaml")


@pytest.fixture
def paper() -> dict:
    return load("paper.yaml")


def test_demo_plan_has_the_tables_1_3b_5_analogues(demo):
    study = plan_study(demo, PUBLISHED)
    # One seed (the demo's `seed`, no training.seeds): every run once, in a seed0 folder.
    assert [r.key for r in study.pretrain_runs] == [
        "segformer-b0/demo-pl/demo/seed0",
        "segformer-b0/demo-binary/demo/seed0",
        "segformer-b0/demo-pl-area0.1/demo/seed0",
        "segformer-b0/demo-pl-area1.0/demo/seed0",
    ]
    # The backbone fine-tuning from demo-pl fills a row of Tables 1, 3b and 5 and runs once.
    assert len(study.finetune_runs) == 7
    assert Counter(r.table for r in study.rows) == {"1": 4, "3b": 2, "5": 3}
    key = "demo/segformer-b0/demo-pl/demo/backbone/seed0"
    shared = [r for r in study.rows if [run.key for run in r.runs] == [key]]
    assert [r.table for r in shared] == ["1", "3b", "5"]
    # The demo fine-tunes on its own dataset: no published iSAID/Potsdam row is listed as "not run".
    assert all(r.seeds == (0,) for r in study.rows)
    table5 = [dict(r.keys) for r in study.rows if r.table == "5"]
    assert [k["area_threshold"] for k in table5] == ["0.1", "0.3", "1.0"]
    baseline = study.rows[0]
    assert baseline.runs[0].pretraining == SCRATCH and baseline.runs[0].init == "none"
    assert dict(baseline.keys) == {
        "finetune_dataset": "demo",
        "method": "SegFormer-B0",
        "type": "Baseline",
        "pretrained": "-",
        "step": "demo",
    }


def test_paper_plan_runs_every_cell_of_the_paper_once(paper):
    study = plan_study(paper, PUBLISHED)
    # Tables 1 and 2: 8 methods x (baseline + 3 inits x 2 PL sets) on each dataset = 112 fine-tunings;
    # 3a adds SAMRS* (2 methods x 2 inits), 3b binary and Mixed-PL (2 x 2), 4 the 320k runs (8 x 2),
    # 5 four area thresholds, 6 UNet baseline and ATLAS-PL; each for the three seeds.
    assert paper["training"]["seeds"] == [0, 1, 2]
    assert len(study.finetune_runs) == (112 + 4 + 4 + 16 + 4 + 2) * 3
    # 8 x iSAID-PL, 8 x SAMRS-PL, 8 x SAMRS-PL 320k, SAMRS* 2, binary 2, Mixed-PL 2, areas 4, ATLAS-PL 1.
    assert len(study.pretrain_runs) == 35 * 3
    keys = {r.key for r in study.pretrain_runs}
    # Mixed-PL continues from iSAID-PL's run of the same model, schedule and seed, which is planned too.
    mixed = next(
        r for r in study.pretrain_runs if (r.pretraining, r.model, r.seed) == ("mixed-pl", "upernet-r50", 2)
    )
    assert (
        study.parent_run(mixed).key == "upernet-r50/isaid-pl/80k/seed2"
        and study.parent_run(mixed).key in keys
    )
    assert "segformer-b5/samrs-pl/320k/seed1" in keys
    assert all(row.seeds == (0, 1, 2) for row in study.rows if row.runs)


@pytest.mark.skipif(not PUBLISHED.is_dir(), reason="results/paper (the published tables) is missing")
def test_paper_plan_rows_follow_the_published_tables(paper):
    import pandas as pd

    study = plan_study(paper, PUBLISHED)
    for table, file in [("1", "table1_isaid.csv"), ("2", "table2_potsdam.csv"), ("4", "table4_steps.csv")]:
        published = pd.read_csv(PUBLISHED / file, dtype=str)
        rows = [r for r in study.rows if r.table == table]
        assert len(rows) == len(published)
        for row, (_, expected) in zip(rows, published.iterrows(), strict=True):
            assert {k: normalize_key(k, v) for k, v in row.keys.items()} == {
                k: normalize_key(k, expected[k]) for k in row.keys
            }
            assert row.runs
    table6 = [r for r in study.rows if r.table == "6"]
    # The paper's medical models are listed (not run) and our UNet rows follow, saying the models differ.
    assert [r.keys["method"] for r in table6 if not r.runs] == ["DoDNet"] * 2 + ["MED3D"] * 2 + [
        "SAM-Med2D"
    ] * 2
    unet = [r for r in table6 if r.runs]
    assert [r.keys["pretrained"] for r in unet] == ["baseline", "ATLAS-PL"]
    assert all("differs" in r.note for r in unet) and all(r.dataset_kind == "medical" for r in table6)
    table5 = [r for r in study.rows if r.table == "5"]
    assert [r.keys["area_threshold"] for r in table5] == ["0.1", "0.3", "0.5", "0.7", "1.0"]
    assert all(r.runs for r in table5)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["tables"]["1"].update(pretrained=["nope"]), "tables.1.pretrained: 'nope' is neither"),
        (lambda c: c["tables"]["1"].update(models=["unet-s5-d16x"]), "tables.1.models: 'unet-s5-d16x'"),
        (lambda c: c["tables"]["2"].update(finetune_datasets=["vaihingen"]), "tables.2.finetune_datasets"),
        (
            lambda c: c["pseudo_labels"]["isaid-binary"].update(of="samrs-star"),
            "pseudo_labels.isaid-binary.of",
        ),
        (lambda c: c["pseudo_labels"]["isaid-pl"].update(dataset="dior"), "pseudo_labels.isaid-pl.dataset"),
        (lambda c: c["pretrainings"]["mixed-pl"].update(continue_from="mixed-pl"), "the chain loops"),
        (
            lambda c: c["pretrainings"].update({"isaid-pl": {"pseudo_labels": "isaid-pl"}}),
            "the name is taken",
        ),
        (lambda c: c["training"]["models"].update({"upernet-r50": "90k"}), "schedule '90k' is not in"),
        (lambda c: c["tables"]["4"].update(schedules=["base", "640k"]), "tables.4.schedules: '640k'"),
    ],
)
def test_inconsistent_study_is_named(paper, edit, message):
    config = copy.deepcopy(paper)
    edit(config)
    with pytest.raises(StudyError, match=message.replace(".", r"\.").replace("(", r"\(")):
        plan_study(config)


def test_paths_put_each_run_in_its_own_folder(demo):
    study = plan_study(demo)
    run = study.finetune_runs[1]
    assert (
        study.finetune_dir(run) == "results/demo/train/finetune/demo/segformer-b0/demo-pl/demo/overall/seed0"
    )
    assert (
        study.pretrain_dir(study.pretrain_runs[0])
        == "results/demo/train/pretrain/segformer-b0/demo-pl/demo/seed0"
    )
    assert study.paint_source("demo-binary") == "demo-pl"
    assert study.binary_children("demo-pl") == ["demo-binary"]
    assert study.datasets_to_label() == ["demo"]
    assert study.iters("demo") == 100


def test_normalize_key_matches_the_papers_spellings():
    assert normalize_key("method", "PspNet") == normalize_key("method", "Pspnet")
    assert normalize_key("step", "80K") == normalize_key("step", "80k") == normalize_key("step", "80000")
    assert normalize_key("area_threshold", "0.3") == normalize_key("area_threshold", "0.30")
    assert normalize_key("area_threshold", "1") == normalize_key("area_threshold", "1.0")
    assert normalize_key("pretrained", "-") == normalize_key("pretrained", "baseline")


def test_unquoted_table_ids_are_read_as_the_papers(demo):
    demo["tables"] = {1: demo["tables"]["1"], 5: demo["tables"]["5"]}
    assert {r.table for r in plan_study(demo).rows} == {"1", "5"}


def test_pretrain_checkpoint_is_the_last_iteration(paper):
    study = plan_study(paper)
    run = next(r for r in study.pretrain_runs if r.key == "segformer-b5/samrs-pl/320k/seed1")
    assert study.pretrain_checkpoint(run) == (
        "results/paper-study/train/pretrain/segformer-b5/samrs-pl/320k/seed1/iter_320000.pth"
    )


def test_every_workflow_path_comes_from_the_plan(demo):
    """The rules spell no path of their own: each comes from a Study method (issue #16)."""
    import re

    study = plan_study(demo)
    assert (
        study.mask_shard("demo", "train", "0000")
        == "results/demo/labeling/demo/masks/train/shard_0000.parquet"
    )
    assert (
        study.paint_shard("demo-pl", "val", "0001")
        == "results/demo/pseudo_labels/demo-pl/paint/val/shard_0001"
    )
    assert study.pl_card("demo-pl") == f"{study.pl_dataset_dir('demo-pl')}/dataset_card.json"
    run = study.finetune_runs[0]
    assert study.finetune_metrics(run) == f"{study.finetune_dir(run)}/metrics.json"
    # Path pieces the plan owns appear in no rule file (only wildcard placeholders passed to the plan).
    for rules in (REPO_ROOT / "workflow" / "rules").glob("*.smk"):
        text = "\n".join(line for line in rules.read_text().splitlines() if not line.lstrip().startswith("#"))
        for piece in ("results_dir", "/labeling/", "/pseudo_labels/", "/pl/", "/train/", "metrics.json"):
            assert piece not in text, f"{rules.name} spells {piece!r}"
        assert not re.search(r"\b(SEED|SPLIT|SHARD_SIZE|RESULTS)\b", text), rules.name


def test_labeling_jobs_claim_a_gpu_only_on_cuda(demo, paper):
    """Each labeling rule's `gpu` resource follows the device its work runs on (schema-filled configs)."""
    RULES = ("masks", "features", "masks_and_features", "box_labels")
    assert plan_study(demo).labeling_gpus == dict.fromkeys(RULES, 0)
    assert plan_study(paper).labeling_gpus == dict.fromkeys(RULES, 1)
    # SAM masks on the CPU, EfficientNet features on CUDA: only the features job holds a GPU.
    config = copy.deepcopy(paper)
    config["labeling"]["masks"]["sam"]["device"] = "cpu"
    config["labeling"]["encoder"] = {"name": "efficientnet-lite0", "device": "cuda:1"}
    validate(config, SCHEMA)
    expected = {"masks": 0, "features": 1, "masks_and_features": 1, "box_labels": 0}
    assert plan_study(config).labeling_gpus == expected


def test_seeds_default_to_the_labeling_seed_and_tables_may_choose_their_own(demo):
    """training.seeds defaults to [seed]; tables.<id>.seeds overrides it for that table's runs only."""
    demo = copy.deepcopy(demo)
    demo["seed"] = 7
    assert {run.seed for run in plan_study(demo).finetune_runs} == {7}
    demo["training"]["seeds"] = [0, 1]
    demo["tables"]["1"]["seeds"] = [0, 1, 2]
    validate(demo, SCHEMA)
    study = plan_study(demo)
    assert {r.table: r.seeds for r in study.rows} == {"1": (0, 1, 2), "3b": (0, 1), "5": (0, 1)}
    # Table 1's backbone row and the 3b/5 rows share the runs of seeds 0 and 1; seed 2 is Table 1's alone.
    backbone = [r for r in study.finetune_runs if (r.pretraining, r.init) == ("demo-pl", "backbone")]
    assert sorted(r.seed for r in backbone) == [0, 1, 2]
    # Each fine-tuning of seed s starts from the pre-training of seed s, which is planned.
    pretrain_keys = {r.key for r in study.pretrain_runs}
    for run in study.finetune_runs:
        if run.pretraining != SCRATCH:
            assert study.pretrain_run(run.model, run.pretraining, run.schedule, run.seed).key in pretrain_keys
    assert sorted(r.seed for r in study.pretrain_runs if r.pretraining == "demo-pl") == [0, 1, 2]
    assert sorted(r.seed for r in study.pretrain_runs if r.pretraining == "demo-binary") == [0, 1]


@pytest.mark.parametrize("seeds", [[], [1, 1], [-1], ["0"], [True]])
def test_bad_seeds_are_named(demo, seeds):
    demo = copy.deepcopy(demo)
    demo["tables"]["5"]["seeds"] = seeds
    with pytest.raises(StudyError, match=r"tables\.5\.seeds: a non-empty list of distinct integers"):
        plan_study(demo)
