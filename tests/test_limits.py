"""Size limits of inputs (``alps.limits``), ids that become paths (``alps.io.paths``) and YAML limits."""

from __future__ import annotations

import time

import pytest

from alps import limits
from alps.classmap import ClassMapError, load_class_map
from alps.cli import main
from alps.io.paths import UnsafeNameError, confined, safe_name
from alps.io.yamlfile import YamlLimitError, load_yaml

# Under 400 bytes that expand to 9^9 strings (the "billion laughs" in YAML), all under cluster id 0.
ALIAS_BOMB = (
    "0: [&a ["
    + ", ".join(["lol"] * 9)
    + "], "
    + ", ".join(f"&{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]" for i in range(1, 9))
    + "]\n"
)


@pytest.fixture(autouse=True)
def _fresh_limits(monkeypatch):
    for name in (limits.PIXELS_ENV, limits.TILES_ENV):
        monkeypatch.delenv(name, raising=False)
    yield
    for name in (limits.PIXELS_ENV, limits.TILES_ENV):
        monkeypatch.delenv(name, raising=False)
    limits.configure()


def test_the_default_pixel_limit_fits_the_machine():
    default = limits.default_max_pixels()
    assert limits.MIN_DEFAULT_PIXELS <= default <= limits.MAX_DEFAULT_PIXELS
    memory = limits._machine_memory()
    if memory is not None:
        assert default * limits.PIXEL_BUDGET_BYTES <= max(memory, limits.MIN_DEFAULT_PIXELS * 32)


def test_a_refusal_names_the_file_the_size_and_the_option(monkeypatch):
    limits.configure(max_pixels=1000)
    with pytest.raises(limits.LimitError) as info:
        limits.check_pixels(100, 20, "big.tif", "scene")
    message = str(info.value)
    assert "big.tif" in message and "20 x 100 = 2,000 pixels" in message and "--max-pixels" in message
    limits.check_pixels(10, 100, "ok.tif")
    for bad in ((0, 5), (-1, 5), (True, 5), (2.0, 5), (None, 5)):
        with pytest.raises(limits.LimitError, match="not a valid size"):
            limits.check_pixels(*bad, "x.png")
    monkeypatch.setenv(limits.TILES_ENV, "10")
    limits.configure()
    with pytest.raises(
        limits.LimitError, match="11 tiles, over the limit of 10 .--max-tiles or ALPS_MAX_TILES"
    ):
        limits.check_tiles(11, "scene.tif")
    monkeypatch.setenv(limits.PIXELS_ENV, "lots")
    with pytest.raises(limits.LimitError, match="ALPS_MAX_PIXELS='lots' is not a positive whole number"):
        limits.configure()


@pytest.mark.parametrize(
    "name", ["", ".", "..", ".hidden", "a/b", "/abs", "..\\x", "x\x00y", "tab\there", "x" * 201, 7, None]
)
def test_ids_that_cannot_name_one_file_are_refused(name):
    with pytest.raises(UnsafeNameError, match="shard.parquet: image id"):
        safe_name(name, "shard.parquet", "image id")


def test_confined_paths_stay_inside_their_folder(tmp_path):
    assert confined(tmp_path, "labels", "P0001_0_0.png") == tmp_path / "labels" / "P0001_0_0.png"
    assert safe_name("Ω tile 3", "s") == "Ω tile 3"
    for parts in (("labels", "../../x.png"), ("/etc", "x"), ("labels", "")):
        with pytest.raises(UnsafeNameError):
            confined(tmp_path, *parts)


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    """Defect: a 348-byte class map took 4.3 GB and 78 s to refuse; as a configuration Snakemake hung."""
    bomb = tmp_path / "map.yaml"
    bomb.write_text(ALIAS_BOMB + "1: b\n2: c\n3: d\n")
    assert len(bomb.read_bytes()) < 400
    started = time.monotonic()
    with pytest.raises(ClassMapError, match="aliases expand to more than 100,000 values"):
        load_class_map(bomb, 4)
    with pytest.raises(YamlLimitError, match="aliases expand"):
        load_yaml(bomb)
    assert time.monotonic() - started < 30  # generous: the point is seconds, not minutes
    cyclic = tmp_path / "cyclic.yaml"
    cyclic.write_text("a: &a [1, *a]\n")
    with pytest.raises(YamlLimitError, match="a cycle"):
        load_yaml(cyclic)
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)
    with pytest.raises(ClassMapError, match="over the limit of 1,048,576"):
        load_class_map(big, 4)
    # Anchors within reason (a shared block of settings) are fine.
    shared = tmp_path / "shared.yaml"
    shared.write_text("base: &b {k: 4, seed: 0}\none: *b\ntwo: *b\n")
    assert load_yaml(shared)["two"] == {"k": 4, "seed": 0}


def test_a_class_map_with_huge_or_non_string_values_gets_a_short_message(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("0: [" + ", ".join(["x"] * 5000) + "]\n")
    with pytest.raises(ClassMapError) as info:
        load_class_map(path, 2)
    assert len(str(info.value)) < 300
    path.write_text("0: a\n1000000000: b\n")  # with K unknown, ids still stop at 254
    with pytest.raises(ClassMapError, match="cluster id 1000000000 does not exist .* 0..254"):
        load_class_map(path, None)


def test_a_configuration_bomb_is_one_line_for_alps_tables(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(ALIAS_BOMB)
    assert main(["tables", "--config", str(config), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "aliases expand" in err and str(config) in err
