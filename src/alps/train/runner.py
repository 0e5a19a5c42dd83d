"""Pre-training on pseudo-labels and fine-tuning, with mmengine's ``Runner`` (real training, then evaluation).

``pretrain`` trains a model on a PL dataset (K pseudo-classes, 255 ignored); ``finetune`` trains one on a
labeled dataset, initialised from a pre-trained checkpoint by ``alps.train.surgery`` (``init`` = none,
overall, backbone or head). Both go through ``train_segmentation``:

1. build the config (``alps.train.configs``) and dump it to ``WORK_DIR/train_config.py``; its sha256 is
   the run's ``config_hash``. A work dir that already holds a different config is refused (no silent mix of
   two runs' checkpoints). ``WORK_DIR/config.py`` is the same model for inference, in stock mmseg types
   only (``configs.inference_config``): ``mmseg.apis.init_model(config.py, checkpoint)`` and ``alps
   predict`` take it without the ``alps`` package;
2. mark the work dir with ``alps_run.json`` (what wrote it; it grants no trust); fetch and check the
   ImageNet backbone checkpoint (``pretrained``: a URL or a local file) before anything trains;
3. for ``init != none``: select the weights (``surgery.write_init_checkpoint``) into
   ``WORK_DIR/init_<mode>.pth`` (plain tensors) and its report ``init_report.json``; the config's
   ``load_from`` points there;
4. ``Runner.train()``; if ``WORK_DIR/last_checkpoint`` exists (a previous attempt was killed), the run
   resumes from it: model, optimizer, LR schedule and iteration (mmengine ``resume``), only from a file
   inside the work dir, and only with ``torch.load(weights_only=True)`` (``alps.train.checkpoints``): a
   checkpoint that is not plain weights stops the run with a clear error;
5. the evaluation on the eval split (mmengine's validation after the last iteration, or ``Runner.test()``
   when a resumed run had nothing left to train), then ``WORK_DIR/metrics.json``: aAcc, mIoU, mAcc (and
   mDice), per class IoU/Acc (and Dice), the checkpoint, iteration, config hash and seed. A ``medical``
   dataset adds ``mIoU_fg``/``mDice_fg``: the paper's Table 6 means, over the foreground classes only
   (liver and tumour; background is left out).

Determinism: mmengine's ``randomness`` seed for Python/numpy/torch and the data samplers, and
``deterministic=True`` on CPU (mmengine then sets cuDNN deterministic, turns cuDNN's benchmark off and
calls ``torch.use_deterministic_algorithms(True)``). On CUDA it is off by default; turned on, the strict
torch mode is relaxed to ``warn_only``, because bilinear interpolation's backward, ``NLLLoss`` and adaptive
pooling's backward have no deterministic CUDA kernel and would stop every mmseg model (docs/training.md).
The global torch determinism flags are restored afterwards.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import torch
from mmengine.hooks import Hook

from alps import __version__
from alps.io.atomic import atomic_write_text
from alps.train import configs
from alps.train.checkpoints import fetch_pretrained, load_checkpoint, numpy_safe_globals
from alps.train.configs import DatasetSpec, build_config, config_text, inference_config, text_hash
from alps.train.mmcv_compat import import_mmseg
from alps.train.surgery import INIT_MODES, RUN_MARKER, write_init_checkpoint

TRAIN_CONFIG_NAME = "train_config.py"
"""The training config (imports ``alps`` for its metric and checkpoint hook); its sha256 is the run's hash."""
CONFIG_NAME = "config.py"
"""The inference config: stock mmseg types only (``configs.inference_config``)."""
METRICS_NAME = "metrics.json"
INIT_REPORT_NAME = "init_report.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """What a training run produced.

    Attributes:
        work_dir: the work dir.
        config_path: the dumped training config (``WORK_DIR/train_config.py``).
        config_hash: sha256 of its text.
        checkpoint: the final checkpoint (``WORK_DIR/iter_<max_iters>.pth``).
        metrics_path: ``WORK_DIR/metrics.json``.
        metrics: its content.
        resumed_from: the checkpoint a killed run was resumed from, or None.
    """

    work_dir: Path
    config_path: Path
    config_hash: str
    checkpoint: Path
    metrics_path: Path
    metrics: dict[str, Any]
    resumed_from: Path | None


class _FinalValidation(Hook):
    """Keeps the metrics of the latest validation and the iteration it ran at."""

    priority = "LOW"

    def __init__(self) -> None:
        self.at = -1
        self.metrics: dict[str, Any] | None = None

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        self.at = runner.iter
        self.metrics = dict(metrics or {})


def _last_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint mmengine last saved in ``work_dir`` (``last_checkpoint`` names it), if it exists.

    Raises:
        ValueError: ``last_checkpoint`` names a file outside the work dir (a run only resumes from its own
            checkpoints).
    """
    pointer = work_dir / "last_checkpoint"
    if not pointer.is_file():
        return None
    path = Path(pointer.read_text().strip())
    if not path.is_absolute():
        path = work_dir / path
    resolved, home = path.resolve(), work_dir.resolve()
    if resolved.parent != home:
        raise ValueError(
            f"{pointer} names {path}, which is not a checkpoint of this work dir ({home}): a run resumes "
            f"only from its own checkpoints. Delete {pointer} to start over, or use another work dir."
        )
    return resolved if resolved.is_file() else None


