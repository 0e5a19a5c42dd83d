# Configuration validation, the study plan, paths and the shard bookkeeping shared by every rule file.
import json
import os
import re

from snakemake.utils import validate

from alps.config import check_config
from alps.datasets import converter_options
from alps.sharding import images_from_source, shard_count
from alps.study import DATASET_KINDS, SCRATCH, PretrainRun, plan_study

# Table ids are the paper's ("1", "3a"); YAML reads an unquoted 1 as a number, which would fail the schema.
if isinstance(config.get("tables"), dict):
    config["tables"] = {str(k): v for k, v in config["tables"].items()}
validate(config, schema="../schemas/config.schema.yaml")
check_config(config)

# Which pseudo-label sets, pre-trainings and fine-tunings exist, and where each one's files lie
# (alps.study): the rules below and `alps tables` read the same plan.
STUDY = plan_study(config)
SEED = config["seed"]
RESULTS = config["results_dir"]
DATASETS = config["datasets"]
LABELING = config["labeling"]
MASKS = LABELING["masks"]
ENCODER = LABELING["encoder"]
CLUSTER = LABELING["cluster"]
SPLIT = LABELING["images_split"]
SHARD_SIZE = LABELING["shard_size"]
USES_SAM = MASKS["backend"] == "sam"
# The sam encoder reuses SAM's embedding, so its features come out of the masks job itself.
FEATURES_IN_MASKS_JOB = ENCODER["name"] == "sam"
PL_SETS = STUDY.pseudo_labels
TRAINING = config.get("training") or {}

LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
MANIFEST = f"{RESULTS}/datasets/{{dataset}}/manifest.csv"
MASK_SHARD = f"{RESULTS}/labeling/{{dataset}}/masks/shard_{{shard}}.parquet"
FEATURE_SHARD = f"{RESULTS}/labeling/{{dataset}}/features/shard_{{shard}}.npz"
CLUSTER_MODEL = f"{RESULTS}/pseudo_labels/{{pl}}/cluster/kmeans.npz"
PAINT_SHARD = f"{RESULTS}/pseudo_labels/{{pl}}/paint/shard_{{shard}}"
BOX_SHARD = f"{RESULTS}/pseudo_labels/{{pl}}/boxes/shard_{{shard}}"
PL_CARD = f"{RESULTS}/pl/{{pl}}/dataset_card.json"
PRETRAIN_METRICS = f"{RESULTS}/train/pretrain/{{model}}/{{pretraining}}/{{schedule}}/metrics.json"
FINETUNE_METRICS = (
    f"{RESULTS}/train/finetune/{{dataset}}/{{model}}/{{pretraining}}/{{schedule}}/{{init}}/metrics.json"
)


def one_of(names):
    """A wildcard constraint matching exactly these names (none: matches nothing)."""
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!)"


wildcard_constraints:
    shard=r"\d+",
    dataset=r"[^/]+",
    model=r"[^/]+",
    pretraining=r"[^/]+",
    schedule=r"[^/]+",
    init="none|overall|backbone|head",


def labeled_images(manifest):
    """The images of the labeled split, sorted as `alps` shards them."""
    return images_from_source(manifest, SPLIT)


_SHARD_COUNTS = {}


def shard_ids(dataset):
    """Shard numbers of a dataset's labeled split: known once its prepare checkpoint has run."""
    manifest = checkpoints.prepare_dataset.get(dataset=dataset).output.manifest
    # Input functions ask for every job; reading (and checking) a 100k-image manifest once is enough.
    stamp = (manifest, os.stat(manifest).st_mtime_ns)
    if stamp not in _SHARD_COUNTS:
        _SHARD_COUNTS[stamp] = shard_count(len(labeled_images(manifest)), SHARD_SIZE)
    return [f"{i:04d}" for i in range(_SHARD_COUNTS[stamp])]


def dataset_shards(pattern, dataset, **fixed):
    """`pattern` expanded over every shard of `dataset` (other wildcards fixed)."""
    return [pattern.format(dataset=dataset, shard=s, **fixed) for s in shard_ids(dataset)]


def pl_dataset_of(wildcards):
    return PL_SETS[wildcards.pl].dataset


def prepare_cli_options(wildcards):
    """`alps prepare` arguments of one configured dataset: converter, raw folder, output, options."""
    dataset = DATASETS[wildcards.dataset]
    options = dict(dataset["options"])
    if "seed" in converter_options(dataset["converter"]):
        options.setdefault("seed", SEED)
    arguments = [dataset["converter"]]
    if dataset.get("raw_dir"):
        arguments.append(dataset["raw_dir"])
    arguments.append(f"{RESULTS}/datasets/{wildcards.dataset}")
    if options:
        arguments.append("--options '" + json.dumps(options, sort_keys=True) + "'")
    return " ".join(arguments)


