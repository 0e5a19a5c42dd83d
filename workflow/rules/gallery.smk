# Issue #17: what the pseudo-classes are, and names for them. Every `alps` set gets a cluster gallery
# (gallery/<set>/index.html, one sheet per cluster, in `snakemake --report`); a set with a `class_map`
# gets its PL dataset rebuilt with the named classes, the cluster-id dataset kept beside its model.
import shlex

from alps.classmap import load_class_map

GALLERY = f"{RESULTS}/gallery/{{pl}}"
UNMAPPED_DIR = STUDY.pseudo_label_dir("{pl}") + "/unmapped"


def class_map_of(name):
    """The `class_map` file of a pseudo-label set, or None."""
    return (config["pseudo_labels"][name] or {}).get("class_map")


def _cluster_count(pl_set):
    """The cluster ids a set's map must name: its K (None while `k: auto` is unresolved)."""
    if pl_set.variant == "boxes":
        classes = pl_set.boxes["classes"]
        return len(classes) if isinstance(classes, list) else None
    return pl_set.k if pl_set.k is not None else CLUSTER["k"]


MAPPED_SETS = [name for name in PL_SETS if class_map_of(name)]
# A bad map fails when the workflow is parsed, before any job runs.
for _name in MAPPED_SETS:
    if PL_SETS[_name].variant == "binary":
        raise ValueError(
            f"pseudo_labels.{_name}.class_map: a binary set has no clusters to name; give the map to the "
            f"set `{PL_SETS[_name].of}` it is painted from"
        )
    try:
        load_class_map(class_map_of(_name), _cluster_count(PL_SETS[_name]))
    except ValueError as exc:
        raise ValueError(f"pseudo_labels.{_name}.class_map: {exc}") from None


def gallery_targets(wildcards):
    return [GALLERY.format(pl=name) for name in ALPS_SETS]


def _class_map_option(wildcards):
    path = class_map_of(wildcards.pl)
    return "" if path is None else "--class-map " + shlex.quote(path)


rule gallery:
    """Example masks of every cluster, with mask count, pixel share and mean area (alps.gallery)."""
    input:
        manifest=lambda wildcards: MANIFEST.format(dataset=pl_dataset_of(wildcards)),
        masks=lambda wildcards: dataset_shards(MASK_SHARD, pl_dataset_of(wildcards)),
        features=lambda wildcards: dataset_shards(FEATURE_SHARD, pl_dataset_of(wildcards)),
        model=CLUSTER_MODEL,
        paint=lambda wildcards: dataset_shards(PAINT_SHARD, pl_dataset_of(wildcards), pl=wildcards.pl),
        class_map=lambda wildcards: class_map_of(wildcards.pl) or [],
    output:
        report(
            directory(GALLERY),
            htmlindex="index.html",
            caption="../report/gallery.rst",
            category="Pseudo-class gallery",
            subcategory="{pl}",
        ),
    params:
        area=lambda wildcards: PL_SETS[wildcards.pl].area_threshold,
        class_map=_class_map_option,
    log:
        f"{LOGS}/gallery/{{pl}}.log",
    wildcard_constraints:
        pl=one_of(ALPS_SETS),
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps gallery {input.manifest:q} {output:q} --split {SPLIT} --mask-shards {input.masks:q} "
        "--feature-shards {input.features:q} --model {input.model:q} --paint-dirs {input.paint:q} "
        "--area-threshold {params.area} --seed {SEED} {params.class_map} > {log:q} 2>&1"


rule pl_dataset_unmapped:
    """The cluster-id PL dataset of a set with a class map: kept, so the named one is re-derivable."""
    input:
        manifest=lambda wildcards: MANIFEST.format(dataset=pl_dataset_of(wildcards)),
        paint=painted_shards,
    output:
        card=f"{UNMAPPED_DIR}/dataset_card.json",
    params:
        out_dir=UNMAPPED_DIR,
        options=lambda wildcards: (
            f"--num-classes {PL_SETS[wildcards.pl].num_classes}" if PL_SETS[wildcards.pl].num_classes else ""
        ),
    log:
        f"{LOGS}/pl_dataset/{{pl}}_unmapped.log",
    wildcard_constraints:
        pl=one_of(MAPPED_SETS),
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps pl-dataset {input.manifest:q} {params.out_dir:q} --paint-dirs {input.paint:q} --split {SPLIT} "
        "{params.options} > {log:q} 2>&1"


rule apply_class_map:
    """pl/<set> with the named classes of the set's class map (a new dataset from the unmapped one)."""
    input:
        card=f"{UNMAPPED_DIR}/dataset_card.json",
        class_map=lambda wildcards: class_map_of(wildcards.pl),
        model=lambda wildcards: (
            CLUSTER_MODEL.format(pl=wildcards.pl) if PL_SETS[wildcards.pl].variant == "alps" else []
        ),
    output:
        card=PL_CARD,
    params:
        source=UNMAPPED_DIR,
        out_dir=STUDY.pl_dataset_dir("{pl}"),
        # The model's K, not the card's (possibly padded) num_classes, is what every id must cover.
        model=lambda wildcards, input: f"--model {shlex.quote(input.model)}" if input.model else "",
    log:
        f"{LOGS}/apply_class_map/{{pl}}.log",
    wildcard_constraints:
        pl=one_of(MAPPED_SETS),
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps apply-class-map {params.source:q} {params.out_dir:q} --class-map {input.class_map:q} "
        "{params.model} > {log:q} 2>&1"


ruleorder: apply_class_map > pl_dataset
