# The labeling engine, sharded: masks (+ features) per shard -> one k-means fit -> painting per shard.

SPLIT = LABELING["images_split"]
SHARD_SIZE = LABELING["shard_size"]
AREA_THRESHOLD = LABELING["area_threshold"]


if FEATURES_IN_MASKS_JOB:

    rule masks_and_features:
        input:
            manifest=f"{DATASET_DIR}/manifest.csv",
        output:
            masks=MASK_SHARD,
            features=FEATURE_SHARD,
        params:
            options=mask_cli_options(),
        log:
            f"{LOGS}/masks/{DATASET}_shard_{{shard}}.log",
        benchmark:
            f"{BENCH}/masks/{DATASET}_shard_{{shard}}.tsv"
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
            manifest=f"{DATASET_DIR}/manifest.csv",
        output:
            MASK_SHARD,
        params:
            options=mask_cli_options(),
        log:
            f"{LOGS}/masks/{DATASET}_shard_{{shard}}.log",
        benchmark:
            f"{BENCH}/masks/{DATASET}_shard_{{shard}}.tsv"
        threads: 1
        resources:
            mem_mb=8000,
            gpu=1 if USES_SAM else 0,
        shell:
            "alps masks {input.manifest} {output} --split {SPLIT} --shard-index {wildcards.shard} "
            "--shard-size {SHARD_SIZE} --seed {SEED} {params.options} > {log} 2>&1"

    rule features:
        input:
            manifest=f"{DATASET_DIR}/manifest.csv",
            masks=MASK_SHARD,
        output:
            FEATURE_SHARD,
        params:
            encoder=encoder_cli_options(),
        log:
            f"{LOGS}/features/{DATASET}_shard_{{shard}}.log",
        benchmark:
            f"{BENCH}/features/{DATASET}_shard_{{shard}}.tsv"
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
        shard_files(FEATURE_SHARD),
    output:
        model=f"{LABEL_DIR}/cluster/kmeans.joblib",
        card=f"{LABEL_DIR}/cluster/kmeans.joblib.card.json",
    params:
        options=cluster_cli_options(),
    log:
        f"{LOGS}/cluster_{DATASET}.log",
    benchmark:
        f"{BENCH}/cluster_{DATASET}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
    shell:
        "alps cluster {input} --out {output.model} {params.options} > {log} 2>&1"


rule paint:
    input:
        masks=MASK_SHARD,
        features=FEATURE_SHARD,
        model=rules.cluster.output.model,
    output:
        directory(f"{LABEL_DIR}/paint/shard_{{shard}}"),
    params:
        binary="--binary" if LABELING["binary_variant"] else "",
    log:
        f"{LOGS}/paint/{DATASET}_shard_{{shard}}.log",
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "alps paint {input.masks} {input.features} {input.model} {output} "
        "--area-threshold {AREA_THRESHOLD} {params.binary} > {log} 2>&1"


rule pl_dataset:
    input:
        manifest=f"{DATASET_DIR}/manifest.csv",
        paint=shard_files(f"{LABEL_DIR}/paint/shard_{{shard}}"),
    output:
        card=f"{RESULTS}/pl/{PL_NAME}/dataset_card.json",
    params:
        out_dir=f"{RESULTS}/pl/{PL_NAME}",
    log:
        f"{LOGS}/pl_dataset_{PL_NAME}.log",
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps pl-dataset {input.manifest} {params.out_dir} --paint-dirs {input.paint} --split {SPLIT} "
        "> {log} 2>&1"


rule pl_dataset_binary:
    input:
        manifest=f"{DATASET_DIR}/manifest.csv",
        paint=shard_files(f"{LABEL_DIR}/paint/shard_{{shard}}"),
    output:
        card=f"{RESULTS}/pl/{DATASET}-binary/dataset_card.json",
    params:
        out_dir=f"{RESULTS}/pl/{DATASET}-binary",
    log:
        f"{LOGS}/pl_dataset_{DATASET}-binary.log",
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps pl-dataset {input.manifest} {params.out_dir} --paint-dirs {input.paint} --split {SPLIT} "
        "--binary > {log} 2>&1"


rule label_quality:
    """Pseudo-labels scored against the dataset's own labels (the demo's NDVI/NDWI land cover)."""
    input:
        card=rules.pl_dataset.output.card,
        manifest=f"{DATASET_DIR}/manifest.csv",
    output:
        report(
            f"{RESULTS}/metrics/label_quality.json",
            caption="../report/label_quality.rst",
            category="Label quality",
        ),
    params:
        pred=f"{RESULTS}/pl/{PL_NAME}/ann_dir/{SPLIT}",
        gt=f"{DATASET_DIR}/ann_dir/{SPLIT}",
        names=f"{DATASET_DIR}/classes.json",
    log:
        f"{LOGS}/label_quality_{DATASET}.log",
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps evaluate-labels {params.pred} {params.gt} --class-names {params.names} --out {output} "
        "> {log} 2>&1"


rule figures:
    """Image | pseudo-label | ground truth for the first tiles (the paper's Fig. 3-5)."""
    input:
        card=rules.pl_dataset.output.card,
        manifest=f"{DATASET_DIR}/manifest.csv",
    output:
        report(
            directory(f"{RESULTS}/figures/{PL_NAME}"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Pseudo-labels",
        ),
    params:
        pl_dataset=f"{RESULTS}/pl/{PL_NAME}",
        gt=f"{DATASET_DIR}/ann_dir/{SPLIT}",
        classes=f"{DATASET_DIR}/classes.json",
    log:
        f"{LOGS}/figures_{PL_NAME}.log",
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps figures {params.pl_dataset} {output} --split {SPLIT} --gt-dir {params.gt} "
        "--gt-classes {params.classes} > {log} 2>&1"
