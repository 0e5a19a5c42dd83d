# The labeling engine, sharded: masks (+ features) per dataset shard -> one k-means fit per pseudo-label set
# (on the fit split's features) -> painting per shard, of the fit split and, with labeling.label_val, of the
# val split with the same model -> the PL dataset. Ablation sets reuse upstream work: an area-threshold
# variant re-clusters the same features, a binary set re-reads its parent's painted shards.


if ARGS.features_in_masks_job():

    rule masks_and_features:
        input:
            manifest=MANIFEST,
        output:
            masks=MASK_SHARD,
            features=FEATURE_SHARD,
        params:
            shard=lambda wildcards: ARGS.shard(wildcards.split, wildcards.shard),
            options=ARGS.masks(),
        log:
            f"{LOGS}/masks/{{dataset}}_{{split}}_shard_{{shard}}.log",
        benchmark:
            f"{BENCH}/masks/{{dataset}}_{{split}}_shard_{{shard}}.tsv"
        conda:
            ENVIRONMENT
        threads: 2
        resources:
            mem_mb=16000,
            gpu=STUDY.labeling_gpus["masks_and_features"],
        shell:
            "alps masks {input.manifest:q} {output.masks:q} {params.shard:q} {params.options:q} "
            "--encoder sam --features-out {output.features:q} > {log:q} 2>&1"

else:

    rule masks:
        input:
            manifest=MANIFEST,
        output:
            masks=MASK_SHARD,
        params:
            shard=lambda wildcards: ARGS.shard(wildcards.split, wildcards.shard),
            options=ARGS.masks(),
        log:
            f"{LOGS}/masks/{{dataset}}_{{split}}_shard_{{shard}}.log",
        benchmark:
            f"{BENCH}/masks/{{dataset}}_{{split}}_shard_{{shard}}.tsv"
        conda:
            ENVIRONMENT
        threads: 1
        resources:
            mem_mb=8000,
            gpu=STUDY.labeling_gpus["masks"],
        shell:
            "alps masks {input.manifest:q} {output.masks:q} {params.shard:q} {params.options:q} > {log:q} 2>&1"

    rule features:
        input:
            manifest=MANIFEST,
            masks=MASK_SHARD,
        output:
            features=FEATURE_SHARD,
        params:
            shard=lambda wildcards: ARGS.shard(wildcards.split, wildcards.shard),
            encoder=ARGS.encoder(),
        log:
            f"{LOGS}/features/{{dataset}}_{{split}}_shard_{{shard}}.log",
        benchmark:
            f"{BENCH}/features/{{dataset}}_{{split}}_shard_{{shard}}.tsv"
        conda:
            ENVIRONMENT
        threads: 1
        resources:
            mem_mb=8000,
            gpu=STUDY.labeling_gpus["features"],
        shell:
            "alps features {input.manifest:q} {input.masks:q} {output.features:q} {params.shard:q} "
            "{params.encoder:q} > {log:q} 2>&1"


rule cluster:
    input:
        features=fit_feature_shards,
    output:
        model=CLUSTER_MODEL,
        card=f"{CLUSTER_MODEL}.card.json",
    params:
        options=lambda wildcards: ARGS.cluster(wildcards.pl),
    log:
        f"{LOGS}/cluster/{{pl}}.log",
    benchmark:
        f"{BENCH}/cluster/{{pl}}.tsv"
    wildcard_constraints:
        pl=one_of(ALPS_SETS),
    conda:
        ENVIRONMENT
    threads: 2
    resources:
        mem_mb=8000,
    shell:
        "alps cluster {input.features:q} --out {output.model:q} {params.options:q} > {log:q} 2>&1"


rule paint:
    input:
        unpack(paint_inputs),
    output:
        painted=directory(PAINT_SHARD),
    params:
        options=lambda wildcards: ARGS.paint(wildcards.pl),
    log:
        f"{LOGS}/paint/{{pl}}_{{split}}_shard_{{shard}}.log",
    wildcard_constraints:
        pl=one_of(ALPS_SETS),
    conda:
        ENVIRONMENT
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "alps paint {input.masks:q} {input.features:q} {input.model:q} {output.painted:q} "
        "{params.options:q} > {log:q} 2>&1"