def mask_cli_options():
    """`alps masks` options of the configured backend."""
    backend = MASKS["backend"]
    options = [f"--masks {backend}"]
    params = {}
    if backend in ("felzenszwalb", "slic"):
        params = MASKS.get(backend, {})
    elif backend == "coco":
        options.append(f"--coco-json {MASKS['coco']['json']}")
    elif backend == "sam":
        options += sam_cli_options()
        params = MASKS["sam"].get("amg", {})
    if params:
        options.append("--mask-params '" + json.dumps(params, sort_keys=True) + "'")
    if LABELING.get("bands"):
        options.append("--bands " + ",".join(str(b) for b in LABELING["bands"]))
    return " ".join(options)


def sam_cli_options():
    """The SAM checkpoint options shared by `alps masks` and `alps box-labels`."""
    sam = MASKS.get("sam") or {}
    if not sam:
        raise ValueError("box-prompted pseudo-labels (variant boxes) need labeling.masks.sam (checkpoint)")
    options = [
        f"--sam-checkpoint {sam['checkpoint']}",
        f"--sam-model {sam['model_type']}",
        f"--device {sam['device']}",
    ]
    if sam["bf16"]:
        options.append("--bf16")
    return options


def encoder_cli_options():
    """`alps masks/features` options of the configured encoder."""
    options = [f"--encoder {ENCODER['name']}", f"--device {ENCODER['device']}"]
    if ENCODER.get("layers"):
        options.append("--encoder-layers " + ",".join(ENCODER["layers"]))
    if ENCODER.get("max_side"):
        options.append(f"--max-side {ENCODER['max_side']}")
    return " ".join(options)


def cluster_cli_options(wildcards):
    """`alps cluster` options of one pseudo-label set (its k and filtering gate over the engine's)."""
    pl_set = PL_SETS[wildcards.pl]
    k = pl_set.k if pl_set.k is not None else CLUSTER["k"]
    options = [
        f"--k {'auto' if k is None else k}",
        f"--area-threshold {pl_set.area_threshold}",
        f"--seed {SEED}",
        f"--batch-size {CLUSTER['batch_size']}",
        f"--epochs {CLUSTER['epochs']}",
        f"--init-sample {CLUSTER['init_sample']}",
        f"--n-init {CLUSTER['n_init']}",
        f"--normalize {CLUSTER['normalize']}",
    ]
    if "k_range" in CLUSTER:
        options.append("--k-range {} {}".format(*CLUSTER["k_range"]))
    return " ".join(options)


def painted_shards(wildcards):
    """The painted shards a PL dataset gathers: its own, its parent's (binary) or the box labels."""
    pl_set = PL_SETS[wildcards.pl]
    if pl_set.variant == "boxes":
        return dataset_shards(BOX_SHARD, pl_set.dataset, pl=pl_set.name)
    return dataset_shards(PAINT_SHARD, pl_set.dataset, pl=STUDY.paint_source(pl_set.name))


def training_cli_options(iters):
    options = [
        f"--iters {iters}",
        f"--workers {TRAINING['workers']}",
        f"--device {TRAINING['device']}",
        f"--log-interval {TRAINING['log_interval']}",
        f"--seed {SEED}",
    ]
    if TRAINING.get("batch_size"):  # per GPU; default: the model's official mmseg config
        options.append(f"--batch-size {TRAINING['batch_size']}")
    if TRAINING.get("crop_size"):
        options.append(f"--crop-size {TRAINING['crop_size']}")
    if TRAINING.get("amp"):
        options.append("--amp")
    return " ".join(options)


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


def labeling_targets(wildcards):
    """Every pseudo-label set with its shards, figures and label quality (target rule all_pseudo_labels)."""
    # The shards are kept artifacts (DVC-versioned): as targets, a lost shard is rebuilt with what depends
    # on it, instead of being ignored because the final outputs are up to date.
    targets = []
    for dataset in STUDY.datasets_to_label():
        targets += dataset_shards(MASK_SHARD, dataset) + dataset_shards(FEATURE_SHARD, dataset)
    for name, pl_set in PL_SETS.items():
        targets += [PL_CARD.format(pl=name), f"{RESULTS}/figures/{name}"]
        if pl_set.evaluate:
            targets.append(f"{RESULTS}/metrics/label_quality/{name}.json")
    return targets


def pretrain_targets(wildcards):
    """Every planned pre-training (target rule all_pretrainings)."""
    return [f"{STUDY.pretrain_dir(run)}/metrics.json" for run in STUDY.pretrain_runs]


def all_targets(wildcards):
    targets = labeling_targets(wildcards)
    targets += [f"{STUDY.finetune_dir(run)}/metrics.json" for run in STUDY.finetune_runs]
    targets += mosaic_targets()  # workflow/rules/mosaic.smk
    if STUDY.rows:
        targets.append(f"{RESULTS}/metrics/tables.json")
    return targets