def run_checkpoint(work_dir: str | os.PathLike[str]) -> Path:
    """The checkpoint a finished run left: the one its ``metrics.json`` evaluated, else its last one.

    Raises:
        FileNotFoundError: the folder holds no finished or started run of ``train_segmentation``.
        ValueError: ``metrics.json`` names a file outside the work dir.
    """
    work = Path(work_dir)
    metrics = work / METRICS_NAME
    if metrics.is_file():
        name = json.loads(metrics.read_text(encoding="utf-8")).get("checkpoint")
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(f"{metrics} names the checkpoint {name!r}, which is not a file of {work}")
        if (work / name).is_file():
            return work / name
    last = _last_checkpoint(work) if work.is_dir() else None
    if last is None:
        raise FileNotFoundError(
            f"{work} holds no checkpoint of a training run (no {METRICS_NAME} naming one, no last_checkpoint)"
        )
    return last


def _previous_config(work: Path) -> Path | None:
    """The training config a work dir already holds (``config.py`` in runs of earlier versions)."""
    if (work / TRAIN_CONFIG_NAME).is_file():
        return work / TRAIN_CONFIG_NAME
    legacy = work / CONFIG_NAME
    if legacy.is_file() and "train_cfg" in legacy.read_text(encoding="utf-8"):
        return legacy
    return None