rule box_labels:
    """SAMRS*: SAM prompted with each detector box (docs/samrs_star.md)."""
    input:
        manifest=pl_manifest,
    output:
        painted=directory(BOX_SHARD),
    params:
        boxes=lambda wildcards: PL_SETS[wildcards.pl].boxes["dir"],
        shard=lambda wildcards: ARGS.shard(wildcards.split, wildcards.shard),
        options=lambda wildcards: ARGS.boxes(wildcards.pl),
    log:
        f"{LOGS}/box_labels/{{pl}}_{{split}}_shard_{{shard}}.log",
    benchmark:
        f"{BENCH}/box_labels/{{pl}}_{{split}}_shard_{{shard}}.tsv"
    wildcard_constraints:
        pl=one_of(BOX_SETS),
    conda:
        ENVIRONMENT
    threads: 2
    resources:
        mem_mb=16000,
        gpu=STUDY.labeling_gpus["box_labels"],
    shell:
        "alps box-labels {input.manifest:q} {params.boxes:q} {output.painted:q} {params.shard:q} "
        "{params.options:q} > {log:q} 2>&1"


# One rule for both PL datasets of a set: pl/<set>, and for a set with a class_map the cluster-id dataset
# beside its model, from which `apply_class_map` (rules/gallery.smk) derives pl/<set> with named classes.
for unmapped in (False, True):

    rule:
        name:
            "pl_dataset_unmapped" if unmapped else "pl_dataset"
        input:
            # Named one by one: the shard lists wait for the prepare checkpoint, the manifest does not.
            manifest=pl_manifest,
            paint=fit_painted_shards,
            val_paint=val_painted_shards,
        output:
            card=UNMAPPED_CARD if unmapped else PL_CARD,
        params:
            out_dir=lambda wildcards, output: os.path.dirname(output.card),
            options=lambda wildcards, input: ARGS.pl_dataset(wildcards.pl, input.val_paint),
        log:
            f"{LOGS}/pl_dataset/{{pl}}{'_unmapped' if unmapped else ''}.log",
        wildcard_constraints:
            pl=one_of(MAPPED_SETS if unmapped else PL_SETS),
        conda:
            ENVIRONMENT
        threads: 1
        resources:
            mem_mb=2000,
        shell:
            "alps pl-dataset {input.manifest:q} {params.out_dir:q} --paint-dirs {input.paint:q} "
            "{params.options:q} > {log:q} 2>&1"


rule label_quality:
    """Pseudo-labels scored against the dataset's own labels (the demo's NDVI/NDWI land cover)."""
    input:
        card=PL_CARD,
        manifest=pl_manifest,
    output:
        report(
            STUDY.label_quality("{pl}"),
            caption="../report/label_quality.rst",
            category="Label quality",
        ),
    params:
        pred=lambda wildcards: STUDY.pl_labels_dir(wildcards.pl, FIT_SPLIT),
        gt=lambda wildcards: STUDY.ground_truth_dir(pl_dataset_of(wildcards), FIT_SPLIT),
        classes=lambda wildcards: STUDY.class_names(pl_dataset_of(wildcards)),
    log:
        f"{LOGS}/label_quality/{{pl}}.log",
    conda:
        ENVIRONMENT
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps evaluate-labels {params.pred:q} {params.gt:q} --class-names {params.classes:q} "
        "--out {output:q} > {log:q} 2>&1"


rule figures:
    """Image | pseudo-label | ground truth for the first tiles (the paper's Fig. 3-5)."""
    input:
        card=PL_CARD,
        manifest=pl_manifest,
    output:
        report(
            directory(STUDY.figures_dir("{pl}")),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Pseudo-labels",
            subcategory="{pl}",
        ),
    params:
        pl_dataset=lambda wildcards: STUDY.pl_dataset_dir(wildcards.pl),
        split=FIT_SPLIT,
        gt=lambda wildcards: STUDY.ground_truth_dir(pl_dataset_of(wildcards), FIT_SPLIT),
        classes=lambda wildcards: STUDY.class_names(pl_dataset_of(wildcards)),
    log:
        f"{LOGS}/figures/{{pl}}.log",
    conda:
        ENVIRONMENT
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps figures {params.pl_dataset:q} {output:q} --split {params.split:q} --gt-dir {params.gt:q} "
        "--gt-classes {params.classes:q} > {log:q} 2>&1"
