# Pre-training on the pseudo-labels (paper Sec. 4): one run per (model, pre-training, schedule) that a
# table needs. A Mixed-PL pre-training starts from the backbone of the run it continues. Only metrics.json
# is declared as output: the work dir with its checkpoints must survive a failed or killed job, which is
# what lets `alps pretrain` resume.


def pretrain_inputs(wildcards):
    pretraining = STUDY.pretrainings[wildcards.pretraining]
    inputs = {"card": PL_CARD.format(pl=pretraining.pseudo_labels)}
    if pretraining.continue_from is not None:
        inputs["parent"] = PRETRAIN_METRICS.format(
            model=wildcards.model, pretraining=pretraining.continue_from, schedule=wildcards.schedule
        )
    return inputs


def pretrain_init(wildcards):
    parent = STUDY.pretrainings[wildcards.pretraining].continue_from
    if parent is None:
        return ""
    weights = STUDY.pretrain_checkpoint(PretrainRun(wildcards.model, parent, wildcards.schedule))
    return f"--init backbone --from {weights}"


rule pretrain:
    input:
        unpack(pretrain_inputs),
    output:
        PRETRAIN_METRICS,
    params:
        pl_dataset=lambda wildcards: STUDY.pl_dataset_dir(STUDY.pretrainings[wildcards.pretraining].pseudo_labels),
        work_dir=lambda wildcards, output: output[0].removesuffix("/metrics.json"),
        init=pretrain_init,
        options=lambda wildcards: training_cli_options(STUDY.iters(wildcards.schedule)),
        model_options=training_model_options,
        launch=training_launch,
    log:
        f"{LOGS}/pretrain/{{model}}/{{pretraining}}/{{schedule}}.log",
    benchmark:
        f"{BENCH}/pretrain/{{model}}/{{pretraining}}/{{schedule}}.tsv"
    wildcard_constraints:
        pretraining=one_of(STUDY.pretrainings),
    threads: TRAINING.get("threads", 1)
    resources:
        mem_mb=8000,
        gpu=training_gpus,
    shell:
        "{params.launch:q} alps pretrain {params.pl_dataset} {params.work_dir} --model {wildcards.model} {params.init} "
        "{params.options} {params.model_options:q} --threads {threads} > {log} 2>&1"
