"""What the workflow's rules run, decided in the package: the loader, the rule arguments, the shard counts."""

from __future__ import annotations

import copy
import os

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from alps.config import ConfigError, load_config
from alps.io.manifest import MANIFEST_COLUMNS, write_manifest
from alps.rule_args import RuleArgs
from alps.sharding import manifest_shard_count
from alps.study import PretrainRun

from conftest import REPO_ROOT


@pytest.fixture
def demo() -> dict:
    return yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())


def args_of(config: dict) -> RuleArgs:
    return RuleArgs(load_config(config, base_dir=REPO_ROOT))


def test_a_set_k_overrides_the_engine_k_and_null_everywhere_estimates_it(demo):
    demo["pseudo_labels"]["demo-pl"]["k"] = 5
    args = args_of(copy.deepcopy(demo))
    assert args.cluster("demo-pl")[:2] == ["--k", 5]
    assert args.cluster("demo-pl-area0.1")[:4] == ["--k", 8, "--area-threshold", 0.1]
    demo["labeling"]["cluster"]["k"] = None
    demo["labeling"]["cluster"]["k_range"] = [3, 9]
    args = args_of(demo)
    assert args.cluster("demo-pl-area0.1")[:2] == ["--k", "auto"]
    assert args.cluster("demo-pl-area0.1")[-3:] == ["--k-range", 3, 9]


def test_the_paint_job_of_a_set_with_a_binary_child_writes_both(demo):
    args = args_of(demo)
    assert args.paint("demo-pl") == ["--area-threshold", 0.3, "--binary"]
    assert args.paint("demo-pl-area1.0") == ["--area-threshold", 1.0]


def test_pl_dataset_options_carry_the_fit_split_val_shards_and_variant(demo):
    demo["pseudo_labels"]["demo-pl"]["num_classes"] = 12
    demo["labeling"]["bands"] = [3, 2, 1]
    args = args_of(demo)
    assert args.pl_dataset("demo-pl", ["v0", "v1"]) == [
        "--split",
        "train",
        "--val-paint-dirs",
        "v0",
        "v1",
        "--num-classes",
        12,
        "--bands",
        "3,2,1",
    ]
    assert args.pl_dataset("demo-binary", []) == ["--split", "train", "--binary", "--bands", "3,2,1"]


def test_training_on_the_cpu_claims_no_gpu_and_on_cuda_its_gpus_per_job(demo):
    demo["training"]["device"] = "cpu"
    assert load_config(copy.deepcopy(demo), base_dir=REPO_ROOT).study.training_gpus == 0
    demo["training"].update(device="cuda", gpus_per_job=2, pretrained_backbones={"segformer-b0": "x.pth"})
    args = args_of(demo)
    assert args.study.training_gpus == 2
    assert args.launch() == ["torchrun", "--standalone", "--nproc_per_node=2", "--no-python"]
    assert args.train_model("segformer-b0") == ["--pretrained", "x.pth", "--launcher", "pytorch"]


def test_a_finetuning_starts_from_the_pretraining_of_its_own_seed(demo):
    demo["training"]["reinit_classifier"] = True
    args = args_of(demo)
    run = PretrainRun("segformer-b0", "demo-pl", "demo", 3)
    checkpoint = args.study.pretrain_checkpoint(run)
    iters = demo["training"]["schedules"]["demo"]
    assert checkpoint == f"results/demo/train/pretrain/segformer-b0/demo-pl/demo/seed3/iter_{iters}.pth"
    assert args.finetune_init(run, "backbone") == [
        "--init",
        "backbone",
        "--from",
        checkpoint,
        "--reinit-classifier",
    ]
    scratch = PretrainRun("segformer-b0", "scratch", "demo", 3)
    assert args.finetune_init(scratch, "none") == ["--init", "none"]


def test_a_schema_violation_names_its_key(demo):
    demo["labeling"]["cluster"]["epochs"] = 0
    with pytest.raises(ConfigError, match=r"labeling\.cluster\.epochs: 0 is less than the minimum of 1"):
        load_config(demo)


def test_a_class_map_on_a_binary_set_fails_at_load(demo, tmp_path):
    (tmp_path / "map.yaml").write_text("0: a\n1: b\n")
    demo["pseudo_labels"]["demo-binary"]["class_map"] = str(tmp_path / "map.yaml")
    with pytest.raises(
        ConfigError, match=r"pseudo_labels\.demo-binary\.class_map: a binary set has no clusters"
    ):
        load_config(demo, base_dir=REPO_ROOT)


