"""Reading images of any common remote-sensing format, manifests, and atomic writes."""

from alps.io.atomic import atomic_output, atomic_write_bytes, atomic_write_text
from alps.io.images import ImageReadError, list_images, read_image
from alps.io.manifest import (
    MANIFEST_COLUMNS,
    SPLITS,
    ManifestError,
    read_manifest,
    resolve_paths,
    validate_manifest,
    write_manifest,
)

__all__ = [
    "MANIFEST_COLUMNS",
    "SPLITS",
    "ImageReadError",
    "ManifestError",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "list_images",
    "read_image",
    "read_manifest",
    "resolve_paths",
    "validate_manifest",
    "write_manifest",
]
