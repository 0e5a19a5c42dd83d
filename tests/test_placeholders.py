"""Placeholder inputs for dry runs: what the paper config's checks and checkpoints need, nothing more."""

from __future__ import annotations

import pytest
import yaml

from alps.placeholders import PAPER_IMAGE_COUNTS, write_placeholders
from alps.sharding import images_from_source

from conftest import REPO_ROOT


@pytest.mark.slow
def test_placeholders_satisfy_the_paper_config(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text())
    created = write_placeholders(config, tmp_path)
    assert (tmp_path / "weights/sam_vit_h_4b8939.pth").is_file()
    assert (tmp_path / "data/boxes/samrs-oriented-reppoints").is_dir()
    for name in ("isaid", "samrs", "potsdam", "atlas"):
        assert (tmp_path / "data/raw" / name).is_dir()
        manifest = tmp_path / "results/paper-study/datasets" / name / "manifest.csv"
        assert manifest in created
        for split, count in PAPER_IMAGE_COUNTS[name].items():
            assert len(images_from_source(manifest, split)) == count
    # Rewriting is harmless (the dry run may be repeated in the same folder).
    assert write_placeholders(config, tmp_path) == created
