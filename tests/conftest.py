"""Shared fixtures.

* Every test runs with ``PGGAN_HOME`` set to a scratch folder of this session
  (``scratch_home``), so no run, prepared dataset or vessel U-Net lands in the checkout (a
  book build is given its own ``out``); notebooks, pages and shipped runs are still read from
  the checkout (``paths.repo_root``). A test that needs a home of its own sets ``PGGAN_HOME``
  again (monkeypatch).
* ``tiny_run`` is the session's one trained GAN: the smoke profile's fundus run on its phantom
  data (``tiny_data``), laid out as ``pggan`` lays it out (``tiny_home``), prepared and trained
  once. It is read-only: a test that writes into a run (evaluate, encode, ablation) takes
  ``tiny_run_copy``; the session fails at its end if the shared run was changed.

Markers (pyproject.toml): ``slow`` takes more than a couple of seconds (trains a model, executes
notebooks), ``e2e`` (also ``slow``) runs the smoke book or a whole pipeline; every test that
uses ``tiny_run`` is ``slow``, as the fixture trains. ``python -m pytest -m "not slow"`` is the
fast unit suite.
"""

import shutil
from pathlib import Path

import pytest
import torch

from pggan_core.paths import prepared_dir
from pggan_core.runs.folder import RunSpec


@pytest.fixture(scope="session", autouse=True)
def scratch_home(tmp_path_factory) -> Path:
    """``PGGAN_HOME`` for the whole session (session fixtures included): a scratch folder."""
    home = tmp_path_factory.mktemp("pggan_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PGGAN_HOME", str(home))
        yield home


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One intra-op thread, in session and module fixtures too: these networks are tiny, and
    threads only contend on 2 cores (a test that changes it gets it back: ``still_one_thread``).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def still_one_thread(one_thread):
    yield
    torch.set_num_threads(1)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory) -> Path:
    """A home holding the smoke profile's phantom fundus dataset and its trained ``seg`` run
    where ``pggan`` puts them (``data/prepared/rop-smoke``, ``runs/rop/smoke/seg``): 24
    images at 32 px, a GAN grown 4 -> 16 px in 20 steps. Read-only."""
    from pggan_core.data.prepare import prepare_dataset
    from pggan_core.runs.folder import run_config
    from pggan_core.training.trainer import train

    home = tmp_path_factory.mktemp("tiny_home")
    config = run_config("rop", "smoke")
    data = prepare_dataset(config, prepared_dir("rop", "smoke", home), progress=False)
    train(config, data, RunSpec("rop", "smoke").folder(home), progress=False)
    before = _snapshot(home)
    yield home
    assert _snapshot(home) == before, (
        f"a test changed the shared tiny run in {home}: tests that write into a run must "
        "use tiny_run_copy")


@pytest.fixture(scope="session")
def tiny_data(tiny_home) -> Path:
    """The shared run's prepared dataset (smoke profile, phantom fundus). Read-only."""
    return prepared_dir("rop", "smoke", tiny_home)


@pytest.fixture(scope="session")
def tiny_run(tiny_home) -> Path:
    """The shared trained run (``run_config("rop", "smoke")``, with segmentation). Read-only."""
    return RunSpec("rop", "smoke").folder(tiny_home)


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path) -> Path:
    """A copy of the shared run for a test that writes into it (its data stays shared)."""
    return shutil.copytree(tiny_run, tmp_path / "run")


@pytest.fixture(scope="session")
def drive_folder(tmp_path_factory) -> Path:
    """A user's fundus folder in the DRIVE layout (images/, 1st_manual/, mask/): 12 phantom
    photographs at 128 px written as .tif, with their vessel masks and fields of view as .gif.
    """
    import numpy as np
    from PIL import Image

    from pggan_core.data.fundus_phantom import render_fundus

    root = tmp_path_factory.mktemp("my fundus") / "DRIVE"  # a space in the path, as users have
    for number in range(21, 33):
        fundus = render_fundus(number, size=128)
        base = root / "training"
        for sub in ("images", "1st_manual", "mask"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray((fundus.rgb * 255).round().astype(np.uint8)).save(
            base / "images" / f"{number}_training.tif")
        Image.fromarray(fundus.vessels.astype(np.uint8) * 255).save(
            base / "1st_manual" / f"{number}_manual1.gif")
        Image.fromarray(fundus.fov.astype(np.uint8) * 255).save(
            base / "mask" / f"{number}_training_mask.gif")
    return root


@pytest.fixture(scope="session")
def brats_folder(tmp_path_factory) -> Path:
    """A user's BraTS 2017 download (``HGG/<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``):
    three phantom subjects, 8 axial slices each through the tumour's level."""
    from pggan_core.data.brain_phantom import BrainPhantom, write_brats_case

    root = tmp_path_factory.mktemp("my brats") / "MICCAI_BraTS17_Data_Training"
    phantom = BrainPhantom()
    for seed in range(3):
        volume = phantom.subject(seed, z_range=(66, 74))
        write_brats_case(volume, root / "HGG", f"Brats17_TST_{seed + 1}_1")
    return root
