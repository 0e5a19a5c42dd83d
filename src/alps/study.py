"""The study plan: which pseudo-label sets, pre-trainings, fine-tunings and table rows a config asks for.

One function, ``plan_study``, expands the ``pseudo_labels``, ``pretrainings``, ``training`` and ``tables``
sections of a (schema-validated) workflow configuration into the runs the paper's tables need, each once,
and names the file of every run. The Snakemake rules (``workflow/rules/*.smk``) build their targets from
this plan and ``alps tables`` reads the metrics files it names, so the DAG and the tables cannot disagree
about what was run or where its result lies.

Vocabulary: a *pseudo-label set* is one labeling result (a PL dataset); a *pre-training* trains on one
set, optionally continuing from another pre-training's backbone (the paper's Mixed-PL); a *schedule* is a
named iteration count (``80k``); a fine-tuning starts from scratch (``init`` ``none``, the paper's
"Baseline") or from a pre-training with one sub-model initialisation (``overall``/``backbone``/``head``).
Every run is repeated for each training *seed* (``training.seeds``, per table ``tables.<id>.seeds``; by
default the one top-level ``seed``): a table row is the set of its seeds' runs, and the fine-tuning of
seed s starts from the pre-training of seed s.

Importable without torch, mmseg or pandas: the workflow imports it when it parses the Snakefile.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alps.config import AREA_THRESHOLD

SCRATCH = "scratch"
"""The pre-training name of a fine-tuning that starts from scratch (the paper's "Baseline")."""

INIT_LABELS: dict[str, str] = {
    "none": "Baseline",
    "overall": "Overall",
    "backbone": "Backbone",
    "head": "Head",
}
"""Sub-model initialisations in the paper's words (its column "Type")."""

METHOD_LABELS: dict[str, str] = {
    "upernet-r50": "UperNet",
    "pspnet-r50": "PspNet",
    "fcn-hrnet-w48": "HRNet",
    "deeplabv3plus-r50b": "Deeplabv3plus",
    "vit-b-upernet": "ViT",
    "swin-b-upernet": "Swin",
    "segmenter-vit-b": "Segmenter",
    "segformer-b5": "Segformer",
    "upernet-r18": "UperNet-R18",
    "segformer-b0": "SegFormer-B0",
    "unet-s5-d16": "UNet",
}
"""Model names as the paper's tables spell them (the small and medical models have no paper row)."""

DATASET_KINDS: dict[str, str] = {"isaid": "isaid", "potsdam": "potsdam", "atlas": "medical"}
"""Converter -> the dataset kind that decides a table's value columns (everything else: ``folder``)."""

DATASET_LABELS: dict[str, str] = {"isaid": "iSAID", "potsdam": "Potsdam", "atlas": "ATLAS"}

TABLE_IDS: tuple[str, ...] = ("1", "2", "3a", "3b", "4", "5", "6")
"""The paper's tables, in the paper's order."""

TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "1": ("finetune_dataset", "method", "type", "pretrained", "step"),
    "2": ("finetune_dataset", "method", "type", "pretrained", "step"),
    "3a": ("finetune_dataset", "method", "type", "pretrained", "step"),
    "3b": ("finetune_dataset", "method", "type", "pretrained", "step"),
    "4": ("method", "type", "pretrained", "finetune_dataset", "step"),
    "5": ("area_threshold", "method", "finetune_dataset", "step"),
    "6": ("method", "pretrained"),
}
"""The key columns of each published table (``results/paper/table*.csv``), in their order."""

PUBLISHED_FILES: dict[str, str] = {
    "1": "table1_isaid.csv",
    "2": "table2_potsdam.csv",
    "3a": "table3a_samrs_star.csv",
    "3b": "table3b_binary_mixed.csv",
    "4": "table4_steps.csv",
    "5": "table5_area_threshold.csv",
    "6": "table6_atlas.csv",
}
"""File name of each published table (in ``results/paper/`` and ``../shared/paper/``)."""

