"""Config builder: the eight methods build and run forward on CPU with mmcv-lite; datasets; options."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from alps.datasets.demo import CLASSES as DEMO_CLASSES
from alps.datasets.demo import PALETTE as DEMO_PALETTE
from alps.train import configs
from alps.train.configs import (
    MODELS,
    PAPER_MODELS,
    SCHEDULES,
    ALPSIoUMetric,
    build_config,
    config_hash,
    dataset_spec,
    detect_dataset,
    write_config,
    write_paper_configs,
)
from alps.train.mmcv_compat import import_mmseg
from alps.train.models import MEDICAL_MODELS
from alps.train.surgery import select_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def demo_like(tmp_path: Path) -> Path:
    """A folder with the demo's classes.json (the config builder reads nothing else of it)."""
    root = tmp_path / "demo"
    root.mkdir()
    (root / "classes.json").write_text(
        json.dumps({"classes": list(DEMO_CLASSES), "palette": [list(p) for p in DEMO_PALETTE]})
    )
    (root / "ann_dir" / "val").mkdir(parents=True)
    return root


@pytest.fixture
def pl_dir(tmp_path: Path) -> Path:
    root = tmp_path / "pl"
    root.mkdir()
    (root / "dataset_card.json").write_text(json.dumps({"num_classes": 8, "split": "train"}))
    return root


def test_paper_models_are_the_eight_methods() -> None:
    assert PAPER_MODELS == (
        "upernet-r50",
        "pspnet-r50",
        "fcn-hrnet-w48",
        "deeplabv3plus-r50b",
        "vit-b-upernet",
        "swin-b-upernet",
        "segmenter-vit-b",
        "segformer-b5",
    )
    for name in PAPER_MODELS:
        sgd = configs.official_config(name).optim_wrapper.optimizer.type == "SGD"
        assert MODELS[name].schedule == ("80k" if sgd and name != "segmenter-vit-b" else "160k")


# The smallest input each backbone accepts is 32 px (stride 32); 64 px keeps every stage > 1 px.
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_builds_and_runs_forward_on_cpu(name: str, demo_like: Path) -> None:
    import_mmseg()
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS as REGISTRY

    init_default_scope("mmseg")
    ds = dataset_spec("folder", demo_like, crop_size=64)
    cfg = build_config(name, ds, max_iters=10, device="cpu")
    assert "SyncBN" not in cfg.pretty_text  # single-process runs would fail on SyncBN; see configs docstring
    model = REGISTRY.build(cfg.model)
    model.eval()
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 64, 64) * 255, mode="tensor")
    assert logits.shape[:2] == (1, 3)
    assert torch.isfinite(logits).all()
    del model, logits
    gc.collect()


def test_dataset_specs(tmp_path: Path, demo_like: Path, pl_dir: Path) -> None:
    isaid = dataset_spec("isaid", tmp_path / "iSAID")
    assert (isaid.num_classes, isaid.crop_size, isaid.dataset_type) == (16, (896, 896), "iSAIDDataset")
    assert isaid.seg_map_suffix == ".png"  # what datasets/isaid.py writes
    potsdam = dataset_spec("potsdam", tmp_path / "potsdam")
    assert (potsdam.num_classes, potsdam.crop_size, potsdam.reduce_zero_label) == (6, (512, 512), True)
    pl = dataset_spec("pl", pl_dir)
    assert pl.num_classes == 8 and pl.eval_split is None and pl.classes[0] == "cluster_00"
    demo = detect_dataset(demo_like)
    assert (demo.kind, demo.classes, demo.crop_size, demo.eval_split) == (
        "folder",
        DEMO_CLASSES,
        (256, 256),
        "val",
    )
    assert detect_dataset(pl_dir).kind == "pl"
    medical = dataset_spec("medical", tmp_path)
    assert medical.classes == ("background", "liver", "tumour") and "mDice" in medical.metrics
    assert medical.eval_split is None  # neither ann_dir/val nor ann_dir/test
    with pytest.raises(ValueError, match="neither"):
        detect_dataset(tmp_path)
    with pytest.raises(ValueError, match="unknown dataset kind"):
        dataset_spec("ade", tmp_path)


