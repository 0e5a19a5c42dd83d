# Datasets from their raw form into images + manifest (mmsegmentation layout); raw folders are read-only.


checkpoint prepare_dataset:
    output:
        manifest=f"{RESULTS}/datasets/{{dataset}}/manifest.csv",
    params:
        arguments=prepare_cli_options,
    log:
        f"{LOGS}/prepare_{{dataset}}.log",
    benchmark:
        f"{BENCH}/prepare_{{dataset}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "alps prepare {params.arguments} > {log} 2>&1"