MEDICAL_NOTE = "model differs from the paper's (DoDNet, MED3D, SAM-Med2D are not in mmsegmentation)"


class StudyError(ValueError):
    """The configuration's study sections do not fit together; the message names the key."""


@dataclass(frozen=True)
class PseudoLabelSet:
    """One pseudo-label dataset: how it is made and what the tables call it.

    ``variant`` is ``alps`` (masks -> features -> k-means -> paint), ``binary`` (every kept mask of the
    ``alps`` set ``of`` is foreground; reuses that set's masks and area filter) or ``boxes`` (SAMRS*: SAM
    prompted with detector boxes).
    """

    name: str
    dataset: str
    label: str
    area_threshold: float
    variant: str = "alps"
    k: int | None = None
    num_classes: int | None = None
    of: str | None = None
    evaluate: bool = False
    boxes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pretraining:
    """Pre-training on one pseudo-label set, optionally continuing from another pre-training's backbone."""

    name: str
    pseudo_labels: str
    label: str
    continue_from: str | None = None


@dataclass(frozen=True)
class PretrainRun:
    """One pre-training job: a model on a pre-training's set, for a schedule, with one training seed."""

    model: str
    pretraining: str
    schedule: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.model}/{self.pretraining}/{self.schedule}/seed{self.seed}"


@dataclass(frozen=True)
class FinetuneRun:
    """One fine-tuning job; a pre-trained one starts from the pre-training of the same seed."""

    dataset: str
    model: str
    pretraining: str  # SCRATCH for the baseline
    schedule: str  # the pre-training's schedule; the model's own for the baseline
    init: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.model}/{self.pretraining}/{self.schedule}/{self.init}/seed{self.seed}"


@dataclass(frozen=True)
class PlannedRow:
    """One row of a result table: its key columns and the fine-tunings that fill it, one per seed.

    ``runs`` is empty for a row that only the paper has ("not run").
    """

    table: str
    keys: Mapping[str, str]
    runs: tuple[FinetuneRun, ...]
    dataset_kind: str
    note: str = ""

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(run.seed for run in self.runs)