@pytest.mark.parametrize(
    ("source", "crop"),
    [("alps-isaid", 896), ("alps-potsdam", 512), ("alps-atlas", 256), ("alps-samrs", 512), (None, 512)],
)
def test_a_pl_dataset_trains_at_the_scale_of_the_dataset_it_labels(
    pl_dir: Path, source: str | None, crop: int
) -> None:
    """iSAID-PL's 896 px patches are resized to 896 and cropped at 896, as iSAID fine-tuning (mmseg's iSAID
    config) sees them, not to 512 (objects at 0.57x); SAMRS and plain folders keep the PL default."""
    card = {"num_classes": 8, "split": "train", **({"source_dataset": source} if source else {})}
    (pl_dir / "dataset_card.json").write_text(json.dumps(card))
    spec = dataset_spec("pl", pl_dir)
    assert (spec.crop_size, spec.scale) == ((crop, crop), (crop, crop))
    if source == "alps-isaid":
        isaid = dataset_spec("isaid", pl_dir)
        assert (spec.crop_size, spec.scale) == (isaid.crop_size, isaid.scale)
        pipeline = build_config(
            "upernet-r18", spec, max_iters=2, device="cpu"
        ).train_dataloader.dataset.pipeline
        assert pipeline[2]["scale"] == (896, 896) and pipeline[3]["crop_size"] == (896, 896)
    # An explicit crop (the demo's 256, the miniature's 64) sets both, for the PL set and its fine-tuning.
    assert dataset_spec("pl", pl_dir, crop_size=64).scale == (64, 64)


def test_pl_config_ignores_255_and_has_no_validation(pl_dir: Path) -> None:
    cfg = build_config("upernet-r18", dataset_spec("pl", pl_dir, crop_size=128), max_iters=20, device="cpu")
    dataset = cfg.train_dataloader.dataset
    assert dataset.type == "BaseSegDataset" and dataset.ignore_index == 255
    assert len(dataset.metainfo.classes) == len(dataset.metainfo.palette) == 8
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 8
    assert cfg.val_dataloader is None and cfg.train_cfg.val_interval > 20
    assert cfg.model.data_preprocessor.seg_pad_val == 255


def test_standard_pipelines(tmp_path: Path) -> None:
    cfg = build_config("pspnet-r50", dataset_spec("potsdam", tmp_path), device="cpu")
    train = cfg.train_dataloader.dataset.pipeline
    assert train[1] == {"type": "LoadAnnotations", "reduce_zero_label": True}
    assert train[3]["crop_size"] == (512, 512) and cfg.test_dataloader.dataset.type == "PotsdamDataset"
    cfg = build_config("swin-b-upernet", dataset_spec("isaid", tmp_path), device="cpu")
    assert cfg.train_dataloader.dataset.pipeline[2]["scale"] == (896, 896)
    assert cfg.test_evaluator.type == "ALPSIoUMetric"


@pytest.mark.parametrize("schedule", ["40k", "80k", "160k", "320k"])
def test_schedules(schedule: str, tmp_path: Path) -> None:
    ds = dataset_spec("potsdam", tmp_path)
    sgd = build_config("upernet-r50", ds, schedule=schedule, device="cpu")
    iters = SCHEDULES[schedule]
    assert sgd.train_cfg.max_iters == iters and sgd.param_scheduler[-1]["end"] == iters
    assert sgd.optim_wrapper.optimizer.type == "SGD" and sgd.train_cfg.val_interval == iters // 10
    adamw = build_config("segformer-b5", ds, schedule=schedule, device="cpu")
    assert [s["type"] for s in adamw.param_scheduler] == ["LinearLR", "PolyLR"]
    assert adamw.param_scheduler[0]["end"] == 1500 and adamw.optim_wrapper.optimizer.type == "AdamW"
    assert build_config("vit-b-upernet", ds, device="cpu").train_cfg.max_iters == 160000


