"""Where every file of a study lies: one method per kind of output, relative to the working directory.

The rules pass wildcard placeholders (``"{dataset}"``) to get their patterns, ``alps tables`` and the
scripts the paths of planned runs: every path of the DAG is spelled here once. Imports nothing of the
package's.
"""

from __future__ import annotations

from dataclasses import dataclass

SCRATCH = "scratch"
"""The pre-training name of a fine-tuning that starts from scratch (the paper's "Baseline")."""


@dataclass(frozen=True)
class PretrainRun:
    """One pre-training job: a model on a pre-training's set, for a schedule, with one training seed."""

    model: str
    pretraining: str
    schedule: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.model}/{self.pretraining}/{self.schedule}/seed{self.seed}"


@dataclass(frozen=True)
class FinetuneRun:
    """One fine-tuning job; a pre-trained one starts from the pre-training of the same seed."""

    dataset: str
    model: str
    pretraining: str  # SCRATCH for the baseline
    schedule: str  # the pre-training's schedule; the model's own for the baseline
    init: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.model}/{self.pretraining}/{self.schedule}/{self.init}/seed{self.seed}"


@dataclass
class StudyPaths:
    """The paths of a study's outputs under ``results_dir``."""

    results_dir: str

    def dataset_dir(self, dataset: str) -> str:
        return f"{self.results_dir}/datasets/{dataset}"

    def manifest(self, dataset: str) -> str:
        return f"{self.dataset_dir(dataset)}/manifest.csv"

    def mask_shard(self, dataset: str, split: str, shard: str) -> str:
        return f"{self.labeling_dir(dataset)}/masks/{split}/shard_{shard}.parquet"

    def feature_shard(self, dataset: str, split: str, shard: str) -> str:
        return f"{self.labeling_dir(dataset)}/features/{split}/shard_{shard}.npz"

    def cluster_model(self, name: str) -> str:
        return f"{self.pseudo_label_dir(name)}/cluster/kmeans.npz"

    def paint_shard(self, name: str, split: str, shard: str) -> str:
        """A painted shard of one split (the paper's PL datasets label train and val with one model)."""
        return f"{self.pseudo_label_dir(name)}/paint/{split}/shard_{shard}"

    def box_shard(self, name: str, split: str, shard: str) -> str:
        return f"{self.pseudo_label_dir(name)}/boxes/{split}/shard_{shard}"

    def pl_card(self, name: str) -> str:
        return f"{self.pl_dataset_dir(name)}/dataset_card.json"

    def gallery_dir(self, name: str) -> str:
        """The cluster gallery of a set (``alps gallery``: index.html, one sheet per cluster)."""
        return f"{self.results_dir}/gallery/{name}"

    def unmapped_pl_dir(self, name: str) -> str:
        """The cluster-id PL dataset of a set with a ``class_map`` (``pl/<set>`` holds the named classes)."""
        return f"{self.pseudo_label_dir(name)}/unmapped"

    def unmapped_pl_card(self, name: str) -> str:
        return f"{self.unmapped_pl_dir(name)}/dataset_card.json"

    def mosaic_dir(self, name: str) -> str:
        """One label raster per scene of a set of a tiled (``folder``) dataset (``alps mosaic``)."""
        return f"{self.results_dir}/mosaic/{name}"

    def label_quality(self, name: str) -> str:
        return f"{self.results_dir}/metrics/label_quality/{name}.json"

    def figures_dir(self, name: str) -> str:
        return f"{self.results_dir}/figures/{name}"

    def logs_dir(self) -> str:
        return f"{self.results_dir}/logs"

    def benchmarks_dir(self) -> str:
        return f"{self.results_dir}/benchmarks"

    def tables_metrics(self) -> str:
        """The tables' numbers, outside the tables folder, so that DVC tracks them as metrics."""
        return f"{self.results_dir}/metrics/tables.json"

    def labeling_dir(self, dataset: str) -> str:
        """Masks and features of a dataset: shared by every pseudo-label set made from it."""
        return f"{self.results_dir}/labeling/{dataset}"

    def pseudo_label_dir(self, name: str) -> str:
        """Cluster model and painted shards of one pseudo-label set."""
        return f"{self.results_dir}/pseudo_labels/{name}"

    def pl_dataset_dir(self, name: str) -> str:
        return f"{self.results_dir}/pl/{name}"

    def pretrain_dir(self, run: PretrainRun) -> str:
        return f"{self.results_dir}/train/pretrain/{run.key}"

    def pretrain_metrics(self, run: PretrainRun) -> str:
        return f"{self.pretrain_dir(run)}/metrics.json"

    def finetune_metrics(self, run: FinetuneRun) -> str:
        return f"{self.finetune_dir(run)}/metrics.json"

    def pretrain_checkpoint(self, run: PretrainRun) -> str:
        """The final checkpoint a pre-training leaves (mmengine's ``iter_<iterations>.pth``)."""
        return f"{self.pretrain_dir(run)}/iter_{self.iters(run.schedule)}.pth"

    def finetune_dir(self, run: FinetuneRun) -> str:
        return f"{self.results_dir}/train/finetune/{run.key}"

    def tables_dir(self) -> str:
        return f"{self.results_dir}/tables"

    def class_names(self, dataset: str) -> str:
        """The ``classes.json`` of a prepared dataset (names and palette of its labels)."""
        return f"{self.dataset_dir(dataset)}/classes.json"

    def ground_truth_dir(self, dataset: str, split: str) -> str:
        """The label images of one split of a prepared dataset."""
        return f"{self.dataset_dir(dataset)}/ann_dir/{split}"

    def pl_labels_dir(self, name: str, split: str) -> str:
        """The label images of one split of a set's PL dataset."""
        return f"{self.pl_dataset_dir(name)}/ann_dir/{split}"

    def pl_dataset_out(self, name: str, unmapped: bool) -> str:
        """The PL dataset ``alps pl-dataset`` writes: ``pl/<set>``, or the cluster-id one of a mapped set."""
        return self.unmapped_pl_dir(name) if unmapped else self.pl_dataset_dir(name)