@dataclass
class Study:
    """Everything a configuration asks for, each run once, in a stable order."""

    results_dir: str
    pseudo_labels: dict[str, PseudoLabelSet]
    pretrainings: dict[str, Pretraining]
    pretrain_runs: list[PretrainRun]
    finetune_runs: list[FinetuneRun]
    rows: list[PlannedRow]
    schedules: dict[str, int]
    base_schedules: dict[str, str]
    labeling_gpus: dict[str, int] = field(default_factory=dict)
    """GPUs each labeling job claims (Snakemake's ``gpu`` resource), by rule: ``masks``, ``features``,
    ``masks_and_features``, ``box_labels`` (``labeling_gpus``)."""

    # -- paths (relative to the working directory, like results_dir) --------------------------------------
    # The rules pass wildcard placeholders (``"{dataset}"``) to get their patterns: every path of the DAG is
    # spelled here once.
    def dataset_dir(self, dataset: str) -> str:
        return f"{self.results_dir}/datasets/{dataset}"

    def manifest(self, dataset: str) -> str:
        return f"{self.dataset_dir(dataset)}/manifest.csv"

    def mask_shard(self, dataset: str, split: str, shard: str) -> str:
        return f"{self.labeling_dir(dataset)}/masks/{split}/shard_{shard}.parquet"

    def feature_shard(self, dataset: str, split: str, shard: str) -> str:
        return f"{self.labeling_dir(dataset)}/features/{split}/shard_{shard}.npz"

    def cluster_model(self, name: str) -> str:
        return f"{self.pseudo_label_dir(name)}/cluster/kmeans.npz"

    def paint_shard(self, name: str, split: str, shard: str) -> str:
        """A painted shard of one split (the paper's PL datasets label train and val with one model)."""
        return f"{self.pseudo_label_dir(name)}/paint/{split}/shard_{shard}"

    def box_shard(self, name: str, split: str, shard: str) -> str:
        return f"{self.pseudo_label_dir(name)}/boxes/{split}/shard_{shard}"

    def pl_card(self, name: str) -> str:
        return f"{self.pl_dataset_dir(name)}/dataset_card.json"

    def gallery_dir(self, name: str) -> str:
        """The cluster gallery of a set (``alps gallery``: index.html, one sheet per cluster)."""
        return f"{self.results_dir}/gallery/{name}"

    def unmapped_pl_dir(self, name: str) -> str:
        """The cluster-id PL dataset of a set with a ``class_map`` (``pl/<set>`` holds the named classes)."""
        return f"{self.pseudo_label_dir(name)}/unmapped"

    def unmapped_pl_card(self, name: str) -> str:
        return f"{self.unmapped_pl_dir(name)}/dataset_card.json"

    def mosaic_dir(self, name: str) -> str:
        """One label raster per scene of a set of a tiled (``folder``) dataset (``alps mosaic``)."""
        return f"{self.results_dir}/mosaic/{name}"

    def label_quality(self, name: str) -> str:
        return f"{self.results_dir}/metrics/label_quality/{name}.json"

    def figures_dir(self, name: str) -> str:
        return f"{self.results_dir}/figures/{name}"

    def logs_dir(self) -> str:
        return f"{self.results_dir}/logs"

    def benchmarks_dir(self) -> str:
        return f"{self.results_dir}/benchmarks"

    def tables_metrics(self) -> str:
        """The tables' numbers, outside the tables folder, so that DVC tracks them as metrics."""
        return f"{self.results_dir}/metrics/tables.json"

    def labeling_dir(self, dataset: str) -> str:
        """Masks and features of a dataset: shared by every pseudo-label set made from it."""
        return f"{self.results_dir}/labeling/{dataset}"

    def pseudo_label_dir(self, name: str) -> str:
        """Cluster model and painted shards of one pseudo-label set."""
        return f"{self.results_dir}/pseudo_labels/{name}"

    def pl_dataset_dir(self, name: str) -> str:
        return f"{self.results_dir}/pl/{name}"

    def pretrain_dir(self, run: PretrainRun) -> str:
        return f"{self.results_dir}/train/pretrain/{run.key}"

    def pretrain_metrics(self, run: PretrainRun) -> str:
        return f"{self.pretrain_dir(run)}/metrics.json"

    def finetune_metrics(self, run: FinetuneRun) -> str:
        return f"{self.finetune_dir(run)}/metrics.json"

    def pretrain_checkpoint(self, run: PretrainRun) -> str:
        """The final checkpoint a pre-training leaves (mmengine's ``iter_<iterations>.pth``)."""
        return f"{self.pretrain_dir(run)}/iter_{self.iters(run.schedule)}.pth"

    def finetune_dir(self, run: FinetuneRun) -> str:
        return f"{self.results_dir}/train/finetune/{run.key}"

    def tables_dir(self) -> str:
        return f"{self.results_dir}/tables"

    # -- lookups -------------------------------------------------------------------------------------------
    def datasets_to_label(self) -> list[str]:
        """Datasets whose masks and features some ``alps`` pseudo-label set needs."""
        return sorted({s.dataset for s in self.pseudo_labels.values() if s.variant == "alps"})

    def binary_children(self, name: str) -> list[str]:
        """The binary sets painted from the ``alps`` set ``name``."""
        return [s.name for s in self.pseudo_labels.values() if s.variant == "binary" and s.of == name]

    def paint_source(self, name: str) -> str:
        """The set whose painted shards a PL dataset gathers (a binary set reads its parent's)."""
        pl_set = self.pseudo_labels[name]
        return pl_set.of if pl_set.variant == "binary" and pl_set.of else name

    def iters(self, schedule: str) -> int:
        return self.schedules[schedule]

    def pretrain_run(self, model: str, pretraining: str, schedule: str, seed: int) -> PretrainRun:
        return PretrainRun(model, pretraining, schedule, int(seed))

    def parent_run(self, run: PretrainRun) -> PretrainRun | None:
        """The pre-training a Mixed-PL run continues from (same model, schedule and seed), if any."""
        parent = self.pretrainings[run.pretraining].continue_from
        return None if parent is None else PretrainRun(run.model, parent, run.schedule, run.seed)


