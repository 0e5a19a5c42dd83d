"""In the workflow: a gallery per pseudo-label set (in the report) and a set's `class_map`."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from workflow_runs import job_counts, snakemake, write_config

from alps.classmap import load_class_map

MAP = "0: water\n1: vegetation\n2: other\n3: vegetation\n4: other\n5: ignore\n"


def toy_study(tmp_path, class_map: str) -> tuple:
    """The demo dataset cut to a dozen training tiles, one pseudo-label set with K = 6 and a class map."""
    (tmp_path / "map.yaml").write_text(class_map)
    config = write_config(
        tmp_path,
        **{
            "datasets.demo.options": {"tile_size": 128, "block_size": 4, "val_fraction": 0.75},
            "labeling.cluster.k": 6,
            "pseudo_labels": {"demo-pl": {"dataset": "demo", "class_map": str(tmp_path / "map.yaml")}},
            "tables": {},
        },
    )
    results = tmp_path / "results"
    return config, results, [str(results / "pl/demo-pl/dataset_card.json"), str(results / "gallery/demo-pl")]


@pytest.mark.slow
def test_gallery_and_class_map_in_the_workflow(tmp_path):
    config, results, targets = toy_study(tmp_path, MAP)
    run = snakemake(*targets, config=config)
    assert run.returncode == 0, run.stderr[-3000:]
    gallery = json.loads((results / "gallery/demo-pl/gallery.json").read_text())
    assert [r["name"] for r in gallery["clusters"]] == [
        "water",
        "vegetation",
        "other",
        "vegetation",
        "other",
        "ignore",
    ]
    assert (results / "gallery/demo-pl/index.html").is_file()

    # pl/demo-pl holds the named classes; the cluster-id dataset stays beside the set's model.
    unmapped = results / "pseudo_labels/demo-pl/unmapped"
    named = results / "pl/demo-pl"
    card = json.loads((named / "dataset_card.json").read_text())
    assert (card["num_classes"], card["classes"]) == (3, ["water", "vegetation", "other"])
    assert json.loads((unmapped / "dataset_card.json").read_text())["num_classes"] == 6
    lut = load_class_map(tmp_path / "map.yaml", 6).lut()
    labels = sorted((unmapped / "ann_dir/train").glob("*.png"))
    assert labels
    for path in labels:
        mapped = np.asarray(Image.open(named / "ann_dir/train" / path.name))
        np.testing.assert_array_equal(mapped, lut[np.asarray(Image.open(path))])

    # The report shows the gallery page.
    report = snakemake(*targets, "--report", str(tmp_path / "report.zip"), config=config)
    assert report.returncode == 0, report.stderr[-3000:]
    names = zipfile.ZipFile(tmp_path / "report.zip").namelist()
    assert any(n.endswith("/index.html") for n in names) and any(
        n.endswith("/cluster_005.png") for n in names
    )

    # Editing the map reruns the two jobs that read it, nothing upstream.
    (tmp_path / "map.yaml").write_text(MAP.replace("2: other", "2: road"))
    plan = snakemake(*targets, "-n", config=config)
    assert plan.returncode == 0
    assert job_counts(plan.stdout + plan.stderr) == {"gallery": 1, "apply_class_map": 1, "total": 2}


@pytest.mark.parametrize(
    ("class_map", "message"),
    [
        ("0: a\n1: b\n", "pseudo_labels.demo-pl.class_map: class map"),
        ("0: a\n0: b\n1: c\n2: d\n3: e\n4: f\n5: g\n", "cluster id 0 is listed twice"),
    ],
)
def test_a_bad_class_map_fails_before_any_job(tmp_path, class_map, message):
    config, results, _ = toy_study(tmp_path, class_map)
    result = snakemake("-n", config=config)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not results.exists()
