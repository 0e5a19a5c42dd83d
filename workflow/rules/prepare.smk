# Datasets from their raw form into images + manifest (mmsegmentation layout); raw folders are read-only.
# Every raw file is an input, so an image added to (or changed in) raw_dir reruns the conversion.


checkpoint prepare_dataset:
    input:
        lambda wildcards: raw_files(config["datasets"][wildcards.dataset].get("raw_dir")),
    output:
        manifest=MANIFEST,
    params:
        arguments=lambda wildcards: ARGS.prepare(wildcards.dataset),
    log:
        f"{LOGS}/prepare_{{dataset}}.log",
    benchmark:
        f"{BENCH}/prepare_{{dataset}}.tsv"
    conda:
        ENVIRONMENT
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "alps prepare {params.arguments:q} > {log:q} 2>&1"