def _on_cuda(device: str) -> bool:
    return device.startswith("cuda")


def labeling_gpus(config: Mapping[str, Any]) -> dict[str, int]:
    """The GPUs each labeling rule claims: 1 only where its work runs on CUDA.

    A CPU job that claims a GPU holds a Slurm GPU for nothing, and on a GPU box takes a ``--resources gpu``
    slot from a job that needs one. SAM runs on ``labeling.masks.sam.device`` (masks, box labels, and the
    ``sam`` encoder's features, which reuse SAM's embedding); any other encoder on
    ``labeling.encoder.device``. ``config`` is schema-validated, so both devices carry the schema's defaults
    (``workflow/schemas/``).
    """
    labeling = config["labeling"]
    sam = labeling["masks"].get("sam")  # absent where neither the masks nor box prompts use SAM
    sam_on_cuda = sam is not None and _on_cuda(sam["device"])
    mask_gpus = int(labeling["masks"]["backend"] == "sam" and sam_on_cuda)
    encoder = labeling["encoder"]
    feature_gpus = mask_gpus if encoder["name"] == "sam" else int(_on_cuda(encoder["device"]))
    return {
        "masks": mask_gpus,
        "features": feature_gpus,
        "masks_and_features": max(mask_gpus, feature_gpus),
        "box_labels": int(sam_on_cuda),
    }


def _dataset_label(config: Mapping[str, Any], name: str) -> str:
    dataset = config["datasets"][name]
    return dataset.get("label") or DATASET_LABELS.get(dataset["converter"], name)


def _dataset_kind(config: Mapping[str, Any], name: str) -> str:
    return DATASET_KINDS.get(config["datasets"][name]["converter"], "folder")


def _pseudo_label_sets(config: Mapping[str, Any]) -> dict[str, PseudoLabelSet]:
    labeling = config.get("labeling", {})
    default_area = float(labeling.get("area_threshold", AREA_THRESHOLD))
    sets: dict[str, PseudoLabelSet] = {}
    for name, entry in (config.get("pseudo_labels") or {}).items():
        sets[name] = PseudoLabelSet(
            name=name,
            dataset=entry["dataset"],
            label=entry.get("label") or name,
            variant=entry.get("variant", "alps"),
            area_threshold=float(entry.get("area_threshold", default_area)),
            k=entry.get("k"),
            num_classes=entry.get("num_classes"),
            of=entry.get("of"),
            evaluate=bool(entry.get("evaluate", False)),
            boxes=dict(entry.get("boxes") or {}),
        )
    for name, pl_set in sets.items():
        if pl_set.dataset not in config["datasets"]:
            raise StudyError(
                f"pseudo_labels.{name}.dataset: {pl_set.dataset!r} is not one of the configured datasets "
                f"{sorted(config['datasets'])}"
            )
        if pl_set.variant == "binary":
            parent = sets.get(pl_set.of or "")
            if parent is None or parent.variant != "alps":
                raise StudyError(
                    f"pseudo_labels.{name}.of: a binary set names the alps set whose masks it reuses; "
                    f"{pl_set.of!r} is not an alps set of pseudo_labels"
                )
            if parent.dataset != pl_set.dataset:
                raise StudyError(
                    f"pseudo_labels.{name}: dataset {pl_set.dataset!r} differs from that of its set "
                    f"{parent.name!r} ({parent.dataset!r})"
                )
        if pl_set.variant == "boxes" and not pl_set.boxes.get("dir"):
            raise StudyError(f"pseudo_labels.{name}.boxes.dir: a boxes set needs the detector's box files")
    return sets


