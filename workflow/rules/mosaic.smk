# Tiled scenes put back together: one label raster per scene (GeoTIFF where georeferenced) for every
# pseudo-label set of a `prepare folder` dataset, each pixel from the tile whose centre is nearest
# (`alps mosaic`, docs/geospatial.md).

MOSAIC_SETS = sorted(name for name, pl_set in PL_SETS.items() if DATASETS[pl_set.dataset]["converter"] == "folder")
MOSAIC_DIR = f"{RESULTS}/mosaic/{{pl}}"


def mosaic_targets():
    """The mosaics `rule all` asks for: one folder per pseudo-label set of a folder dataset."""
    return [MOSAIC_DIR.format(pl=name) for name in MOSAIC_SETS]


rule mosaic:
    input:
        manifest=lambda wildcards: MANIFEST.format(dataset=pl_dataset_of(wildcards)),
        card=PL_CARD,
    output:
        directory(MOSAIC_DIR),
    params:
        labels=f"{RESULTS}/pl/{{pl}}/ann_dir/{SPLIT}",
    log:
        f"{LOGS}/mosaic/{{pl}}.log",
    wildcard_constraints:
        pl=one_of(MOSAIC_SETS),
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "alps mosaic {input.manifest:q} {params.labels:q} {output:q} --split {SPLIT:q} > {log:q} 2>&1"
