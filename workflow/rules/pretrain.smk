# Pre-training on the pseudo-labels (paper Sec. 4): one run per (model, pre-training, schedule, seed) that
# a table needs. A Mixed-PL pre-training starts from the backbone of the run it continues (same seed). Only
# metrics.json is declared as output: the work dir with its checkpoints must survive a failed or killed job,
# which is what lets `alps pretrain` resume. Inputs and options: rules/common.smk.


rule pretrain:
    input:
        unpack(pretrain_inputs),
    output:
        metrics=PRETRAIN_METRICS,
    params:
        pl_dataset=lambda wildcards, input: os.path.dirname(input.card),
        work_dir=lambda wildcards, output: os.path.dirname(output.metrics),
        init=pretrain_init,
        options=lambda wildcards: training_options(STUDY.iters(wildcards.schedule), wildcards.seed),
        model_options=training_model_options,
        launch=training_launch,
    log:
        f"{LOGS}/pretrain/{{model}}/{{pretraining}}/{{schedule}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/pretrain/{{model}}/{{pretraining}}/{{schedule}}/seed{{seed}}.tsv"
    wildcard_constraints:
        pretraining=one_of(STUDY.pretrainings),
    conda:
        ENVIRONMENT
    threads: TRAINING.get("threads", 1)
    resources:
        mem_mb=8000,
        gpu=training_gpus,
    shell:
        "{params.launch:q} alps pretrain {params.pl_dataset:q} {params.work_dir:q} --model {wildcards.model:q} "
        "{params.init:q} {params.options:q} {params.model_options:q} --threads {threads} > {log:q} 2>&1"