def _pretrainings(config: Mapping[str, Any], sets: Mapping[str, PseudoLabelSet]) -> dict[str, Pretraining]:
    # Every pseudo-label set is a pre-training of the same name; `pretrainings` adds the continued ones.
    result = {name: Pretraining(name, name, s.label) for name, s in sets.items()}
    for name, entry in (config.get("pretrainings") or {}).items():
        if name in result or name == SCRATCH:
            raise StudyError(f"pretrainings.{name}: the name is taken (by a pseudo-label set or 'scratch')")
        result[name] = Pretraining(
            name, entry["pseudo_labels"], entry.get("label") or name, entry.get("continue_from")
        )
    for name, pretraining in result.items():
        if pretraining.pseudo_labels not in sets:
            raise StudyError(
                f"pretrainings.{name}.pseudo_labels: {pretraining.pseudo_labels!r} is not a pseudo-label set"
            )
    for name, pretraining in result.items():
        seen = {name}
        parent = pretraining.continue_from
        while parent is not None:
            if parent not in result:
                raise StudyError(f"pretrainings.{name}.continue_from: {parent!r} is not a pre-training")
            if parent in seen:
                raise StudyError(f"pretrainings.{name}.continue_from: the chain loops through {parent!r}")
            seen.add(parent)
            parent = result[parent].continue_from
    return result


def _published_keys(published_dir: Path | None, table: str) -> list[dict[str, str]]:
    if published_dir is None:
        return []
    path = published_dir / PUBLISHED_FILES[table]
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{k: row[k] for k in TABLE_KEYS[table]} for row in csv.DictReader(handle)]


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_STEP = re.compile(r"(\d+(?:\.\d+)?)k")


def normalize_key(column: str, value: Any) -> str:
    """The form in which two key values of a table row are compared.

    Case, spaces, ``-`` and ``_`` are ignored (``Pspnet`` == ``PspNet``, ``iSAID-PL`` == ``isaid_pl``);
    numbers compare by value (``"0.3"`` == ``"0.30"``); steps by iterations (``80K`` == ``80k`` ==
    ``80000``); a pre-training of ``-``, ``none`` or ``baseline`` is the same "not pre-trained".

    Arguments:
        column: the key column (``step`` and ``pretrained`` have their own rules).
        value: the value.

    Returns:
        The normalised text.
    """
    text = str(value).strip().casefold()
    if column == "step":
        match = _STEP.fullmatch(text.replace(" ", ""))
        if match:
            return str(int(float(match.group(1)) * 1000))
    if _NUMBER.fullmatch(text):
        number = float(text)
        return str(int(number)) if column == "step" and number.is_integer() else repr(number)
    text = re.sub(r"[\s_\-]+", "", text)
    if column == "pretrained" and text in ("", "none", "baseline"):
        return ""
    return text


def _row_identity(keys: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, normalize_key(k, v)) for k, v in keys.items()))


def training_seeds(
    config: Mapping[str, Any], value: Any, where: str, default: Sequence[int] | None = None
) -> tuple[int, ...]:
    """The training seeds a key names, checked: distinct integers >= 0, at least one.

    Arguments:
        config: the configuration (its top-level ``seed`` is the default of ``training.seeds``).
        value: the key's value (``training.seeds`` or ``tables.<id>.seeds``); None: the default.
        where: the key, for the error message.
        default: the seeds when ``value`` is None; None: ``[seed]``, the labeling seed, so that a
            configuration without ``training.seeds`` trains as it did with one seed.

    Returns:
        The seeds, in the given order.

    Raises:
        StudyError: not a non-empty list of distinct non-negative integers.
    """
    if value is None:
        return tuple(default) if default is not None else (int(config.get("seed", 0)),)
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or not value
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in value)
        or len(set(value)) != len(value)
    ):
        raise StudyError(f"{where}: a non-empty list of distinct integers >= 0, got {value!r}")
    return tuple(int(s) for s in value)


