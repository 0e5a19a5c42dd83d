# The configuration, loaded once, and what the rules take from it: file patterns, shard lists, targets.
#
# alps.config.load_config checks the configuration files' size, validates against the package's schema
# (filling Snakemake's `config` with its defaults), runs every check and plans the study (alps.study):
# a bad configuration fails before any job. Every path comes from that plan (alps.study_paths) and every
# command's options from alps.rule_args, so what a job runs is decided, and tested, in the package.
import os
import re

from alps.config import load_config
from alps.rule_args import RuleArgs
from alps.sharding import manifest_shard_count, raw_files
from alps.study import SCRATCH, FinetuneRun, PretrainRun

LOADED = load_config(config, config_files=workflow.configfiles)
STUDY = LOADED.study
ARGS = RuleArgs(LOADED)
PL_SETS = STUDY.pseudo_labels
# The split the k-means models are fitted on (and the PL datasets' training split); with
# labeling.label_val the val split is painted with the same models (the paper's PL datasets).
FIT_SPLIT = STUDY.fit_split
TRAINING_THREADS = ARGS.training.get("threads", 1)
ENVIRONMENT = "../../envs/alps.yaml"

ALPS_SETS = STUDY.sets_of("alps")
BOX_SETS = STUDY.sets_of("boxes")
MAPPED_SETS = STUDY.mapped_sets()
MOSAIC_SETS = STUDY.mosaic_sets

LOGS = STUDY.logs_dir()
BENCH = STUDY.benchmarks_dir()
MANIFEST = STUDY.manifest("{dataset}")
MASK_SHARD = STUDY.mask_shard("{dataset}", "{split}", "{shard}")
FEATURE_SHARD = STUDY.feature_shard("{dataset}", "{split}", "{shard}")
CLUSTER_MODEL = STUDY.cluster_model("{pl}")
PAINT_SHARD = STUDY.paint_shard("{pl}", "{split}", "{shard}")
BOX_SHARD = STUDY.box_shard("{pl}", "{split}", "{shard}")
PL_CARD = STUDY.pl_card("{pl}")
UNMAPPED_CARD = STUDY.unmapped_pl_card("{pl}")
GALLERY = STUDY.gallery_dir("{pl}")
# Training runs: one job per seed (`{seed}`, training.seeds / tables.<id>.seeds).
PRETRAIN_RUN = PretrainRun("{model}", "{pretraining}", "{schedule}", "{seed}")
PRETRAIN_METRICS = STUDY.pretrain_metrics(PRETRAIN_RUN)
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


def shard_ids(dataset, split):
    """Shard numbers of a dataset's split (none if it has no images): known once `prepare` has run."""
    manifest = checkpoints.prepare_dataset.get(dataset=dataset).output.manifest
    # An empty fit split is an error naming it; a val split may be absent (ATLAS has train and test only).
    count = manifest_shard_count(manifest, split, config["labeling"]["shard_size"], required=split == FIT_SPLIT)
    return [f"{i:04d}" for i in range(count)]


def labeled_splits(dataset):
    """The splits a pseudo-label set of `dataset` paints: the fit split, and val with label_val."""
    splits = [FIT_SPLIT]
    if STUDY.label_val and FIT_SPLIT != "val" and shard_ids(dataset, "val"):
        splits.append("val")
    return splits


def dataset_shards(pattern, dataset, split, **fixed):
    """`pattern` expanded over every shard of a dataset's split (other wildcards fixed)."""
    return [pattern.format(dataset=dataset, split=split, shard=s, **fixed) for s in shard_ids(dataset, split)]


def pl_dataset_of(wildcards):
    return PL_SETS[wildcards.pl].dataset


def pl_manifest(wildcards):
    return STUDY.manifest(pl_dataset_of(wildcards))


def fit_mask_shards(wildcards):
    return dataset_shards(MASK_SHARD, pl_dataset_of(wildcards), FIT_SPLIT)


def fit_feature_shards(wildcards):
    """The features a set's k-means model is fitted on: the fit split's only (val is painted with it)."""
    return dataset_shards(FEATURE_SHARD, pl_dataset_of(wildcards), FIT_SPLIT)


def paint_inputs(wildcards):
    shard = {"dataset": pl_dataset_of(wildcards), "split": wildcards.split, "shard": wildcards.shard}
    return {
        "masks": MASK_SHARD.format(**shard),
        "features": FEATURE_SHARD.format(**shard),
        "model": CLUSTER_MODEL.format(pl=wildcards.pl),
    }


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


# -- training -----------------------------------------------------------------------------------------------


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


def finetune_inputs(wildcards):
    inputs = {"manifest": MANIFEST.format(dataset=wildcards.dataset)}
    if wildcards.pretraining != SCRATCH:
        inputs["pretrained"] = PRETRAIN_METRICS.format(**wildcards)
    return inputs


def pretrain_run(wildcards):
    """The pre-training a job's wildcards name (a fine-tuning's: that of its own seed)."""
    return STUDY.pretrain_run(wildcards.model, wildcards.pretraining, wildcards.schedule, wildcards.seed)


# -- targets ------------------------------------------------------------------------------------------------


def gallery_targets(wildcards):
    return [GALLERY.format(pl=name) for name in ALPS_SETS]


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
    targets += [STUDY.mosaic_dir(name) for name in MOSAIC_SETS]  # workflow/rules/mosaic.smk
    if STUDY.rows:
        targets.append(STUDY.tables_metrics())
    return targets
