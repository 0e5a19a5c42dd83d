"""Parsers of the GIS commands: vectorize, mosaic (``alps.geo``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from alps.cli.parsers import command


def add_vectorize(sub: Any) -> argparse.ArgumentParser:
    p = command(sub, "vectorize", "geo", help="label raster -> polygons (GeoPackage or GeoJSON) in its CRS")
    p.add_argument("labels", type=Path, help="a label GeoTIFF/PNG of alps label or alps mosaic")
    p.add_argument("out", type=Path, help="the vector file (.gpkg, or .geojson)")
    p.add_argument("--format", choices=["gpkg", "geojson"], help="default: from OUT's suffix, else gpkg")
    p.add_argument("--simplify", type=float, default=0.0, help="simplification tolerance in CRS units")
    p.add_argument("--min-area", type=float, default=0.0, help="drop polygons smaller (CRS units^2)")
    p.add_argument(
        "--classes",
        type=Path,
        help="JSON with a 'classes' list naming the label ids (default: the label_card.json beside labels/)",
    )
    p.add_argument("--layer", default="labels", help="layer name")
    return p


def add_mosaic(sub: Any) -> argparse.ArgumentParser:
    p = command(
        sub, "mosaic", "geo", help="one label raster per scene from a prepare-folder dataset's tile labels"
    )
    p.add_argument("manifest", type=Path, help="the dataset's manifest.csv (alps prepare folder)")
    p.add_argument(
        "labels_dir", type=Path, help="tile labels <image_id>.png (a PL dataset's ann_dir/<split>)"
    )
    p.add_argument("out_dir", type=Path)
    p.add_argument("--split", help="only the tiles of this split")
    return p
