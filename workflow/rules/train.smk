# Pre-training on the pseudo-labels, then fine-tuning with each sub-model initialisation (paper Sec. 4).
# Only metrics.json is declared as output: the work dir with its checkpoints must survive a failed or
# killed job, which is what lets `alps pretrain/finetune` resume.

TRAINING = config["training"]
MODEL = TRAINING["model"]
FT_DATASET = TRAINING["finetune_dataset"]
PRETRAIN_DIR = f"{RESULTS}/train/pretrain/{MODEL}-{PL_NAME}"
FINETUNE_DIR = f"{RESULTS}/train/finetune/{FT_DATASET}/{MODEL}-{PL_NAME}-{{init}}"


def training_cli_options(iters):
    options = [
        f"--model {MODEL}",
        f"--iters {iters}",
        f"--batch-size {TRAINING['batch_size']}",
        f"--workers {TRAINING['workers']}",
        f"--device {TRAINING['device']}",
        f"--log-interval {TRAINING['log_interval']}",
        f"--seed {SEED}",
    ]
    if TRAINING.get("crop_size"):
        options.append(f"--crop-size {TRAINING['crop_size']}")
    if TRAINING["amp"]:
        options.append("--amp")
    return " ".join(options)


def finetune_inputs(wildcards):
    inputs = {"manifest": f"{RESULTS}/datasets/{FT_DATASET}/manifest.csv"}
    if wildcards.init != "none":
        inputs["pretrained"] = f"{PRETRAIN_DIR}/metrics.json"
    return inputs


rule pretrain:
    input:
        card=f"{RESULTS}/pl/{PL_NAME}/dataset_card.json",
    output:
        f"{PRETRAIN_DIR}/metrics.json",
    params:
        pl_dataset=f"{RESULTS}/pl/{PL_NAME}",
        work_dir=PRETRAIN_DIR,
        options=training_cli_options(TRAINING["pretrain_iters"]),
    log:
        f"{LOGS}/pretrain/{MODEL}-{PL_NAME}.log",
    benchmark:
        f"{BENCH}/pretrain/{MODEL}-{PL_NAME}.tsv"
    threads: TRAINING["threads"]
    resources:
        mem_mb=8000,
        gpu=0 if TRAINING["device"] == "cpu" else 1,
    shell:
        "alps pretrain {params.pl_dataset} {params.work_dir} {params.options} --threads {threads} "
        "> {log} 2>&1"


rule finetune:
    input:
        unpack(finetune_inputs),
    output:
        f"{FINETUNE_DIR}/metrics.json",
    params:
        dataset_dir=f"{RESULTS}/datasets/{FT_DATASET}",
        work_dir=FINETUNE_DIR,
        options=training_cli_options(TRAINING["finetune_iters"]),
        init=lambda wildcards: (
            "--init none"
            if wildcards.init == "none"
            else f"--init {wildcards.init} --from {PRETRAIN_DIR}/iter_{TRAINING['pretrain_iters']}.pth"
        ),
    log:
        f"{LOGS}/finetune/{FT_DATASET}/{MODEL}-{PL_NAME}-{{init}}.log",
    benchmark:
        f"{BENCH}/finetune/{FT_DATASET}/{MODEL}-{PL_NAME}-{{init}}.tsv"
    wildcard_constraints:
        init="none|overall|backbone|head",
    threads: TRAINING["threads"]
    resources:
        mem_mb=8000,
        gpu=0 if TRAINING["device"] == "cpu" else 1,
    shell:
        "alps finetune {params.dataset_dir} {params.work_dir} {params.init} {params.options} "
        "--threads {threads} > {log} 2>&1"
