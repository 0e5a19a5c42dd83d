# Configuration validation, the study plan, and every value and path the rules take from it.
#
# The configuration is validated once (schema defaults, then alps.config.check_config) and resolved into
# the plan of alps.study; every path below comes from that plan, and every value a job's output depends on
# reaches the job as `params` (or `input`), so that Snakemake's rerun triggers see it change. Option lists
# are argv lists: the rules quote each element with `:q` where it meets the shell.
import json
import os
import re

from snakemake.utils import validate

from alps.classmap import load_class_map
from alps.config import check_config
from alps.datasets import converter_options
from alps.io.manifest import read_manifest
from alps.io.yamlfile import check_config_files
from alps.sharding import images_from_source, shard_count
from alps.study import DATASET_KINDS, SCRATCH, FinetuneRun, PretrainRun, plan_study

# Configuration files within the size limits (alps.io.yamlfile) before anything walks them: an alias
# bomb would make the schema validation below run for ever.
check_config_files(workflow.configfiles)
# Table ids are the paper's ("1", "3a"); YAML reads an unquoted 1 as a number, which would fail the schema.
if isinstance(config.get("tables"), dict):
    config["tables"] = {str(k): v for k, v in config["tables"].items()}
validate(config, schema="../schemas/config.schema.yaml")
check_config(config)

# Which pseudo-label sets, pre-trainings and fine-tunings exist, and where each one's files lie
# (alps.study): the rules below and `alps tables` read the same plan.
STUDY = plan_study(config)
PL_SETS = STUDY.pseudo_labels
DATASETS_CONFIG = config["datasets"]
LABELING = config["labeling"]
TRAINING = config.get("training") or {}
# The split the k-means models are fitted on (and the PL datasets' training split); with
# labeling.label_val the val split is painted with the same models (the paper's PL datasets).
FIT_SPLIT = LABELING["images_split"]
# The sam encoder reuses SAM's embedding, so its features come out of the masks job itself.
FEATURES_IN_MASKS_JOB = LABELING["encoder"]["name"] == "sam"
ENVIRONMENT = "../envs/alps.yaml"

LOGS = STUDY.logs_dir()
BENCH = STUDY.benchmarks_dir()
MANIFEST = STUDY.manifest("{dataset}")
MASK_SHARD = STUDY.mask_shard("{dataset}", "{split}", "{shard}")
FEATURE_SHARD = STUDY.feature_shard("{dataset}", "{split}", "{shard}")
CLUSTER_MODEL = STUDY.cluster_model("{pl}")
PAINT_SHARD = STUDY.paint_shard("{pl}", "{split}", "{shard}")
BOX_SHARD = STUDY.box_shard("{pl}", "{split}", "{shard}")
PL_CARD = STUDY.pl_card("{pl}")
# Training runs: one job per seed (`{seed}`, training.seeds / tables.<id>.seeds).
PRETRAIN_METRICS = STUDY.pretrain_metrics(PretrainRun("{model}", "{pretraining}", "{schedule}", "{seed}"))
FINETUNE_METRICS = STUDY.finetune_metrics(
    FinetuneRun("{dataset}", "{model}", "{pretraining}", "{schedule}", "{init}", "{seed}")
)


def one_of(names):
    """A wildcard constraint matching exactly these names (none: matches nothing)."""
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!)"


wildcard_constraints:
    shard=r"\d+",
    split="train|val|test",
    dataset=r"[^/]+",
    model=r"[^/]+",
    pretraining=r"[^/]+",
    schedule=r"[^/]+",
    init="none|overall|backbone|head",
    seed=r"\d+",


# -- datasets and shards ------------------------------------------------------------------------------------


def raw_inputs(wildcards):
    """Every file under a dataset's raw folder: an added, removed or changed raw image reruns `prepare`."""
    raw_dir = DATASETS_CONFIG[wildcards.dataset].get("raw_dir")
    if not raw_dir:
        return []
    return sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(raw_dir, followlinks=True)
        for name in names
        if not name.startswith(".")
    )


