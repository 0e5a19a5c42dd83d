"""Shared fixtures: the real samples in ../shared/data (skipped where absent) and small synthetic images."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """Path inside ../shared/data, or skip the test with the reason when the samples are not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data {path} is absent (it lives in ../shared/data beside the clone)")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def blocky_image() -> np.ndarray:
    """A 96x128 RGB image of flat rectangles: superpixel backends find clean segments in it."""
    image = np.zeros((96, 128, 3), dtype=np.uint8)
    image[:, :] = (30, 120, 40)
    image[10:40, 10:50] = (200, 30, 30)
    image[50:90, 60:120] = (20, 40, 210)
    image[60:70, 10:30] = (240, 240, 240)
    return image


@pytest.fixture(scope="session", autouse=True)
def _one_thread_per_xdist_worker() -> None:
    """Under ``pytest -n N`` (pytest-xdist), one intra-op torch thread per worker process.

    N workers on N cores already fill the machine; a second OpenMP thread per worker only spin-waits for
    its descheduled sibling (see ``one_torch_thread``). A plain ``pytest`` run is left as it is.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for a test module, restored afterwards.

    The test machine's two cores are shared: OpenMP threads spin-waiting for a descheduled sibling made
    training tests 3-30x slower and erratic; a single thread is steady (0.07 s vs 0.2-2.5 s per
    SegFormer-B0 iteration at 64 px, measured under load).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


K3 = ["--masks", "felzenszwalb", "--k", "3", "--seed", "0"]
"""`alps label` options of the small CLI runs on the ``images`` crops: weight-free masks, K = 3."""


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 96x128 crops of the real Potsdam tile (a module's folder of images to label)."""
    source = np.asarray(Image.open(shared_data("potsdam", "img_dir", "2_10_0_0_512_512.png")).convert("RGB"))
    folder = tmp_path_factory.mktemp("images")
    for i in range(3):
        Image.fromarray(source[i * 150 : i * 150 + 96, i * 120 : i * 120 + 128]).save(folder / f"t{i}.png")
    return folder
