# Fine-tuning on a labeled dataset (paper Tables 1-6): from scratch (init none, the "Baseline") or from a
# pre-training with one sub-model initialisation. Iterations are the model's own schedule; {schedule} names
# the pre-training's. Only metrics.json is declared as output, so a killed run resumes (see pretrain.smk).

def finetune_inputs(wildcards):
    inputs = {"manifest": MANIFEST.format(dataset=wildcards.dataset)}
    if wildcards.pretraining != SCRATCH:
        inputs["pretrained"] = PRETRAIN_METRICS.format(**wildcards)
    return inputs


def finetune_init(wildcards):
    if wildcards.pretraining == SCRATCH:
        return "--init none"
    run = PretrainRun(wildcards.model, wildcards.pretraining, wildcards.schedule)
    weights = STUDY.pretrain_checkpoint(run)
    return f"--init {wildcards.init} --from {weights}"


def finetune_dataset_kind(wildcards):
    # The paper's datasets need their kind named; the rest (the demo) is detected from its folder.
    kind = DATASET_KINDS.get(DATASETS[wildcards.dataset]["converter"])
    return f"--dataset {kind}" if kind else ""


rule finetune:
    input:
        unpack(finetune_inputs),
    output:
        FINETUNE_METRICS,
    params:
        dataset_dir=lambda wildcards: STUDY.dataset_dir(wildcards.dataset),
        work_dir=lambda wildcards, output: output[0].removesuffix("/metrics.json"),
        init=finetune_init,
        kind=finetune_dataset_kind,
        options=lambda wildcards: training_cli_options(
            STUDY.iters(STUDY.base_schedules[wildcards.model])
        ),
        model_options=training_model_options,
        launch=training_launch,
    log:
        f"{LOGS}/finetune/{{dataset}}/{{model}}/{{pretraining}}/{{schedule}}/{{init}}.log",
    benchmark:
        f"{BENCH}/finetune/{{dataset}}/{{model}}/{{pretraining}}/{{schedule}}/{{init}}.tsv"
    wildcard_constraints:
        pretraining=one_of([*STUDY.pretrainings, SCRATCH]),
    threads: TRAINING.get("threads", 1)
    resources:
        mem_mb=8000,
        gpu=training_gpus,
    shell:
        "{params.launch:q} alps finetune {params.dataset_dir} {params.work_dir} --model {wildcards.model} {params.init} "
        "{params.kind} {params.options} {params.model_options:q} --threads {threads} > {log} 2>&1"