def prepare_arguments(wildcards):
    """`alps prepare` arguments of one configured dataset: converter, raw folder, output, options."""
    dataset = DATASETS_CONFIG[wildcards.dataset]
    options = dict(dataset["options"])
    if "seed" in converter_options(dataset["converter"]):
        options.setdefault("seed", config["seed"])
    arguments = [dataset["converter"]]
    if dataset.get("raw_dir"):
        arguments.append(dataset["raw_dir"])
    arguments.append(STUDY.dataset_dir(wildcards.dataset))
    if options:
        arguments += ["--options", json.dumps(options, sort_keys=True)]
    return arguments


_SHARD_COUNTS = {}


def shard_ids(dataset, split):
    """Shard numbers of a dataset's split (none if it has no images): known once `prepare` has run."""
    manifest = checkpoints.prepare_dataset.get(dataset=dataset).output.manifest
    # Input functions ask for every job; reading (and checking) a 100k-image manifest once is enough.
    key = (manifest, os.stat(manifest).st_mtime_ns, split, LABELING["shard_size"])
    if key not in _SHARD_COUNTS:
        count = int((read_manifest(manifest)["split"] == split).sum())
        if count or split == FIT_SPLIT:
            # Checks the images exist and have distinct ids; an empty fit split is an error naming it.
            count = len(images_from_source(manifest, split))
        # A val split may be absent (ATLAS has train and test only): no shards then.
        _SHARD_COUNTS[key] = shard_count(count, LABELING["shard_size"]) if count else 0
    return [f"{i:04d}" for i in range(_SHARD_COUNTS[key])]


def labeled_splits(dataset):
    """The splits a pseudo-label set of `dataset` paints: the fit split, and val with label_val."""
    splits = [FIT_SPLIT]
    if LABELING["label_val"] and FIT_SPLIT != "val" and shard_ids(dataset, "val"):
        splits.append("val")
    return splits


def dataset_shards(pattern, dataset, split, **fixed):
    """`pattern` expanded over every shard of a dataset's split (other wildcards fixed)."""
    return [pattern.format(dataset=dataset, split=split, shard=s, **fixed) for s in shard_ids(dataset, split)]


def pl_dataset_of(wildcards):
    return PL_SETS[wildcards.pl].dataset


def pl_manifest(wildcards):
    return STUDY.manifest(pl_dataset_of(wildcards))


def shard_options(wildcards):
    """Which images a shard job works on: split, shard index and size, and the seed."""
    return [
        "--split",
        wildcards.split,
        "--shard-index",
        wildcards.shard,
        "--shard-size",
        LABELING["shard_size"],
        "--seed",
        config["seed"],
    ]


def bands_options():
    """`--bands` of the configured labeling, for every job that reads the images."""
    bands = LABELING.get("bands")
    return ["--bands", ",".join(str(b) for b in bands)] if bands else []


# -- labeling engine options --------------------------------------------------------------------------------


def mask_options():
    """`alps masks` options of the configured backend."""
    masks = LABELING["masks"]
    backend = masks["backend"]
    options = ["--masks", backend]
    params = {}
    if backend in ("felzenszwalb", "slic"):
        params = masks.get(backend, {})
    elif backend == "coco":
        options += ["--coco-json", masks["coco"]["json"]]
    elif backend == "sam":
        options += sam_options()
        params = masks["sam"].get("amg", {})
    if params:
        options += ["--mask-params", json.dumps(params, sort_keys=True)]
    return options + bands_options()


def sam_options():
    """The SAM checkpoint options shared by `alps masks` and `alps box-labels`."""
    sam = LABELING["masks"].get("sam") or {}
    if not sam:
        raise ValueError("box-prompted pseudo-labels (variant boxes) need labeling.masks.sam (checkpoint)")
    options = ["--sam-checkpoint", sam["checkpoint"], "--sam-model", sam["model_type"], "--device", sam["device"]]
    return options + (["--bf16"] if sam["bf16"] else [])


