"""Every dataset converter through its Snakemake rule (the `prepare_dataset` checkpoint), in one run."""

from __future__ import annotations

import pytest
import yaml
from raw_layouts import atlas as make_atlas
from raw_layouts import isaid as make_isaid
from raw_layouts import potsdam as make_potsdam
from raw_layouts import samrs as make_samrs
from workflow_runs import snakemake

from alps.io import read_manifest

from conftest import REPO_ROOT, shared_data


@pytest.mark.slow
def test_each_converter_runs_through_the_prepare_rule(tmp_path):
    pytest.importorskip("nibabel")
    raw = tmp_path / "raw"
    folder = raw / "folder"
    folder.mkdir(parents=True)
    (folder / "scene.tif").symlink_to(shared_data("spacenet_building", "sample_geotiff.tif"))
    raw_dirs = {
        "isaid": make_isaid(raw / "isaid"),
        "potsdam": make_potsdam(raw / "potsdam"),
        "samrs": make_samrs(raw / "samrs"),
        "atlas": make_atlas(raw / "atlas"),
        "folder": folder,
    }
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    for name, raw_dir in raw_dirs.items():
        config["datasets"][name] = {"converter": name, "raw_dir": str(raw_dir)}
    config["datasets"]["folder"]["options"] = {"tile_size": 256, "overlap": 32}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    targets = [str(tmp_path / "results" / "datasets" / name / "manifest.csv") for name in raw_dirs]
    result = snakemake(*targets, config=config_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in raw_dirs:
        manifest = read_manifest(tmp_path / "results" / "datasets" / name / "manifest.csv")
        assert len(manifest) > 0, name
        assert (tmp_path / "results" / "logs" / f"prepare_{name}.log").is_file()
    folder_manifest = read_manifest(tmp_path / "results" / "datasets" / "folder" / "manifest.csv")
    assert folder_manifest["crs"].str.startswith("EPSG:").all()  # georeferencing kept per tile
