# Fine-tuning on a labeled dataset (paper Tables 1-6): from scratch (init none, the "Baseline") or from a
# pre-training of the same seed with one sub-model initialisation; one job per training seed. Iterations
# are the model's own schedule; {schedule} names the pre-training's. Only metrics.json is declared as
# output, so a killed run resumes (see pretrain.smk). Inputs and options: rules/common.smk.


rule finetune:
    input:
        unpack(finetune_inputs),
    output:
        metrics=FINETUNE_METRICS,
    params:
        dataset_dir=lambda wildcards, input: os.path.dirname(input.manifest),
        work_dir=lambda wildcards, output: os.path.dirname(output.metrics),
        init=finetune_init,
        kind=finetune_dataset_kind,
        options=lambda wildcards: training_options(
            STUDY.iters(STUDY.base_schedules[wildcards.model]), wildcards.seed
        ),
        model_options=training_model_options,
        checkpoints=finetune_checkpoint_options,
        launch=training_launch,
    log:
        f"{LOGS}/finetune/{{dataset}}/{{model}}/{{pretraining}}/{{schedule}}/{{init}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/finetune/{{dataset}}/{{model}}/{{pretraining}}/{{schedule}}/{{init}}/seed{{seed}}.tsv"
    wildcard_constraints:
        pretraining=one_of([*STUDY.pretrainings, SCRATCH]),
    conda:
        ENVIRONMENT
    threads: TRAINING.get("threads", 1)
    resources:
        mem_mb=8000,
        gpu=training_gpus,
    shell:
        "{params.launch:q} alps finetune {params.dataset_dir:q} {params.work_dir:q} --model {wildcards.model:q} "
        "{params.init:q} {params.kind:q} {params.options:q} {params.model_options:q} {params.checkpoints:q} "
        "--threads {threads} > {log:q} 2>&1"