def encoder_options():
    """`alps features` options of the configured encoder (with the bands the masks were made from)."""
    encoder = LABELING["encoder"]
    options = ["--encoder", encoder["name"], "--device", encoder["device"]]
    if encoder.get("layers"):
        options += ["--encoder-layers", ",".join(encoder["layers"])]
    if encoder.get("max_side"):
        options += ["--max-side", encoder["max_side"]]
    return options + bands_options()


def cluster_options(wildcards):
    """`alps cluster` options of one pseudo-label set (its k and filtering gate over the engine's)."""
    cluster = LABELING["cluster"]
    pl_set = PL_SETS[wildcards.pl]
    k = pl_set.k if pl_set.k is not None else cluster["k"]
    options = [
        "--k",
        "auto" if k is None else k,
        "--area-threshold",
        pl_set.area_threshold,
        "--seed",
        config["seed"],
        "--batch-size",
        cluster["batch_size"],
        "--epochs",
        cluster["epochs"],
        "--init-sample",
        cluster["init_sample"],
        "--normalize",
        cluster["normalize"],
    ]
    if "k_range" in cluster:
        options += ["--k-range", *cluster["k_range"]]
    return options


def fit_feature_shards(wildcards):
    """The features a set's k-means model is fitted on: the fit split's only (val is painted with it)."""
    return dataset_shards(FEATURE_SHARD, pl_dataset_of(wildcards), FIT_SPLIT)


def paint_inputs(wildcards):
    dataset = pl_dataset_of(wildcards)
    shard = {"dataset": dataset, "split": wildcards.split, "shard": wildcards.shard}
    return {
        "masks": MASK_SHARD.format(**shard),
        "features": FEATURE_SHARD.format(**shard),
        "model": CLUSTER_MODEL.format(pl=wildcards.pl),
    }


def paint_options(wildcards):
    pl_set = PL_SETS[wildcards.pl]
    # One paint job writes the binary variant too when a binary set reuses this set's masks.
    return ["--area-threshold", pl_set.area_threshold] + (
        ["--binary"] if STUDY.binary_children(pl_set.name) else []
    )


def box_options(wildcards):
    boxes = PL_SETS[wildcards.pl].boxes
    classes = boxes["classes"] if isinstance(boxes["classes"], str) else ",".join(boxes["classes"])
    return (
        ["--classes", classes]
        + sam_options()
        + ["--batch-size", boxes.get("batch_size", 64)]
        + (["--skip-unknown"] if boxes.get("skip_unknown") else [])
    )


def painted_shards(wildcards, split):
    """The painted shards a PL dataset gathers: its own, its parent's (binary) or the box labels."""
    pl_set = PL_SETS[wildcards.pl]
    if pl_set.variant == "boxes":
        return dataset_shards(BOX_SHARD, pl_set.dataset, split, pl=pl_set.name)
    return dataset_shards(PAINT_SHARD, pl_set.dataset, split, pl=STUDY.paint_source(pl_set.name))


def fit_painted_shards(wildcards):
    return painted_shards(wildcards, FIT_SPLIT)


def val_painted_shards(wildcards):
    """With labeling.label_val, the val split's shards, painted with the fit split's model (else none)."""
    return painted_shards(wildcards, "val") if "val" in labeled_splits(pl_dataset_of(wildcards)) else []


def pl_dataset_options(wildcards, input):
    pl_set = PL_SETS[wildcards.pl]
    options = ["--split", FIT_SPLIT]
    if input.val_paint:
        options += ["--val-paint-dirs", *input.val_paint]
    if pl_set.variant == "binary":
        options.append("--binary")
    if pl_set.num_classes:
        options += ["--num-classes", pl_set.num_classes]
    return options + bands_options()


def ground_truth(wildcards):
    """The labeled split's ground truth of a set's dataset (label quality, figures)."""
    return f"{STUDY.dataset_dir(pl_dataset_of(wildcards))}/ann_dir/{FIT_SPLIT}"


