# The labeling engine, sharded: masks (+ features) per dataset shard -> one k-means fit per pseudo-label set
# -> painting per shard -> the PL dataset. Ablation sets reuse upstream work: an area-threshold variant
# re-clusters the same features, a binary set re-reads its parent's painted shards.

ALPS_SETS = [n for n, s in PL_SETS.items() if s.variant == "alps"]
BOX_SETS = [n for n, s in PL_SETS.items() if s.variant == "boxes"]


if FEATURES_IN_MASKS_JOB:

    rule masks_and_features:
        input:
            manifest=MANIFEST,
        output:
            masks=MASK_SHARD,
            features=FEATURE_SHARD,
        params:
            options=mask_cli_options(),
        log:
            f"{LOGS}/masks/{{dataset}}_shard_{{shard}}.log",
        benchmark:
            f"{BENCH}/masks/{{dataset}}_shard_{{shard}}.tsv"
        threads: 2
        resources:
            mem_mb=16000,
            gpu=1 if USES_SAM else 0,
        shell:
            "alps masks {input.manifest} {output.masks} --split {SPLIT} --shard-index {wildcards.shard} "
            "--shard-size {SHARD_SIZE} --seed {SEED} {params.options} --encoder sam "
            "--features-out {output.features} > {log} 2>&1"

else:

    rule masks:
        input:
            manifest=MANIFEST,
        output:
            MASK_SHARD,
        params:
            options=mask_cli_options(),
        log:
            f"{LOGS}/masks/{{dataset}}_shard_{{shard}}.log",
        benchmark:
            f"{BENCH}/masks/{{dataset}}_shard_{{shard}}.tsv"
        threads: 1
        resources:
            mem_mb=8000,
            gpu=1 if USES_SAM else 0,
        shell:
            "alps masks {input.manifest} {output} --split {SPLIT} --shard-index {wildcards.shard} "
            "--shard-size {SHARD_SIZE} --seed {SEED} {params.options} > {log} 2>&1"

    rule features:
        input:
            manifest=MANIFEST,
            masks=MASK_SHARD,
        output:
            FEATURE_SHARD,
        params:
            encoder=encoder_cli_options(),
        log:
            f"{LOGS}/features/{{dataset}}_shard_{{shard}}.log",
        benchmark:
            f"{BENCH}/features/{{dataset}}_shard_{{shard}}.tsv"
        threads: 1
        resources:
            mem_mb=8000,
            gpu=lambda wildcards: 1 if ENCODER["device"].startswith("cuda") else 0,
        shell:
            "alps features {input.manifest} {input.masks} {output} --split {SPLIT} "
            "--shard-index {wildcards.shard} --shard-size {SHARD_SIZE} --seed {SEED} "
            "{params.encoder} > {log} 2>&1"


rule cluster:
    input:
        lambda wildcards: dataset_shards(FEATURE_SHARD, pl_dataset_of(wildcards)),
    output:
        model=CLUSTER_MODEL,
        card=f"{CLUSTER_MODEL}.card.json",
    params:
        options=cluster_cli_options,
    log:
        f"{LOGS}/cluster/{{pl}}.log",
    benchmark:
        f"{BENCH}/cluster/{{pl}}.tsv"
    wildcard_constraints:
        pl=one_of(ALPS_SETS),
    threads: 2
    resources:
        mem_mb=8000,
    shell:
        "alps cluster {input} --out {output.model} {params.options} > {log} 2>&1"


rule paint:
    input:
        masks=lambda wildcards: MASK_SHARD.format(dataset=pl_dataset_of(wildcards), shard=wildcards.shard),
        features=lambda wildcards: FEATURE_SHARD.format(dataset=pl_dataset_of(wildcards), shard=wildcards.shard),
        model=CLUSTER_MODEL,
    output:
        directory(PAINT_SHARD),
    params:
        area=lambda wildcards: PL_SETS[wildcards.pl].area_threshold,
        # One paint job writes the binary variant too when a binary set reuses this set's masks.
        binary=lambda wildcards: "--binary" if STUDY.binary_children(wildcards.pl) else "",
    log:
        f"{LOGS}/paint/{{pl}}_shard_{{shard}}.log",
    wildcard_constraints:
        pl=one_of(ALPS_SETS),
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "alps paint {input.masks} {input.features} {input.model} {output} "
        "--area-threshold {params.area} {params.binary} > {log} 2>&1"


