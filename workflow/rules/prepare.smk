# Datasets from their raw form into images + manifest (mmsegmentation layout); raw folders are read-only.


checkpoint prepare_dataset:
    output:
        manifest=f"{RESULTS}/datasets/{{dataset}}/manifest.csv",
    params:
        out_dir=lambda wildcards: f"{RESULTS}/datasets/{wildcards.dataset}",
        arguments=prepare_cli_options,
    log:
        f"{LOGS}/prepare_{{dataset}}.log",
    benchmark:
        f"{BENCH}/prepare_{{dataset}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "alps prepare {params.arguments} {params.out_dir} > {log} 2>&1"