def _pos_grids(cfg: Any) -> dict[str, tuple[int, int]]:
    """``backbone.pos_embed`` -> the ViT's patch grid at this run's crop (for ``surgery``'s resize)."""
    backbone = cfg.model.backbone
    if "img_size" not in backbone or "patch_size" not in backbone:
        return {}
    h, w = backbone.img_size if not isinstance(backbone.img_size, int) else (backbone.img_size,) * 2
    return {"backbone.pos_embed": (int(h) // backbone.patch_size, int(w) // backbone.patch_size)}


def _target_state(cfg: Any) -> dict[str, torch.Tensor]:
    """The state dict (names, shapes) of the model ``cfg`` builds, randomly initialised."""
    import_mmseg()
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope("mmseg")
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop("pretrained", None)
    model_cfg.get("backbone", {}).pop("init_cfg", None)
    model = MODELS.build(model_cfg)
    return model.state_dict()


def _class_count_keys(cfg: Any, state: dict[str, torch.Tensor]) -> frozenset[str]:
    """The weights whose shape follows the class count: the classifiers (``conv_seg`` of every head,
    Segmenter's class embeddings and mask norm), found by building the model with one class more."""
    wider = copy.deepcopy(cfg)
    for name in ("decode_head", "auxiliary_head"):
        heads = wider.model.get(name)
        for head in heads if isinstance(heads, list) else [heads] if heads else []:
            head.num_classes += 1
    other = _target_state(wider)
    return frozenset(k for k, v in state.items() if k in other and other[k].shape != v.shape)


def _clean(value: Any) -> Any:
    """JSON-safe floats: NaN (a class absent from prediction and label) becomes None.

    mmseg rounds its summary values to two decimals in float32; ``round`` drops the float32 tail
    (91.58999633789062 -> 91.59) so that ``metrics.json`` shows what mmseg logs.
    """
    value = float(value)
    return None if math.isnan(value) else round(value, 2)


def foreground_classes(dataset: DatasetSpec) -> tuple[str, ...]:
    """The classes the paper's medical means average over: every class but label 0 (background).

    Arguments:
        dataset: the dataset; only ``medical`` datasets have a foreground mean.

    Returns:
        The class names (``("liver", "tumour")`` for ATLAS), or ``()`` for other kinds.
    """
    return tuple(dataset.classes[1:]) if dataset.kind == "medical" else ()


def foreground_mean(values: Sequence[float | None]) -> float | None:
    """The mean of per-class percentages as the paper's Table 6 reports it (two decimals, half up).

    Table 6's "mean" averages liver and tumour only (DSC 79.54 and 24.03 -> 51.79). Half-up rounding in
    decimal: binary floats would round 51.785 down. A missing class (None: absent from both labels and
    prediction) makes the mean None rather than a mean over fewer classes.

    Arguments:
        values: the per-class values, percent with two decimals.

    Returns:
        The mean, or None if ``values`` is empty or holds a None.
    """
    numbers = [v for v in values if v is not None]
    if not numbers or len(numbers) != len(values):
        return None
    # repr is the shortest decimal of each float: 79.54, not 79.540000000000006252776074688881635665893...
    total = sum((Decimal(repr(float(v))) for v in numbers), Decimal(0))
    return float((total / len(numbers)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _metrics_record(raw: dict[str, Any], classes: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    summary = {k: _clean(v) for k, v in raw.items() if "." not in k}
    per_class: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if "." in key:
            metric, name = key.split(".", 1)
            per_class.setdefault(metric, {})[name] = _clean(value)
    # Keep the classes' order (label value order), whatever order the metric returned.
    per_class = {m: {c: values.get(c) for c in classes} for m, values in per_class.items()}
    return summary, per_class


def _close_file_handlers(runner: Any) -> None:
    """mmengine keeps its loggers (and their open log files) for the process's life; close ours."""
    for handler in list(runner.logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            runner.logger.removeHandler(handler)


def train_segmentation(
    dataset: DatasetSpec,
    work_dir: str | os.PathLike[str],
    model: str = "upernet-r18",
    *,
    init: str = "none",
    from_checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = True,
    hooks: Sequence[Any] = (),
    role: str = "train",
    restart_on_config_change: bool = False,
    reinit_classifier: bool = False,
    save_best: bool = True,
    **options: Any,
) -> RunResult:
    """Train ``model`` on ``dataset`` in ``work_dir``, resuming a killed attempt, then evaluate it.

    Arguments:
        dataset: the dataset (``configs.dataset_spec`` / ``configs.detect_dataset``).
        work_dir: checkpoints, logs, ``train_config.py``, ``config.py``, ``metrics.json`` (created).
        model: a ``configs.MODELS`` key.
        init: ``none``, ``overall``, ``backbone`` or ``head`` (``alps.train.surgery``).
        from_checkpoint: the pre-trained checkpoint, or the work dir of the run that wrote it (its
            ``run_checkpoint``); required unless ``init`` is ``none``.
        resume: resume from ``WORK_DIR/last_checkpoint`` when it exists (False: start over).
        hooks: extra mmengine ``Hook`` objects registered on the runner (progress reporting, tests); they
            are not part of the config.
        role: recorded in ``metrics.json`` (``pretrain`` or ``finetune``).
        restart_on_config_change: a work dir holding another config is started over instead of refused
            (the workflow: a job rerun because its settings changed).
        reinit_classifier: with ``overall``/``head``, leave the class-count-dependent weights (the
            classifiers) at their initialisation even where the checkpoint's fit (``surgery``).
        save_best: False: write no best-validation checkpoint (``best_mIoU_iter_<n>.pth``, and the second
            save of the periodic checkpoint that mmengine makes with it), for a run whose checkpoints are
            deleted once its metrics are written. The config text and its hash stay the same: the metrics
            come from the last evaluation either way, so the run is the same run.
        **options: ``configs.build_config`` options (``max_iters``, ``schedule``, ``batch_size``,
            ``num_workers``, ``amp``, ``val_interval``, ``checkpoint_interval``, ``max_keep_ckpts``,
            ``log_interval``, ``seed``, ``deterministic``, ``pretrained``, ``device``, ``launcher``).

    Returns:
        The ``RunResult``.

    Raises:
        ValueError: bad ``init``/``from_checkpoint``, or ``work_dir`` holds a run with another config,
            or a checkpoint that is not plain weights (``UntrustedCheckpointError``).
        FileNotFoundError, RuntimeError: the ``pretrained`` backbone is missing or cannot be fetched.
    """
    if init not in INIT_MODES:
        raise ValueError(f"init must be one of {', '.join(INIT_MODES)}, got {init!r}")
    if init != "none" and from_checkpoint is None:
        raise ValueError(f"init {init} needs a pre-trained checkpoint (from_checkpoint)")
    if init == "none" and from_checkpoint is not None:
        raise ValueError("from_checkpoint was given with init none; choose overall, backbone or head")
    if "load_from" in options or "work_dir" in options:
        raise TypeError("load_from and work_dir are set by train_segmentation itself")
    if from_checkpoint is not None and Path(from_checkpoint).is_dir():
        from_checkpoint = run_checkpoint(from_checkpoint)
    work = Path(work_dir).absolute()
    work.mkdir(parents=True, exist_ok=True)
    init_path = work / f"init_{init}.pth" if init != "none" else None
    cfg = build_config(model, dataset, work_dir=work, load_from=init_path, **options)
    if reinit_classifier:
        cfg.alps["reinit_classifier"] = True  # in the config text: another choice is another run
    text = config_text(cfg)
    digest = text_hash(text)
    config_path = work / TRAIN_CONFIG_NAME
    previous = _previous_config(work)
    if previous is not None and previous.read_text(encoding="utf-8") != text:
        if resume and not restart_on_config_change:
            raise ValueError(
                f"{work} holds a run with a different config ({previous}); use another work dir, or "
                "resume=False to start over in this one"
            )
        # The earlier run is stale (e.g. the workflow reruns a job whose settings changed): never resume it.
        log.warning("%s held a run with another config: starting over", work)
        (work / "last_checkpoint").unlink(missing_ok=True)
    atomic_write_text(config_path, text)
    atomic_write_text(work / CONFIG_NAME, config_text(inference_config(cfg)))
    marker = {"written_by": "alps.train.runner", "alps_version": __version__, "role": role}
    atomic_write_text(work / RUN_MARKER, json.dumps(marker, indent=2) + "\n")

    last = _last_checkpoint(work) if resume else None
    if last is not None:
        load_checkpoint(last)  # plain weights, or a clear error now rather than a traceback mid-resume
    pretrained = options.get("pretrained")
    local_pretrained = fetch_pretrained(model, str(pretrained)) if pretrained and last is None else None
    init_report: dict[str, Any] | None = None
    report_path = work / INIT_REPORT_NAME
    if init_path is not None and from_checkpoint is not None:
        if last is None or not init_path.is_file():
            target = _target_state(cfg)
            reinit = _class_count_keys(cfg, target) if reinit_classifier else frozenset()
            init_report = write_init_checkpoint(
                from_checkpoint, target, init, init_path, report_path, _pos_grids(cfg), reinit=reinit
            )
        else:
            init_report = json.loads(report_path.read_text())

    run_cfg = copy.deepcopy(cfg)
    # A unique name: mmengine keys its global logger/visualizer by it, and several runs share a process.
    run_cfg.experiment_name = f"{work.name}-{secrets.token_hex(4)}"
    # The visualizer is a global instance keyed by name too: a shared name would make every later run in
    # the process write its logs and config into the first run's work dir.
    run_cfg.visualizer.name = run_cfg.experiment_name
    if not save_best:
        run_cfg.default_hooks.checkpoint.pop("save_best", None)
        run_cfg.default_hooks.checkpoint.pop("rule", None)
    if last is not None:
        # Resume: the checkpoint restores every weight, so the ImageNet initialiser would only be loaded
        # to be overwritten; drop it.
        run_cfg.model.pop("pretrained", None)
        run_cfg.model.backbone.pop("init_cfg", None)
        run_cfg.resume = True
        run_cfg.load_from = str(last)
        log.info("resuming %s from %s", work, last)
    elif local_pretrained is not None:
        # The config names the location as given (its hash is the same on every machine); the run loads
        # the checked local copy.
        run_cfg.model.backbone.init_cfg = {"type": "Pretrained", "checkpoint": str(local_pretrained)}

    import_mmseg()
    from mmengine.runner import Runner

    deterministic_before = torch.are_deterministic_algorithms_enabled()
    cudnn_before = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if run_cfg.launcher == "pytorch" and run_cfg.env_cfg.dist_cfg.backend == "gloo":
        # A CPU run under torchrun: mmengine's pytorch launcher calls torch.cuda.set_device, so join the
        # process group here (mmengine then uses it as is).
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
    on_cuda = torch.cuda.is_available()  # mmengine trains on CUDA whenever it is visible
    if run_cfg.randomness.deterministic and on_cuda:
        # cuBLAS is deterministic only with a fixed workspace, read when its handle is first created.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    runner = Runner.from_cfg(run_cfg)
    if run_cfg.randomness.deterministic and on_cuda:
        # mmengine's strict mode raises in ops every mmseg head uses (module docstring): keep every
        # deterministic kernel CUDA has and warn for the others.
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        final_val = _FinalValidation()
        runner.register_hook(final_val)
        for hook in hooks:
            runner.register_hook(hook)
        # mmengine's own torch.load (weights_only=True by default) may rebuild numpy data, nothing more
        # (checkpoints of earlier versions hold some; ours hold none).
        with numpy_safe_globals():
            runner.train()
        final = _last_checkpoint(work)
        if final is None:  # pragma: no cover - CheckpointHook(save_last=True) always saves
            raise RuntimeError(f"training in {work} ended without a checkpoint")
        raw = None
        if dataset.eval_split is not None:
            # mmengine validates after the last iteration; the test loop would repeat that same evaluation
            # (same split, pipeline and weights), so it only runs when training did not end with one
            # (a resumed run that had already finished all its iterations).
            raw = final_val.metrics if final_val.at == runner.iter else runner.test()
        iteration = runner.iter
        rank = runner.rank
    finally:
        _close_file_handlers(runner)
        torch.use_deterministic_algorithms(deterministic_before)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_before

    summary, per_class = _metrics_record(raw, dataset.classes) if raw is not None else ({}, {})
    foreground = foreground_classes(dataset)
    if foreground and per_class:
        # mmseg's mIoU/mDice average all classes, background included; Table 6 does not.
        for metric in ("IoU", "Dice"):
            if metric in per_class:
                summary[f"m{metric}_fg"] = foreground_mean([per_class[metric][c] for c in foreground])
    dataset_record: dict[str, Any] = {
        "kind": dataset.kind,
        "root": dataset.data_root,
        "classes": list(dataset.classes),
    }
    if foreground:
        dataset_record["foreground"] = list(foreground)
    record: dict[str, Any] = {
        "role": role,
        "model": model,
        "dataset": dataset_record,
        "evaluated": raw is not None,
        "split": dataset.eval_split,
        "checkpoint": final.name,
        "iter": int(iteration),
        "config": TRAIN_CONFIG_NAME,
        "inference_config": CONFIG_NAME,
        "config_hash": digest,
        "seed": int(cfg.randomness.seed),
        "deterministic": bool(cfg.randomness.deterministic),
        "init": init,
        "from_checkpoint": str(from_checkpoint) if from_checkpoint is not None else None,
        "init_report": INIT_REPORT_NAME if init_report is not None else None,
        "resumed_from": last.name if last is not None else None,
        "metrics": summary,
        "per_class": per_class,
        "alps_version": __version__,
    }
    metrics_path = work / METRICS_NAME
    if rank == 0:
        atomic_write_text(metrics_path, json.dumps(record, indent=2) + "\n")
    return RunResult(
        work_dir=work,
        config_path=config_path,
        config_hash=digest,
        checkpoint=final,
        metrics_path=metrics_path,
        metrics=record,
        resumed_from=last,
    )


def pretrain(
    pl_dataset_dir: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    model: str = "upernet-r18",
    *,
    iters: int | None = None,
    schedule: str | None = None,
    crop_size: int | None = None,
    init: str = "none",
    from_checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = True,
    hooks: Sequence[Any] = (),
    **options: Any,
) -> RunResult:
    """Pre-train ``model`` on a pseudo-label dataset (``alps.pl_dataset.assemble_pl_dataset``).

    K comes from the dataset card; pixels 255 are ignored. Evaluated on ``ann_dir/val`` where the PL
    dataset has one (its ``metrics.json`` then scores the fit to the pseudo-labels); without one
    ``metrics.json`` records ``"evaluated": false``.

    Arguments:
        pl_dataset_dir: the PL dataset (``img_dir/``, ``ann_dir/``, ``dataset_card.json``).
        work_dir: the work dir (see ``train_segmentation``).
        model: a ``configs.MODELS`` key; the paper's are ``configs.PAPER_MODELS``.
        iters: training iterations (overrides ``schedule``).
        schedule: ``80k``, ``160k``, ``320k`` or ``2k``; default: the model's.
        crop_size: training crop side; default 512.
        init: ``backbone`` etc. to start from another pre-training (the paper's Mixed-PL), else ``none``.
        from_checkpoint: that pre-training's checkpoint.
        resume: resume a killed attempt (see ``train_segmentation``).
        hooks: extra mmengine hooks.
        **options: further ``configs.build_config`` options (``batch_size``, ``num_workers``, ``amp``,
            ``checkpoint_interval``, ``seed``, ``device``, ``launcher``, ``pretrained``...).

    Returns:
        The ``RunResult``; ``result.checkpoint`` is what ``finetune(from_checkpoint=...)`` takes.
    """
    dataset = configs.dataset_spec("pl", pl_dataset_dir, crop_size=crop_size)
    return train_segmentation(
        dataset,
        work_dir,
        model,
        init=init,
        from_checkpoint=from_checkpoint,
        resume=resume,
        hooks=hooks,
        role="pretrain",
        max_iters=iters,
        schedule=schedule,
        **options,
    )


def finetune(
    dataset_dir: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    init: str = "none",
    from_checkpoint: str | os.PathLike[str] | None = None,
    model: str = "upernet-r18",
    *,
    dataset: str | None = None,
    iters: int | None = None,
    schedule: str | None = None,
    crop_size: int | None = None,
    resume: bool = True,
    hooks: Sequence[Any] = (),
    keep_checkpoints: bool = True,
    reinit_classifier: bool = False,
    **options: Any,
) -> RunResult:
    """Fine-tune ``model`` on a labeled dataset, initialised from a pre-trained checkpoint.

    Arguments:
        dataset_dir: the dataset in mmseg layout.
        work_dir: the work dir (see ``train_segmentation``).
        init: ``none`` (baseline), ``overall``, ``backbone`` or ``head`` (``alps.train.surgery``).
        from_checkpoint: the pre-trained checkpoint (``pretrain(...).checkpoint``); required unless
            ``init`` is ``none``.
        model: a ``configs.MODELS`` key; must be the pre-trained model's architecture.
        dataset: ``isaid``, ``potsdam``, ``pl``, ``folder`` or ``medical``; default: detected from the
            folder (an ATLAS card -> medical; ``classes.json`` -> folder, e.g. the demo;
            ``dataset_card.json`` -> pl).
        iters: training iterations (overrides ``schedule``).
        schedule: ``80k``, ``160k``, ``320k`` or ``2k``; default: the model's.
        crop_size: training crop side; default per dataset (iSAID 896, Potsdam 512, demo and medical 256).
        resume: resume a killed attempt.
        hooks: extra mmengine hooks.
        keep_checkpoints: False: once ``metrics.json`` is written, delete the checkpoints this run wrote
            (``iter_*.pth``, ``init_*.pth``, ``last_checkpoint``; no ``best_*.pth`` is written): nothing
            downstream reads a fine-tuned model, and a study of many runs would otherwise keep tens of GB.
        reinit_classifier: re-initialise the classifiers even where the pre-training's class count
            equals the task's (iSAID-PL 16 -> iSAID 16), instead of loading pseudo-class k as class k.
        **options: further ``configs.build_config`` options.

    Returns:
        The ``RunResult``; ``metrics.json`` holds the evaluation.
    """
    spec = (
        configs.dataset_spec(dataset, dataset_dir, crop_size=crop_size)
        if dataset is not None
        else configs.detect_dataset(dataset_dir, crop_size=crop_size)
    )
    # Checkpoint-named files in a folder no alps run has claimed are the user's: never dropped.
    foreign = () if (Path(work_dir) / RUN_MARKER).is_file() else checkpoint_files(work_dir)
    result = train_segmentation(
        spec,
        work_dir,
        model,
        init=init,
        from_checkpoint=from_checkpoint,
        resume=resume,
        hooks=hooks,
        role="finetune",
        reinit_classifier=reinit_classifier,
        save_best=keep_checkpoints,  # a best checkpoint of a run whose checkpoints are dropped is never read
        max_iters=iters,
        schedule=schedule,
        **options,
    )
    if not keep_checkpoints:
        drop_checkpoints(result.work_dir, keep=foreign)
    return result


def checkpoint_files(work_dir: str | os.PathLike[str]) -> list[Path]:
    """The files in ``work_dir`` named as ``train_segmentation`` names its checkpoints (plain files)."""
    work = Path(work_dir)
    files = [
        *work.glob("iter_*.pth"),
        *work.glob("best_*.pth"),
        *work.glob("init_*.pth"),
        work / "last_checkpoint",
    ]
    return [f for f in files if f.is_file() and not f.is_symlink()]


def drop_checkpoints(work_dir: str | os.PathLike[str], keep: Collection[Path] = ()) -> list[Path]:
    """Delete the checkpoints ``train_segmentation`` wrote in ``work_dir`` (those names only); list them.

    ``keep``: files of those names that are not the run's (there before its first run), left in place.
    """
    kept = set(keep)
    dropped = [f for f in checkpoint_files(work_dir) if f not in kept]
    for path in dropped:
        path.unlink()
    return dropped
