# Tiled scenes put back together: one label raster per scene (GeoTIFF where georeferenced) for every
# pseudo-label set of a `prepare folder` dataset, each pixel from the tile whose centre is nearest
# (`alps mosaic`, docs/geospatial.md).

rule mosaic:
    input:
        manifest=pl_manifest,
        card=PL_CARD,
    output:
        directory(STUDY.mosaic_dir("{pl}")),
    params:
        labels=lambda wildcards: STUDY.pl_labels_dir(wildcards.pl, FIT_SPLIT),
        split=FIT_SPLIT,
    log:
        f"{LOGS}/mosaic/{{pl}}.log",
    conda:
        ENVIRONMENT
    wildcard_constraints:
        pl=one_of(MOSAIC_SETS),
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps mosaic {input.manifest:q} {params.labels:q} {output:q} --split {params.split:q} > {log:q} 2>&1"