def class_names(wildcards):
    return f"{STUDY.dataset_dir(pl_dataset_of(wildcards))}/classes.json"


# -- training -----------------------------------------------------------------------------------------------


def training_options(iters, seed):
    """`alps pretrain|finetune` options of one job: its iterations and its training seed."""
    options = [
        "--iters",
        iters,
        "--workers",
        TRAINING["workers"],
        "--device",
        TRAINING["device"],
        "--log-interval",
        TRAINING["log_interval"],
        "--seed",
        seed,
        # A job rerun because its settings changed starts its work dir over instead of refusing it.
        "--restart-on-config-change",
    ]
    if TRAINING.get("batch_size"):  # per GPU; default: the model's official mmseg config
        options += ["--batch-size", TRAINING["batch_size"]]
    if TRAINING.get("crop_size"):
        options += ["--crop-size", TRAINING["crop_size"]]
    if TRAINING.get("amp"):
        options.append("--amp")
    if "deterministic" in TRAINING:  # absent: alps's default (on for the CPU, off on CUDA)
        options.append("--deterministic" if TRAINING["deterministic"] else "--no-deterministic")
    return options


def training_gpus(wildcards):
    return 0 if TRAINING.get("device", "cpu") == "cpu" else TRAINING.get("gpus_per_job", 1)


def training_launch(wildcards):
    """The torchrun prefix of a multi-GPU training job (one process per GPU, as mmengine expects)."""
    n = TRAINING.get("gpus_per_job", 1)
    return ["torchrun", "--standalone", f"--nproc_per_node={n}", "--no-python"] if n > 1 else []


def training_model_options(wildcards):
    """The model's ImageNet backbone (training.pretrained_backbones) and the launcher, as a list for :q."""
    options = []
    backbone = (TRAINING.get("pretrained_backbones") or {}).get(wildcards.model)
    if backbone:
        options += ["--pretrained", str(backbone)]
    if TRAINING.get("gpus_per_job", 1) > 1:
        options += ["--launcher", "pytorch"]
    return options


def finetune_checkpoint_options(wildcards):
    """Nothing downstream reads a fine-tuned model: training.keep_finetune_checkpoints false drops them."""
    return [] if TRAINING.get("keep_finetune_checkpoints", True) else ["--drop-checkpoints"]


def pretrain_inputs(wildcards):
    pretraining = STUDY.pretrainings[wildcards.pretraining]
    inputs = {"card": PL_CARD.format(pl=pretraining.pseudo_labels)}
    if pretraining.continue_from is not None:
        inputs["parent"] = PRETRAIN_METRICS.format(
            model=wildcards.model,
            pretraining=pretraining.continue_from,
            schedule=wildcards.schedule,
            seed=wildcards.seed,
        )
    return inputs


def pretrain_init(wildcards):
    run = STUDY.pretrain_run(wildcards.model, wildcards.pretraining, wildcards.schedule, wildcards.seed)
    parent = STUDY.parent_run(run)
    if parent is None:
        return []
    return ["--init", "backbone", "--from", STUDY.pretrain_checkpoint(parent)]


def finetune_inputs(wildcards):
    inputs = {"manifest": MANIFEST.format(dataset=wildcards.dataset)}
    if wildcards.pretraining != SCRATCH:
        inputs["pretrained"] = PRETRAIN_METRICS.format(**wildcards)
    return inputs


def finetune_init(wildcards):
    if wildcards.pretraining == SCRATCH:
        return ["--init", "none"]
    # The pre-training of the fine-tuning's own seed.
    run = STUDY.pretrain_run(wildcards.model, wildcards.pretraining, wildcards.schedule, wildcards.seed)
    options = ["--init", wildcards.init, "--from", STUDY.pretrain_checkpoint(run)]
    return options + (["--reinit-classifier"] if TRAINING.get("reinit_classifier") else [])


