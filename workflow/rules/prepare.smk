# Datasets from their raw form into images + manifest (mmsegmentation layout).


checkpoint prepare_dataset:
    output:
        manifest=f"{DATASET_DIR}/manifest.csv",
    params:
        out_dir=DATASET_DIR,
        tile_size=config["dataset"]["tile_size"],
        block_size=config["dataset"]["block_size"],
        val_fraction=config["dataset"]["val_fraction"],
    log:
        f"{LOGS}/prepare_{DATASET}.log",
    benchmark:
        f"{BENCH}/prepare_{DATASET}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps prepare {DATASET} {params.out_dir} --tile-size {params.tile_size} "
        "--block-size {params.block_size} --val-fraction {params.val_fraction} --seed {SEED} "
        "> {log} 2>&1"
