"""YAML read with limits: class maps and workflow configurations are small, and their aliases do not explode.

``yaml.safe_load`` runs no code, but a 348-byte file of nested aliases (``b: [*a, *a, ...]``) expands to a
billion nodes for whoever walks the result: a class map's error message took 4.3 GB and 78 s to format it,
Snakemake's schema validation of such a configuration never ends. Here a file is refused before it is
used when it is larger than ``MAX_YAML_BYTES`` or its node graph, with every alias expanded, has more than
``MAX_YAML_NODES`` nodes (or is cyclic); the document is parsed once, then constructed by the loader given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from alps.limits import MAX_YAML_BYTES, MAX_YAML_NODES


class YamlLimitError(ValueError):
    """A YAML file over a size limit, or not YAML; the message names the file."""


def _expanded_nodes(root: yaml.Node, source: object, limit: int) -> int:
    """Nodes of the document with every alias expanded; refuses past ``limit`` and cycles."""
    sizes: dict[int, int | None] = {}  # node id -> expanded size (None: being counted, a cycle if met)

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            known = sizes[key]
            if known is None:
                raise YamlLimitError(f"{source}: an alias refers to the node that holds it (a cycle)")
            return known
        sizes[key] = None
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                raise YamlLimitError(
                    f"{source}: its aliases expand to more than {limit:,} values; a class map or a "
                    "configuration is far smaller: write it out without such aliases"
                )
        sizes[key] = total
        return total

    return size(root)


def load_yaml_text(
    text: str,
    source: object,
    loader: type[yaml.SafeLoader] = yaml.SafeLoader,
    *,
    max_nodes: int = MAX_YAML_NODES,
) -> Any:
    """Parse one YAML document with ``loader`` (a ``SafeLoader``), its expanded size checked first.

    Raises:
        YamlLimitError: the document expands past ``max_nodes`` or nests too deeply.
        yaml.YAMLError: not valid YAML.
    """
    parser = loader(text)
    try:
        node = parser.get_single_node()
        if node is None:
            return None
        _expanded_nodes(node, source, max_nodes)
        return parser.construct_document(node)
    except RecursionError as exc:
        raise YamlLimitError(f"{source}: nested too deeply to be a class map or a configuration") from exc
    finally:
        parser.dispose()


def read_yaml_bytes(path: str | os.PathLike[str], *, max_bytes: int = MAX_YAML_BYTES) -> bytes:
    """The bytes of a YAML file, refused past ``max_bytes`` before they are read."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise YamlLimitError(
            f"{path}: {size:,} bytes, over the limit of {max_bytes:,} for a class map or configuration"
        )
    return path.read_bytes()


def load_yaml(path: str | os.PathLike[str], loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """Read a YAML file with the limits of this module.

    Raises:
        FileNotFoundError: no such file.
        YamlLimitError: too large, expanding too far, not UTF-8 or not YAML (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return load_yaml_text(read_yaml_bytes(path).decode("utf-8"), path, loader)
    except UnicodeDecodeError as exc:
        raise YamlLimitError(f"{path}: not UTF-8 text ({exc})") from exc
    except yaml.YAMLError as exc:
        raise YamlLimitError(f"{path}: not valid YAML ({exc})") from exc


def check_config_files(paths: list[str] | tuple[str, ...]) -> None:
    """Refuse a workflow configuration file over the limits, before Snakemake's schema validation walks it.

    Snakemake loads ``--configfile`` itself; the workflow calls this first thing (``rules/common.smk``), so
    an alias bomb ends in one line instead of a validation that never ends.

    Raises:
        YamlLimitError: a file too large, expanding too far, or not YAML.
    """
    for path in paths:
        load_yaml(path)
