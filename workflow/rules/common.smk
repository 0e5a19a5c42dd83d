# Configuration validation, paths and the shard bookkeeping shared by every rule file.
import json

from snakemake.utils import validate

from alps.config import check_config
from alps.datasets import converter_options
from alps.sharding import images_from_source, shard_count

validate(config, schema="../schemas/config.schema.yaml")
check_config(config)

SEED = config["seed"]
RESULTS = config["results_dir"]
DATASETS = config["datasets"]
LABELING = config["labeling"]
DATASET = LABELING["dataset"]
MASKS = LABELING["masks"]
ENCODER = LABELING["encoder"]
CLUSTER = LABELING["cluster"]
USES_SAM = MASKS["backend"] == "sam"
# The sam encoder reuses SAM's embedding, so its features come out of the masks job itself.
FEATURES_IN_MASKS_JOB = ENCODER["name"] == "sam"

DATASET_DIR = f"{RESULTS}/datasets/{DATASET}"
LABEL_DIR = f"{RESULTS}/labeling/{DATASET}"
PL_NAME = f"{DATASET}-pl"
LOGS = f"{RESULTS}/logs"
MASK_SHARD = f"{LABEL_DIR}/masks/shard_{{shard}}.parquet"
FEATURE_SHARD = f"{LABEL_DIR}/features/shard_{{shard}}.npz"
BENCH = f"{RESULTS}/benchmarks"


wildcard_constraints:
    shard=r"\d+",


def labeled_images(manifest):
    """The images of the labeled split, sorted as `alps` shards them."""
    return images_from_source(manifest, LABELING["images_split"])


def shard_ids(wildcards):
    """Shard numbers of the labeled split: known once the dataset checkpoint has run."""
    manifest = checkpoints.prepare_dataset.get(dataset=DATASET).output.manifest
    count = shard_count(len(labeled_images(manifest)), LABELING["shard_size"])
    return [f"{i:04d}" for i in range(count)]


def shard_files(pattern):
    """An input function expanding `pattern` over every shard."""

    def files(wildcards):
        return [pattern.format(shard=s) for s in shard_ids(wildcards)]

    return files


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
        sam = MASKS["sam"]
        params = sam.get("amg", {})
        options += [
            f"--sam-checkpoint {sam['checkpoint']}",
            f"--sam-model {sam['model_type']}",
            f"--device {sam['device']}",
        ]
        if sam["bf16"]:
            options.append("--bf16")
    if params:
        options.append("--mask-params '" + json.dumps(params, sort_keys=True) + "'")
    if LABELING.get("bands"):
        options.append("--bands " + ",".join(str(b) for b in LABELING["bands"]))
    return " ".join(options)


def encoder_cli_options():
    """`alps masks/features` options of the configured encoder."""
    options = [f"--encoder {ENCODER['name']}", f"--device {ENCODER['device']}"]
    if ENCODER.get("layers"):
        options.append("--encoder-layers " + ",".join(ENCODER["layers"]))
    if ENCODER.get("max_side"):
        options.append(f"--max-side {ENCODER['max_side']}")
    return " ".join(options)


def cluster_cli_options():
    """`alps cluster` options from the config."""
    k = CLUSTER["k"]
    options = [
        f"--k {'auto' if k is None else k}",
        f"--area-threshold {LABELING['area_threshold']}",
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


def all_targets(wildcards):
    # The shards are kept artifacts (DVC-versioned): as targets, a lost shard is rebuilt with what depends
    # on it, instead of being ignored because the final outputs are up to date.
    targets = shard_files(MASK_SHARD)(wildcards) + shard_files(FEATURE_SHARD)(wildcards)
    targets += [
        f"{RESULTS}/pl/{PL_NAME}/dataset_card.json",
        f"{RESULTS}/metrics/label_quality.json",
        f"{RESULTS}/figures/{PL_NAME}",
    ]
    if "training" in config:
        training = config["training"]
        targets += [
            f"{RESULTS}/train/finetune/{training['finetune_dataset']}/{training['model']}-{PL_NAME}-{init}"
            "/metrics.json"
            for init in training["inits"]
        ]
    if LABELING["binary_variant"]:
        targets.append(f"{RESULTS}/pl/{DATASET}-binary/dataset_card.json")
    return targets