def finetune_dataset_kind(wildcards):
    # The paper's datasets need their kind named; the rest (the demo) is detected from its folder.
    kind = DATASET_KINDS.get(DATASETS_CONFIG[wildcards.dataset]["converter"])
    return ["--dataset", kind] if kind else []


# -- galleries, class maps (rules/gallery.smk) and mosaics (rules/mosaic.smk) ------------------------------
GALLERY = STUDY.gallery_dir("{pl}")
UNMAPPED_CARD = STUDY.unmapped_pl_card("{pl}")


def class_map_of(name):
    """The `class_map` file of a pseudo-label set, or None."""
    return (config["pseudo_labels"][name] or {}).get("class_map")


def _cluster_count(pl_set):
    """The cluster ids a set's map must name: its K (None while `k: auto` is unresolved)."""
    if pl_set.variant == "boxes":
        classes = pl_set.boxes["classes"]
        return len(classes) if isinstance(classes, list) else None
    return pl_set.k if pl_set.k is not None else LABELING["cluster"]["k"]


MAPPED_SETS = [name for name in PL_SETS if class_map_of(name)]
# A bad map fails when the workflow is parsed, before any job runs.
for _name in MAPPED_SETS:
    if PL_SETS[_name].variant == "binary":
        raise ValueError(
            f"pseudo_labels.{_name}.class_map: a binary set has no clusters to name; give the map to the "
            f"set `{PL_SETS[_name].of}` it is painted from"
        )
    try:
        load_class_map(class_map_of(_name), _cluster_count(PL_SETS[_name]))
    except ValueError as exc:
        raise ValueError(f"pseudo_labels.{_name}.class_map: {exc}") from None


def gallery_targets(wildcards):
    return [GALLERY.format(pl=name) for name in ALPS_SETS]


def gallery_options(wildcards):
    path = class_map_of(wildcards.pl)
    options = ["--split", FIT_SPLIT, "--seed", config["seed"]]
    options += ["--area-threshold", PL_SETS[wildcards.pl].area_threshold]
    return options + (["--class-map", path] if path else []) + bands_options()


def apply_class_map_options(wildcards, input):
    # The model's K, not the card's (possibly padded) num_classes, is what every id must cover.
    return ["--model", input.model] if input.model else []


MOSAIC_SETS = sorted(
    name for name, pl_set in PL_SETS.items() if DATASETS_CONFIG[pl_set.dataset]["converter"] == "folder"
)


def mosaic_targets():
    """The mosaics the default target asks for: one folder per pseudo-label set of a folder dataset."""
    return [STUDY.mosaic_dir(name) for name in MOSAIC_SETS]


# -- targets ------------------------------------------------------------------------------------------------


def labeling_targets(wildcards):
    """Every pseudo-label set with its shards, figures and label quality (target rule all_pseudo_labels)."""
    # The shards are kept artifacts (DVC-versioned): as targets, a lost shard is rebuilt with what depends
    # on it, instead of being ignored because the final outputs are up to date.
    targets = []
    for dataset in STUDY.datasets_to_label():
        for split in labeled_splits(dataset):
            targets += dataset_shards(MASK_SHARD, dataset, split) + dataset_shards(FEATURE_SHARD, dataset, split)
    for name, pl_set in PL_SETS.items():
        targets += [STUDY.pl_card(name), STUDY.figures_dir(name)]
        if pl_set.evaluate:
            targets.append(STUDY.label_quality(name))
    return targets


def pretrain_targets(wildcards):
    """Every planned pre-training (target rule all_pretrainings)."""
    return [STUDY.pretrain_metrics(run) for run in STUDY.pretrain_runs]


def all_targets(wildcards):
    targets = labeling_targets(wildcards)
    targets += [STUDY.finetune_metrics(run) for run in STUDY.finetune_runs]
    targets += mosaic_targets()  # workflow/rules/mosaic.smk
    if STUDY.rows:
        targets.append(STUDY.tables_metrics())
    return targets