def plan_study(config: Mapping[str, Any], published_dir: str | Path | None = None) -> Study:
    """Expand a workflow configuration into its runs and table rows.

    Arguments:
        config: the validated configuration (``workflow/schemas/config.schema.yaml``, defaults filled).
        published_dir: the folder with the paper's tidy tables (``results/paper``); where a configured
            table's fine-tuning datasets are the paper's, its published rows that the config does not run
            are added as rows without a run, so the table shows them as "not run". ``None``: no such rows.

    Returns:
        The ``Study``.

    Raises:
        StudyError: a table, pre-training or pseudo-label set names something that is not configured.
    """
    sets = _pseudo_label_sets(config)
    pretrainings = _pretrainings(config, sets)
    training = config.get("training") or {}
    models: dict[str, str] = dict(training.get("models") or {})
    schedules: dict[str, int] = dict(training.get("schedules") or {})
    for model, schedule in models.items():
        if schedule not in schedules:
            raise StudyError(
                f"training.models.{model}: schedule {schedule!r} is not in training.schedules "
                f"{sorted(schedules)}"
            )

    pretrain_runs: dict[str, PretrainRun] = {}
    finetune_runs: dict[str, FinetuneRun] = {}

    def add_pretrain(run: PretrainRun) -> None:
        parent = pretrainings[run.pretraining].continue_from
        if parent is not None:
            add_pretrain(PretrainRun(run.model, parent, run.schedule, run.seed))
        pretrain_runs.setdefault(run.key, run)

    default_seeds = training_seeds(config, training.get("seeds"), "training.seeds")

    rows: list[PlannedRow] = []
    published = Path(published_dir) if published_dir is not None else None
    tables = {str(k): v for k, v in (config.get("tables") or {}).items()}
    if tables and not models:
        raise StudyError("tables: result tables need training.models to train")
    for table in TABLE_IDS:
        spec = tables.get(table)
        if spec is None:
            continue
        where = f"tables.{table}"
        table_models = spec.get("models") or list(models)
        for model in table_models:
            if model not in models:
                raise StudyError(f"{where}.models: {model!r} is not in training.models {sorted(models)}")
        for dataset in spec["finetune_datasets"]:
            if dataset not in config["datasets"]:
                raise StudyError(
                    f"{where}.finetune_datasets: {dataset!r} is not one of the configured datasets "
                    f"{sorted(config['datasets'])}"
                )
        for name in spec.get("pretrained", []):
            if name not in pretrainings:
                raise StudyError(
                    f"{where}.pretrained: {name!r} is neither a pseudo-label set nor a pre-training "
                    f"({sorted(pretrainings)})"
                )
        for schedule in spec.get("schedules") or []:
            if schedule != "base" and schedule not in schedules:
                raise StudyError(f"{where}.schedules: {schedule!r} is not in training.schedules")
        seeds = training_seeds(config, spec.get("seeds"), f"{where}.seeds", default_seeds)
        table_rows: list[PlannedRow] = []
        for model in table_models:
            base = models[model]
            for dataset in spec["finetune_datasets"]:
                kind = _dataset_kind(config, dataset)
                note = MEDICAL_NOTE if table == "6" else ""
                # (pre-training, schedule, init, the row's "pretrained" key)
                cells: list[tuple[str, str, str, str]] = []
                if spec.get("baseline", False):
                    cells.append((SCRATCH, base, "none", "-"))
                for name in spec.get("pretrained", []):
                    for schedule in spec.get("schedules") or ["base"]:
                        schedule = base if schedule == "base" else schedule
                        for init in spec.get("inits") or ["overall", "backbone", "head"]:
                            cells.append((name, schedule, init, name))
                for pretraining, schedule, init, pretrained in cells:
                    # One job per seed; a pre-trained one starts from the pre-training of its own seed.
                    runs = tuple(FinetuneRun(dataset, model, pretraining, schedule, init, s) for s in seeds)
                    for run in runs:
                        finetune_runs.setdefault(run.key, run)
                        if run.pretraining != SCRATCH:
                            add_pretrain(PretrainRun(model, run.pretraining, run.schedule, run.seed))
                    keys = _row_keys(table, config, sets, pretrainings, runs[0], dataset, pretrained)
                    table_rows.append(PlannedRow(table, keys, runs, kind, note))
        table_rows = _with_published(table, table_rows, _published_keys(published, table), config, spec)
        rows += table_rows

    return Study(
        results_dir=str(config["results_dir"]),
        pseudo_labels=sets,
        pretrainings=pretrainings,
        pretrain_runs=list(pretrain_runs.values()),
        finetune_runs=list(finetune_runs.values()),
        rows=rows,
        schedules=schedules,
        base_schedules=models,
        labeling_gpus=labeling_gpus(config),
    )


