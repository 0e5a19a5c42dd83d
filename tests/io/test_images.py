from __future__ import annotations

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from alps.io import ImageReadError, list_images, read_image
from alps.io.images import stretch_to_uint8

from conftest import shared_data


def test_png_rgb_roundtrip(tmp_path, blocky_image):
    path = tmp_path / "a.png"
    Image.fromarray(blocky_image).save(path)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (96, 128, 3)
    np.testing.assert_array_equal(out, blocky_image)


def test_grey_png_is_repeated_to_three_bands(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (8, 8, 3)
    for band in range(3):
        np.testing.assert_array_equal(out[..., band], grey)


def test_16bit_multiband_geotiff_band_choice_and_stretch(tmp_path, rng):
    data = rng.integers(100, 4000, size=(5, 20, 30), dtype=np.uint16)
    path = tmp_path / "s.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=30,
        height=20,
        count=5,
        dtype="uint16",
        crs="EPSG:32616",
        transform=from_origin(500000, 4000000, 10, 10),
    ) as dst:
        dst.write(data)
    out = read_image(path, bands=[4, 3, 2])
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], stretch_to_uint8(data[3]))
    assert out.max() == 255 and out.min() == 0
    with pytest.raises(ImageReadError, match=r"band\(s\) \[6\] do not exist; the image has 5"):
        read_image(path, bands=[6, 1, 2])


def test_stretch_ignores_zero_nodata_and_constant_bands():
    band = np.array([[0, 10], [20, 30]], dtype=np.uint16)
    out = stretch_to_uint8(band, (0, 100))
    assert out[0, 1] == 0 and out[1, 1] == 255
    assert not stretch_to_uint8(np.full((3, 3), 7, np.uint16)).any()


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="bad.png: cannot decode"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="nope.jpg: no such image file"):
        read_image(tmp_path / "nope.jpg")


def test_list_images_filters_and_sorts(tmp_path, blocky_image):
    # Hidden files are not images: a killed writer's temp file, macOS's "._a.jpg" resource forks.
    for name in ("b.PNG", "a.jpg", "notes.txt", "._a.jpg", ".002.png.1a2b3c.png"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG"]
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing")


def test_real_16bit_single_band_geotiff():
    path = shared_data("spacenet_building", "sample_geotiff.tif")
    out = read_image(path)
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8
    assert out.std() > 10  # the stretch spreads the 16-bit values over the 8-bit range


def test_real_jpeg_and_one_bit_tiff():
    image = read_image(shared_data("nwpu_vhr10_train", "images", "002.jpg"))
    assert image.shape[2] == 3
    label = read_image(shared_data("whu_building", "labels", "0.tif"))
    assert label.shape[2] == 3
