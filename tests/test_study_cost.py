"""alps.study_cost: the GPU-hours of config/paper.yaml's plan, per job and in total, for any seed count."""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.utils import validate

from alps.study import plan_study
from alps.study_cost import H200_SECONDS_PER_ITER, study_cost

from conftest import REPO_ROOT

SCHEMA = str(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture(scope="module")
def paper() -> dict:
    config = yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text())
    validate(config, SCHEMA)
    return config


def with_seeds(config: dict, seeds: list[int]) -> dict:
    config = copy.deepcopy(config)
    config["training"]["seeds"] = seeds
    return config


def test_each_job_costs_its_iterations_times_the_measured_speed_on_two_gpus(paper: dict) -> None:
    cost = study_cost(plan_study(paper), paper)
    runs = {r.key: r for r in cost.runs}
    finetune = runs["isaid/segformer-b5/isaid-pl/160k/overall/seed1"]
    assert (finetune.iterations, finetune.crop, finetune.gpus) == (160_000, 896, 2)
    assert finetune.gpu_hours == pytest.approx(160_000 * 0.264 * 2 / 3600)  # 23.5
    assert finetune.gpu_hours_scaled == pytest.approx(finetune.gpu_hours * (896 / 512) ** 2)
    # Pre-training at the scale of the labeled dataset: iSAID-PL 896, SAMRS-PL 512, ATLAS-PL 256.
    assert runs["upernet-r50/isaid-pl/80k/seed0"].crop == 896
    assert runs["upernet-r50/samrs-pl/320k/seed2"].iterations == 320_000
    assert runs["upernet-r50/samrs-pl/320k/seed2"].crop == 512
    assert runs["unet-s5-d16/atlas-pl/40k/seed0"].crop == 256
    assert runs["potsdam/upernet-r50/scratch/80k/none/seed0"].crop == 512
    # The medical UNet has no measured speed: listed, not counted.
    assert {r.model for r in cost.unmeasured()} == {"unet-s5-d16"} and len(cost.unmeasured()) == 9
    measured = [r for r in cost.runs if r.gpu_hours is not None]
    assert cost.total() == pytest.approx(sum(r.gpu_hours for r in measured))
    assert set(H200_SECONDS_PER_ITER) == {r.model for r in measured}


def test_the_cost_grows_with_the_seeds(paper: dict) -> None:
    one = study_cost(plan_study(with_seeds(paper, [0])), paper)
    three = study_cost(plan_study(paper), paper)
    assert len(three.runs) == 3 * len(one.runs) == 3 * 177
    assert three.total() == pytest.approx(3 * one.total())
    assert three.total(scaled=True) == pytest.approx(3 * one.total(scaled=True))
    assert three.total(role="pretrain") + three.total(role="finetune") == pytest.approx(three.total())