def _row_keys(
    table: str,
    config: Mapping[str, Any],
    sets: Mapping[str, PseudoLabelSet],
    pretrainings: Mapping[str, Pretraining],
    run: FinetuneRun,
    dataset: str,
    pretrained: str,
) -> dict[str, str]:
    scratch = run.pretraining == SCRATCH
    values = {
        "finetune_dataset": _dataset_label(config, dataset),
        "method": METHOD_LABELS.get(run.model, run.model),
        "type": INIT_LABELS[run.init],
        "pretrained": ("baseline" if table == "6" else "-") if scratch else pretrainings[pretrained].label,
        "step": run.schedule,
        "area_threshold": "" if scratch else str(sets[pretrainings[pretrained].pseudo_labels].area_threshold),
    }
    return {key: values[key] for key in TABLE_KEYS[table]}


def _with_published(
    table: str,
    rows: list[PlannedRow],
    published: Sequence[Mapping[str, str]],
    config: Mapping[str, Any],
    spec: Mapping[str, Any],
) -> list[PlannedRow]:
    """Order rows as the paper does and add its rows that this config does not run (as "not run").

    Only where the table fine-tunes on a dataset of the paper's (iSAID, Potsdam, the medical set):
    the demo's analogue of Table 1 does not list iSAID rows it could never fill.
    """
    kinds = {_dataset_kind(config, d) for d in spec["finetune_datasets"]}
    if not published or not kinds & {"isaid", "potsdam", "medical"}:
        return rows
    by_identity = {_row_identity(r.keys): r for r in rows}
    kind_of_label = {_dataset_label(config, d).lower(): _dataset_kind(config, d) for d in config["datasets"]}
    ordered: list[PlannedRow] = []
    for keys in published:
        identity = _row_identity(keys)
        if identity in by_identity:
            ordered.append(by_identity.pop(identity))
        else:
            dataset_label = keys.get("finetune_dataset", "")
            kind = (
                "medical" if table == "6" else kind_of_label.get(dataset_label.lower(), dataset_label.lower())
            )
            note = "not in mmsegmentation; see the UNet rows" if table == "6" else "not in this configuration"
            ordered.append(PlannedRow(table, dict(keys), (), kind, note))
    # Rows the paper does not have (other models, e.g. UNet in Table 6) follow the paper's.
    ordered += [r for r in rows if _row_identity(r.keys) in by_identity]
    return ordered


def iter_table_rows(study: Study) -> Iterable[tuple[PlannedRow, dict[int, str]]]:
    """Each planned row with its fine-tunings' ``metrics.json`` paths by seed (empty for a paper-only row)."""
    for row in study.rows:
        yield row, {run.seed: study.finetune_metrics(run) for run in row.runs}