def test_options(tmp_path: Path, demo_like: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = detect_dataset(demo_like)
    cfg = build_config(
        "segformer-b0",
        ds,
        max_iters=7,
        batch_size=4,
        num_workers=0,
        val_interval=3,
        checkpoint_interval=2,
        seed=5,
        work_dir=tmp_path / "w",
        load_from=tmp_path / "init.pth",
        pretrained="mit_b0.pth",
        device="cpu",
        launcher="pytorch",
    )
    assert cfg.train_dataloader.batch_size == 4 and not cfg.train_dataloader.persistent_workers
    assert cfg.train_cfg.val_interval == 3 and cfg.default_hooks.checkpoint.interval == 2
    assert cfg.randomness == {"seed": 5, "deterministic": True}
    assert cfg.load_from == str(tmp_path / "init.pth") and cfg.work_dir == str(tmp_path / "w")
    assert cfg.model.backbone.init_cfg == {"type": "Pretrained", "checkpoint": "mit_b0.pth"}
    # Distributed on CPU (gloo): torch has no CPU SyncBN, so BN; on CUDA the official SyncBN stays (see
    # test_paper_model_is_the_official_config_but_for_the_allowed_differences).
    assert cfg.launcher == "pytorch" and cfg.model.decode_head.norm_cfg.type == "BN"
    assert [s["type"] for s in cfg.param_scheduler] == ["PolyLR"]  # too short to warm up
    with pytest.raises(ValueError, match="amp needs CUDA"):
        build_config("segformer-b0", ds, amp=True, device="cpu")
    with pytest.raises(KeyError, match="unknown model"):
        build_config("unet", ds)
    with pytest.raises(KeyError, match="unknown schedule"):
        build_config("segformer-b0", ds, schedule="30k")
    # AMP where CUDA is visible: mmengine's AmpOptimWrapper, CUDA's non-deterministic kernels allowed.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    amp = build_config("segformer-b0", ds, amp=True)
    assert amp.optim_wrapper.type == "AmpOptimWrapper" and amp.randomness.deterministic is False


def test_written_config_runs_with_plain_mmengine(tmp_path: Path, demo_like: Path) -> None:
    cfg = build_config("upernet-r18", detect_dataset(demo_like, crop_size=64), max_iters=4, device="cpu")
    path = tmp_path / "upernet-r18_demo.py"
    digest = write_config(cfg, path)
    assert digest == config_hash(cfg)
    reloaded = Config.fromfile(path)  # imports alps.train.configs through custom_imports
    assert reloaded.model == cfg.model and reloaded.train_dataloader == cfg.train_dataloader
    assert reloaded.custom_imports["imports"] == ["alps.train.configs", "alps.train.checkpoints"]
    paths = write_paper_configs(tmp_path / "all", [dataset_spec("isaid", tmp_path / "iSAID")], device="cpu")
    assert sorted(p.name for p in paths) == sorted(f"{m}_isaid.py" for m in PAPER_MODELS)


def test_alps_iou_metric_reports_per_class_values() -> None:
    metric = ALPSIoUMetric(iou_metrics=["mIoU", "mDice"])
    metric.dataset_meta = {"classes": ("background", "liver", "tumour")}
    # One image: 4 background pixels, 2 liver (1 predicted right), tumour absent from both.
    inter = torch.tensor([4.0, 1.0, 0.0])
    union = torch.tensor([5.0, 2.0, 0.0])
    pred = torch.tensor([5.0, 1.0, 0.0])
    label = torch.tensor([4.0, 2.0, 0.0])
    out = metric.compute_metrics([(inter, union, pred, label)])
    assert out["IoU.background"] == 80.0 and out["IoU.liver"] == 50.0
    assert np.isnan(out["IoU.tumour"])
    assert out["Dice.liver"] == pytest.approx(66.67) and out["Acc.liver"] == 50.0
    assert {"aAcc", "mIoU", "mAcc", "mDice"} <= set(out)


def test_module_documents_changes() -> None:
    assert "SyncBN" in (configs.__doc__ or "") and "mmcv-lite" in (configs.__doc__ or "")


def test_light_model_names_match_the_builder():
    from alps.train.configs import MODELS
    from alps.train.models import MODEL_NAMES

    assert tuple(MODELS) == MODEL_NAMES


def _atlas_like(root: Path, splits: tuple[str, ...]) -> Path:
    """What ``prepare_dataset("atlas", ...)`` leaves for the config builder: card, classes.json, splits."""
    from alps.datasets import atlas

    root.mkdir()
    (root / "dataset_card.json").write_text(json.dumps({"dataset": atlas.DATASET_NAME, "classes": []}))
    (root / "classes.json").write_text(
        json.dumps({"classes": list(atlas.CLASSES), "palette": [list(p) for p in atlas.PALETTE]})
    )
    for split in splits:
        (root / "ann_dir" / split).mkdir(parents=True)
    return root


def test_atlas_dataset_is_detected_as_medical_and_evaluated_on_test(tmp_path: Path, demo_like: Path) -> None:
    atlas_dir = _atlas_like(tmp_path / "atlas", ("train", "test"))
    spec = detect_dataset(atlas_dir)
    assert (spec.kind, spec.eval_split, spec.metrics) == ("medical", "test", ("mIoU", "mDice"))
    assert spec.classes == ("background", "liver", "tumour") and spec.crop_size == (256, 256)
    # A val split, where there is one, is preferred; an explicit split wins.
    with_val = _atlas_like(tmp_path / "atlas_val", ("train", "val", "test"))
    assert detect_dataset(with_val).eval_split == "val"
    assert detect_dataset(with_val, eval_split="test").eval_split == "test"
    # The demo (classes.json and a card of its own) stays a folder dataset.
    (demo_like / "dataset_card.json").write_text(json.dumps({"dataset": "alps-demo"}))
    assert detect_dataset(demo_like).kind == "folder"


def test_unet_config_follows_mmseg_medical_unet(tmp_path: Path) -> None:
    assert MEDICAL_MODELS == ("unet-s5-d16",) and not MODELS["unet-s5-d16"].paper
    assert "unet-s5-d16" not in PAPER_MODELS
    ds = dataset_spec("medical", _atlas_like(tmp_path / "atlas", ("train", "test")), crop_size=128)
    cfg = build_config("unet-s5-d16", ds, device="cpu")
    # unet/unet-s5-d16_fcn_4xb4-40k_*: 40k iterations of SGD 0.01 with poly decay, slide test 2/3 stride.
    assert cfg.train_cfg.max_iters == 40000 and cfg.alps.schedule == "40k"
    assert cfg.optim_wrapper.optimizer == {"type": "SGD", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005}
    assert [s["type"] for s in cfg.param_scheduler] == ["PolyLR"]
    model = cfg.model
    assert model.backbone.type == "UNet" and model.backbone.base_channels == 64
    assert model.backbone.num_stages == 5 and model.backbone.norm_cfg.type == "BN"
    assert (model.decode_head.type, model.decode_head.in_channels, model.decode_head.in_index) == (
        "FCNHead",
        64,
        4,
    )
    assert (model.auxiliary_head.in_channels, model.auxiliary_head.in_index) == (128, 3)
    assert model.auxiliary_head.loss_decode.loss_weight == 0.4
    assert model.decode_head.num_classes == model.auxiliary_head.num_classes == 3
    assert model.test_cfg == {"mode": "slide", "crop_size": (128, 128), "stride": (85, 85)}
    assert model.data_preprocessor.test_cfg == {"size_divisor": 16}
    assert cfg.test_evaluator.iou_metrics == ["mIoU", "mDice"]
    assert "SyncBN" not in cfg.pretty_text
    with pytest.raises(ValueError, match="multiples of 16"):
        build_config("unet-s5-d16", dataset_spec("medical", tmp_path, crop_size=72), device="cpu")


def test_unet_predicts_images_smaller_than_its_window_and_splits_into_sub_models(tmp_path: Path) -> None:
    import_mmseg()
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS as REGISTRY
    from mmseg.structures import SegDataSample

    init_default_scope("mmseg")
    medical = dataset_spec("medical", tmp_path, crop_size=64)
    target = REGISTRY.build(build_config("unet-s5-d16", medical, max_iters=2, device="cpu").model)
    # A 50x70 slice (not a multiple of 16, smaller than the 64 px window) is padded for UNet, and the
    # padding is cropped off the prediction.
    sample = SegDataSample(metainfo={"ori_shape": (50, 70), "img_shape": (50, 70)})
    target.eval()
    with torch.no_grad():
        (out,) = target.test_step({"inputs": [torch.randint(0, 255, (3, 50, 70))], "data_samples": [sample]})
    assert tuple(out.pred_sem_seg.data.shape) == (1, 50, 70)

    # The sub-models of surgery: backbone = the whole UNet encoder-decoder, head = FCN head + auxiliary.
    pl = tmp_path / "pl"
    pl.mkdir()
    (pl / "dataset_card.json").write_text(json.dumps({"num_classes": 6}))
    source = REGISTRY.build(
        build_config("unet-s5-d16", dataset_spec("pl", pl, crop_size=64), device="cpu").model
    )
    src, tgt = source.state_dict(), target.state_dict()
    assert {k.split(".")[0] for k in tgt} == {"backbone", "decode_head", "auxiliary_head"}
    backbone_keys = sorted(k for k in tgt if k.startswith("backbone."))
    assert any(".encoder." in k for k in backbone_keys) and any(".decoder." in k for k in backbone_keys)
    _, backbone = select_weights(src, tgt, "backbone")
    assert backbone["loaded"] == backbone_keys
    _, head = select_weights(src, tgt, "head")
    classifiers = {f"{h}.conv_seg.{p}" for h in ("decode_head", "auxiliary_head") for p in ("weight", "bias")}
    head_keys = {k for k in tgt if k.startswith(("decode_head.", "auxiliary_head."))}
    assert set(head["loaded"]) == head_keys - classifiers  # 6 pseudo-classes never fit 3 classes
    assert all(head["skipped"][k].startswith("shape mismatch") for k in classifiers)
    _, overall = select_weights(src, tgt, "overall")
    assert set(overall["loaded"]) == set(tgt) - classifiers
    del source, target
    gc.collect()


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    """Dotted keys of a nested config (list items numbered); tuples and lists compare as lists."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    if isinstance(value, (list, tuple)) and any(isinstance(v, dict) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}.{i}"))
        return out
    return {prefix: list(value) if isinstance(value, (list, tuple)) else value}


def _allowed(key: str) -> bool:
    import fnmatch

    return any(key == pattern or fnmatch.fnmatch(key, pattern) for pattern in configs.ALLOWED_DIFFERENCES)


def _section(cfg: Config) -> dict[str, object]:
    return {
        "model": cfg.to_dict()["model"],
        "optim_wrapper": cfg.to_dict()["optim_wrapper"],
        "param_scheduler": cfg.to_dict()["param_scheduler"],
    }


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_paper_model_is_the_official_config_but_for_the_allowed_differences(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key by key against mmseg's own config file: every difference is in ALLOWED_DIFFERENCES."""
    official = configs.official_config(name)
    iters = official.train_cfg.max_iters
    # The official setting itself (its crop, schedule, 150 ADE20K classes...) leaves only the allowed
    # differences that no study setting can remove: ImageNet weights and BN of a single process.
    crop = tuple(official.crop_size)
    classes = official.model.decode_head.num_classes
    root = tmp_path / "ds"
    root.mkdir()
    (root / "classes.json").write_text(json.dumps({"classes": [f"c{i}" for i in range(classes)]}))
    (root / "ann_dir" / "val").mkdir(parents=True)
    ds = dataset_spec("folder", root, crop_size=crop)
    for launcher in ("none", "pytorch"):
        # SyncBN is a GPU feature: the multi-GPU config is built as on a CUDA machine.
        cuda = launcher == "pytorch"
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        device = "cuda" if launcher == "pytorch" else "cpu"
        ours = build_config(name, ds, max_iters=iters, device=device, launcher=launcher, deterministic=True)
        mine, theirs = _flatten(_section(ours)), _flatten(_section(official))
        differ = {
            k for k in mine.keys() | theirs.keys() if mine.get(k, "<absent>") != theirs.get(k, "<absent>")
        }
        assert all(_allowed(k) for k in differ), sorted(k for k in differ if not _allowed(k))
        assert ours.train_dataloader.batch_size == official.train_dataloader.batch_size
        expected_pretrained = {
            k for k in differ if k.startswith(("model.pretrained", "model.backbone.init_cfg"))
        }
        norm = {k for k in differ if k.endswith("norm_cfg.type")}
        assert differ == expected_pretrained | norm
        official_sync = "SyncBN" in theirs.values()
        assert bool(norm) == (launcher == "none" and official_sync)
        assert ("SyncBN" in mine.values()) == (launcher == "pytorch" and official_sync)
    # The study's own settings are where the rest of the allowed differences come from.
    study = build_config(
        name, dataset_spec("isaid", tmp_path / "iSAID", crop_size=96), max_iters=300, device="cpu"
    )
    mine = _flatten(_section(study))
    differ = {k for k in mine.keys() | theirs.keys() if mine.get(k, "<absent>") != theirs.get(k, "<absent>")}
    assert all(_allowed(k) for k in differ), sorted(k for k in differ if not _allowed(k))
    assert study.model.decode_head.num_classes == 16 and study.model.data_preprocessor.size == (96, 96)
    assert every_reason_is_given()


def every_reason_is_given() -> bool:
    return all(isinstance(r, str) and len(r) > 10 for r in configs.ALLOWED_DIFFERENCES.values())


def test_segformer_b5_head_has_the_official_256_channels(tmp_path: Path) -> None:
    cfg = build_config("segformer-b5", dataset_spec("isaid", tmp_path, crop_size=64), device="cpu")
    assert (
        cfg.model.decode_head.channels
        == 256
        == configs.official_config("segformer-b5").model.decode_head.channels
    )


def test_official_batch_and_backbones() -> None:
    # Per-GPU batch of mmseg's configs: 4 (4xb4 CNNs), 2 (DeepLabV3+ 4xb2, 8xb2 transformers), 1 (Segmenter).
    batches = {name: configs.official_batch_size(name) for name in PAPER_MODELS}
    for name in PAPER_MODELS:
        per_gpu = int(MODELS[name].reference.split("xb")[1].split("-")[0])
        assert batches[name] == per_gpu
    urls = {name: configs.checkpoint_url(configs.official_pretrained(name) or "") for name in PAPER_MODELS}
    assert (
        urls["upernet-r50"] == "https://download.openmmlab.com/pretrain/third_party/resnet50_v1c-2cccc1ad.pth"
    )
    assert urls["deeplabv3plus-r50b"].startswith("https://download.pytorch.org/models/resnet50")
    assert configs.official_pretrained("unet-s5-d16") is None
