# Datasets from their raw form into images + manifest (mmsegmentation layout).


checkpoint prepare_dataset:
    output:
        manifest=f"{DATASET_DIR}/manifest.csv",
    params:
        out_dir=DATASET_DIR,
        tile_size=config["dataset"].get("tile_size", 256),
        block_size=config["dataset"].get("block_size", 4),
        val_fraction=config["dataset"].get("val_fraction", 0.25),
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