rule box_labels:
    """SAMRS*: SAM prompted with each detector box (docs/samrs_star.md)."""
    input:
        manifest=lambda wildcards: MANIFEST.format(dataset=pl_dataset_of(wildcards)),
    output:
        directory(BOX_SHARD),
    params:
        boxes=lambda wildcards: PL_SETS[wildcards.pl].boxes["dir"],
        classes=lambda wildcards: (
            c if isinstance(c := PL_SETS[wildcards.pl].boxes["classes"], str) else ",".join(c)
        ),
        options=lambda wildcards: " ".join(
            sam_cli_options()
            + [f"--batch-size {PL_SETS[wildcards.pl].boxes.get('batch_size', 64)}"]
            + (["--skip-unknown"] if PL_SETS[wildcards.pl].boxes.get("skip_unknown") else [])
        ),
    log:
        f"{LOGS}/box_labels/{{pl}}_shard_{{shard}}.log",
    benchmark:
        f"{BENCH}/box_labels/{{pl}}_shard_{{shard}}.tsv"
    wildcard_constraints:
        pl=one_of(BOX_SETS),
    threads: 2
    resources:
        mem_mb=16000,
        gpu=1,
    shell:
        "alps box-labels {input.manifest} {params.boxes} {output} --split {SPLIT} "
        "--shard-index {wildcards.shard} --shard-size {SHARD_SIZE} --seed {SEED} "
        "--classes '{params.classes}' {params.options} > {log} 2>&1"


rule pl_dataset:
    input:
        manifest=lambda wildcards: MANIFEST.format(dataset=pl_dataset_of(wildcards)),
        paint=painted_shards,
    output:
        card=PL_CARD,
    params:
        out_dir=f"{RESULTS}/pl/{{pl}}",
        options=lambda wildcards: " ".join(
            (["--binary"] if PL_SETS[wildcards.pl].variant == "binary" else [])
            + (
                [f"--num-classes {PL_SETS[wildcards.pl].num_classes}"]
                if PL_SETS[wildcards.pl].num_classes
                else []
            )
        ),
    log:
        f"{LOGS}/pl_dataset/{{pl}}.log",
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps pl-dataset {input.manifest} {params.out_dir} --paint-dirs {input.paint} --split {SPLIT} "
        "{params.options} > {log} 2>&1"


rule label_quality:
    """Pseudo-labels scored against the dataset's own labels (the demo's NDVI/NDWI land cover)."""
    input:
        card=PL_CARD,
        manifest=lambda wildcards: MANIFEST.format(dataset=pl_dataset_of(wildcards)),
    output:
        report(
            f"{RESULTS}/metrics/label_quality/{{pl}}.json",
            caption="../report/label_quality.rst",
            category="Label quality",
        ),
    params:
        pred=f"{RESULTS}/pl/{{pl}}/ann_dir/{SPLIT}",
        gt=lambda wildcards: f"{STUDY.dataset_dir(pl_dataset_of(wildcards))}/ann_dir/{SPLIT}",
        names=lambda wildcards: f"{STUDY.dataset_dir(pl_dataset_of(wildcards))}/classes.json",
    log:
        f"{LOGS}/label_quality/{{pl}}.log",
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps evaluate-labels {params.pred} {params.gt} --class-names {params.names} --out {output} "
        "> {log} 2>&1"


rule figures:
    """Image | pseudo-label | ground truth for the first tiles (the paper's Fig. 3-5)."""
    input:
        card=PL_CARD,
        manifest=lambda wildcards: MANIFEST.format(dataset=pl_dataset_of(wildcards)),
    output:
        report(
            directory(f"{RESULTS}/figures/{{pl}}"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Pseudo-labels",
            subcategory="{pl}",
        ),
    params:
        pl_dataset=f"{RESULTS}/pl/{{pl}}",
        gt=lambda wildcards: f"{STUDY.dataset_dir(pl_dataset_of(wildcards))}/ann_dir/{SPLIT}",
        classes=lambda wildcards: f"{STUDY.dataset_dir(pl_dataset_of(wildcards))}/classes.json",
    log:
        f"{LOGS}/figures/{{pl}}.log",
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps figures {params.pl_dataset} {output} --split {SPLIT} --gt-dir {params.gt} "
        "--gt-classes {params.classes} > {log} 2>&1"
