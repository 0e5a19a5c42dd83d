"""The arguments each workflow rule gives its ``alps`` command, decided from a loaded configuration.

The rules (``workflow/rules/*.smk``) stay thin: they name their files (``alps.study_paths``) and take every
option list from here, so that what a job runs is decided, and tested, in the package. Every value a job's
output depends on reaches it as an argument, so Snakemake's rerun triggers see it change. Option lists are
argv lists: the rules quote each element with ``:q`` where it meets the shell.

Importable without torch or mmseg: the workflow builds one ``RuleArgs`` when it parses the Snakefile.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from alps.config import LoadedConfig
from alps.datasets import converter_options
from alps.study import DATASET_KINDS, SCRATCH, PretrainRun

Argv = list[Any]
"""An argument list; numbers are given as numbers (the shell quoting makes them text)."""


class RuleArgs:
    """The ``alps`` command arguments of every rule, from one loaded configuration."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.config = loaded.config
        self.study = loaded.study
        self.labeling: dict[str, Any] = self.config["labeling"]
        self.training: dict[str, Any] = self.config.get("training") or {}

    # -- datasets and shards ---------------------------------------------------------------------------------
    def prepare(self, dataset: str) -> Argv:
        """``alps prepare`` of one configured dataset: converter, raw folder, output, options."""
        entry = self.config["datasets"][dataset]
        options = dict(entry["options"])
        if "seed" in converter_options(entry["converter"]):
            options.setdefault("seed", self.config["seed"])
        arguments: Argv = [entry["converter"]]
        if entry.get("raw_dir"):
            arguments.append(entry["raw_dir"])
        arguments.append(self.study.dataset_dir(dataset))
        if options:
            arguments += ["--options", json.dumps(options, sort_keys=True)]
        return arguments

    def shard(self, split: str, shard: str) -> Argv:
        """Which images a shard job works on: split, shard index and size, and the seed."""
        return [
            "--split",
            split,
            "--shard-index",
            shard,
            "--shard-size",
            self.labeling["shard_size"],
            "--seed",
            self.config["seed"],
        ]

    def bands(self) -> Argv:
        """``--bands`` of the configured labeling, for every job that reads the images."""
        bands = self.labeling.get("bands")
        return ["--bands", ",".join(str(b) for b in bands)] if bands else []

    # -- labeling engine ----------------------------------------------------------------------------------
    def masks(self) -> Argv:
        """``alps masks`` options of the configured backend."""
        masks = self.labeling["masks"]
        backend = masks["backend"]
        options: Argv = ["--masks", backend]
        params: dict[str, Any] = {}
        if backend in ("felzenszwalb", "slic"):
            params = masks.get(backend, {})
        elif backend == "coco":
            options += ["--coco-json", masks["coco"]["json"]]
        elif backend == "sam":
            options += self.sam()
            params = masks["sam"].get("amg", {})
        if params:
            options += ["--mask-params", json.dumps(params, sort_keys=True)]
        return options + self.bands()

    def sam(self) -> Argv:
        """The SAM checkpoint options shared by ``alps masks`` and ``alps box-labels``."""
        sam = self.labeling["masks"].get("sam") or {}
        if not sam:
            raise ValueError(
                "box-prompted pseudo-labels (variant boxes) need labeling.masks.sam (checkpoint)"
            )
        options: Argv = ["--sam-checkpoint", sam["checkpoint"], "--sam-model", sam["model_type"]]
        options += ["--device", sam["device"]]
        return options + (["--bf16"] if sam["bf16"] else [])

    def encoder(self) -> Argv:
        """``alps features`` options of the configured encoder (with the bands the masks were made from)."""
        encoder = self.labeling["encoder"]
        options: Argv = ["--encoder", encoder["name"], "--device", encoder["device"]]
        if encoder.get("layers"):
            options += ["--encoder-layers", ",".join(encoder["layers"])]
        if encoder.get("max_side"):
            options += ["--max-side", encoder["max_side"]]
        return options + self.bands()

    def features_in_masks_job(self) -> bool:
        """The sam encoder reuses SAM's embedding, so its features come out of the masks job itself."""
        return self.labeling["encoder"]["name"] == "sam"

    def cluster(self, name: str) -> Argv:
        """``alps cluster`` options of one pseudo-label set (its K and filtering gate over the engine's)."""
        cluster = self.labeling["cluster"]
        k = self.study.cluster_k(name)
        options: Argv = [
            "--k",
            "auto" if k is None else k,
            "--area-threshold",
            self.study.pseudo_labels[name].area_threshold,
            "--seed",
            self.config["seed"],
            "--batch-size",
            cluster["batch_size"],
            "--epochs",
            cluster["epochs"],
            "--init-sample",
            cluster["init_sample"],
            "--normalize",
            cluster["normalize"],
        ]
        if "k_range" in cluster:
            options += ["--k-range", *cluster["k_range"]]
        return options

    def paint(self, name: str) -> Argv:
        """``alps paint`` options; one paint job writes the binary variant too where a binary set needs it."""
        binary = ["--binary"] if self.study.binary_children(name) else []
        return ["--area-threshold", self.study.pseudo_labels[name].area_threshold, *binary]

    def boxes(self, name: str) -> Argv:
        """``alps box-labels`` options of a SAMRS* set (its classes, SAM, the prompt batch)."""
        boxes = self.study.pseudo_labels[name].boxes
        classes = boxes["classes"] if isinstance(boxes["classes"], str) else ",".join(boxes["classes"])
        return (
            ["--classes", classes]
            + self.sam()
            + ["--batch-size", boxes["batch_size"]]  # the schema's defaults are filled
            + (["--skip-unknown"] if boxes["skip_unknown"] else [])
        )

    def pl_dataset(self, name: str, val_paint: Sequence[str]) -> Argv:
        """``alps pl-dataset`` options: the fit split, the val split's shards, the label variant."""
        pl_set = self.study.pseudo_labels[name]
        options: Argv = ["--split", self.study.fit_split]
        if val_paint:
            options += ["--val-paint-dirs", *val_paint]
        if pl_set.variant == "binary":
            options.append("--binary")
        if pl_set.num_classes:
            options += ["--num-classes", pl_set.num_classes]
        return options + self.bands()

    def gallery(self, name: str) -> Argv:
        """``alps gallery`` options: the fit split, the set's gate and its class map."""
        class_map = self.study.pseudo_labels[name].class_map
        options: Argv = ["--split", self.study.fit_split, "--seed", self.config["seed"]]
        options += ["--area-threshold", self.study.pseudo_labels[name].area_threshold]
        return options + (["--class-map", class_map] if class_map else []) + self.bands()

    # -- training -----------------------------------------------------------------------------------------
    def train(self, iters: int, seed: int | str) -> Argv:
        """``alps pretrain|finetune`` options of one job: its iterations and its training seed."""
        training = self.training
        options: Argv = [
            "--iters",
            iters,
            "--workers",
            training["workers"],
            "--device",
            training["device"],
            "--log-interval",
            training["log_interval"],
            "--seed",
            seed,
            # A job rerun because its settings changed starts its work dir over instead of refusing it.
            "--restart-on-config-change",
        ]
        if training.get("batch_size"):  # per GPU; default: the model's official mmseg config
            options += ["--batch-size", training["batch_size"]]
        if training.get("crop_size"):
            options += ["--crop-size", training["crop_size"]]
        if training.get("amp"):
            options.append("--amp")
        if "deterministic" in training:  # absent: alps's default (on for the CPU, off on CUDA)
            options.append("--deterministic" if training["deterministic"] else "--no-deterministic")
        return options

    def gpus_per_job(self) -> int:
        return int(self.training.get("gpus_per_job", 1))

    def launch(self) -> Argv:
        """The torchrun prefix of a multi-GPU training job (one process per GPU, as mmengine expects)."""
        n = self.gpus_per_job()
        return ["torchrun", "--standalone", f"--nproc_per_node={n}", "--no-python"] if n > 1 else []

    def train_model(self, model: str) -> Argv:
        """The model's ImageNet backbone (``training.pretrained_backbones``) and the launcher."""
        options: Argv = []
        backbone = (self.training.get("pretrained_backbones") or {}).get(model)
        if backbone:
            options += ["--pretrained", str(backbone)]
        if self.gpus_per_job() > 1:
            options += ["--launcher", "pytorch"]
        return options

    def finetune_checkpoints(self) -> Argv:
        """Nothing downstream reads a fine-tuned model: keep_finetune_checkpoints false drops them."""
        return [] if self.training.get("keep_finetune_checkpoints", True) else ["--drop-checkpoints"]

    def pretrain_init(self, run: PretrainRun) -> Argv:
        """A Mixed-PL pre-training starts from the backbone of the run it continues (same seed)."""
        parent = self.study.parent_run(run)
        if parent is None:
            return []
        return ["--init", "backbone", "--from", self.study.pretrain_checkpoint(parent)]

    def finetune_init(self, pretrain: PretrainRun, init: str) -> Argv:
        """From scratch, or from the pre-training of the fine-tuning's own seed with one initialisation."""
        if pretrain.pretraining == SCRATCH:
            return ["--init", "none"]
        options: Argv = ["--init", init, "--from", self.study.pretrain_checkpoint(pretrain)]
        return options + (["--reinit-classifier"] if self.training.get("reinit_classifier") else [])

    def finetune_dataset_kind(self, dataset: str) -> Argv:
        """The paper's datasets need their kind named; the rest (the demo) is detected from its folder."""
        kind = DATASET_KINDS.get(self.config["datasets"][dataset]["converter"])
        return ["--dataset", kind] if kind else []
