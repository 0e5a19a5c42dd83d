# Issue #17: what the pseudo-classes are, and names for them. Every `alps` set gets a cluster gallery
# (gallery/<set>/index.html, one sheet per cluster, in `snakemake --report`); a set with a `class_map`
# gets its PL dataset rebuilt with the named classes from the cluster-id dataset kept beside its model
# (rule pl_dataset_unmapped, rules/label.smk).
# Its options: alps.rule_args; its input functions: rules/common.smk.

rule gallery:
    """Example masks of every cluster, with mask count, pixel share and mean area (alps.gallery)."""
    input:
        manifest=pl_manifest,
        masks=fit_mask_shards,
        features=fit_feature_shards,
        model=CLUSTER_MODEL,
        paint=fit_painted_shards,
        class_map=lambda wildcards: PL_SETS[wildcards.pl].class_map or [],
    output:
        report(
            directory(GALLERY),
            htmlindex="index.html",
            caption="../report/gallery.rst",
            category="Pseudo-class gallery",
            subcategory="{pl}",
        ),
    params:
        options=lambda wildcards: ARGS.gallery(wildcards.pl),
    log:
        f"{LOGS}/gallery/{{pl}}.log",
    conda:
        ENVIRONMENT
    wildcard_constraints:
        pl=one_of(ALPS_SETS),
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps gallery {input.manifest:q} {output:q} --mask-shards {input.masks:q} "
        "--feature-shards {input.features:q} --model {input.model:q} --paint-dirs {input.paint:q} "
        "{params.options:q} > {log:q} 2>&1"


rule apply_class_map:
    """pl/<set> with the named classes of the set's class map (a new dataset from the unmapped one)."""
    input:
        card=UNMAPPED_CARD,
        class_map=lambda wildcards: PL_SETS[wildcards.pl].class_map,
        model=lambda wildcards: (
            CLUSTER_MODEL.format(pl=wildcards.pl) if PL_SETS[wildcards.pl].variant == "alps" else []
        ),
    output:
        card=PL_CARD,
    params:
        source=lambda wildcards, input: os.path.dirname(input.card),
        out_dir=lambda wildcards, output: os.path.dirname(output.card),
        # The model's K, not the card's (possibly padded) num_classes, is what every id must cover.
        model=lambda wildcards, input: ["--model", input.model] if input.model else [],
    log:
        f"{LOGS}/apply_class_map/{{pl}}.log",
    conda:
        ENVIRONMENT
    wildcard_constraints:
        pl=one_of(MAPPED_SETS),
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps apply-class-map {params.source:q} {params.out_dir:q} --class-map {input.class_map:q} "
        "{params.model:q} > {log:q} 2>&1"


ruleorder: apply_class_map > pl_dataset