def test_a_class_map_naming_ids_beyond_k_fails_at_load(demo, tmp_path):
    (tmp_path / "map.yaml").write_text("".join(f"{i}: c{i}\n" for i in range(12)))
    demo["pseudo_labels"]["demo-pl"]["class_map"] = str(tmp_path / "map.yaml")
    with pytest.raises(ConfigError, match=r"pseudo_labels\.demo-pl\.class_map: class map .*cluster id 8"):
        load_config(demo, base_dir=REPO_ROOT)
    assert load_config(demo, base_dir=REPO_ROOT, check_files=False).study.mapped_sets() == ["demo-pl"]


def test_a_config_file_over_the_size_limits_is_refused_in_one_line(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    (tmp_path / "bomb.yaml").write_text(bomb)
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "bomb.yaml")
    assert "bomb.yaml" in str(error.value) and "\n" not in str(error.value)


def _manifest(folder, splits: list[str]):
    rows = []
    for i, split in enumerate(splits):
        path = folder / f"img{i}.png"
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
        rows.append(
            {
                **dict.fromkeys(MANIFEST_COLUMNS, ""),
                "image_id": f"img{i}",
                "split": split,
                "image_path": path.name,
                "height": 4,
                "width": 4,
                "window_x": 0,
                "window_y": 0,
                "window_w": 4,
                "window_h": 4,
            }
        )
    return write_manifest(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)), folder / "manifest.csv")


def test_shard_counts_of_a_manifest_split(tmp_path):
    manifest = _manifest(tmp_path, ["train"] * 5 + ["test"])
    assert manifest_shard_count(manifest, "train", 2, required=True) == 3
    assert manifest_shard_count(manifest, "val", 2) == 0  # no val split: no shards
    with pytest.raises(ValueError, match="no images found in split 'val'"):
        manifest_shard_count(manifest, "val", 2, required=True)


def test_a_manifest_is_read_and_resolved_once_for_all_its_splits(tmp_path, monkeypatch):
    """The workflow asks for shard counts on every job's inputs: one read per manifest version, whichever
    splits and shard sizes it asks for (the paper study's plan had read 150k rows eleven times)."""
    import alps.sharding

    manifest = _manifest(tmp_path, ["train"] * 5 + ["val"] * 2 + ["test"])
    calls = {"read": 0, "resolve": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(alps.sharding, "read_manifest", counted("read", alps.sharding.read_manifest))
    monkeypatch.setattr(alps.sharding, "resolve_paths", counted("resolve", alps.sharding.resolve_paths))
    counts = [manifest_shard_count(manifest, split, size) for split in ("train", "val") for size in (1, 2)]
    assert counts == [5, 3, 2, 1]
    assert manifest_shard_count(manifest, "val", 2, required=True) == 1
    assert calls == {"read": 1, "resolve": 1}


def test_a_rewritten_manifest_is_counted_again(tmp_path):
    manifest = _manifest(tmp_path, ["train"] * 2)
    assert manifest_shard_count(manifest, "train", 1) == 2
    stat = os.stat(manifest)
    _manifest(tmp_path, ["train"] * 3)
    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert manifest_shard_count(manifest, "train", 1) == 3


def test_box_prompted_sets_take_sam_and_the_schema_defaults_of_their_boxes():
    config = yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text())
    args = RuleArgs(load_config(config, check_files=False))
    options = args.boxes("samrs-star")
    assert options[options.index("--batch-size") + 1] == 64 and "--skip-unknown" not in options
    assert options[options.index("--sam-checkpoint") + 1] == config["labeling"]["masks"]["sam"]["checkpoint"]
    assert args.study.labeling_gpus["box_labels"] == 1


@pytest.mark.parametrize("set_k", [None, "absent"])
def test_num_classes_below_the_inherited_k_fails_at_load(demo, set_k):
    demo["pseudo_labels"]["demo-pl"]["num_classes"] = 6  # the demo's labeling.cluster.k is 8
    if set_k != "absent":
        demo["pseudo_labels"]["demo-pl"]["k"] = set_k  # null inherits the engine's k, as the cluster job does
    with pytest.raises(ConfigError, match=r"pseudo_labels\.demo-pl\.num_classes: 6 is fewer than its k 8"):
        load_config(demo, base_dir=REPO_ROOT)
