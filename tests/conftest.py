"""Shared fixtures: one tiny prepared dataset and one tiny trained run per test session."""

from pathlib import Path

import pytest
import torch

from pggan_core.config import load_config
from pggan_core.data.prepare import prepare_dataset
from pggan_core.train import train


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these networks are tiny, and threads only contend on 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory) -> Path:
    """A scratch PGGAN_HOME so runs and models never land in the checkout."""
    return tmp_path_factory.mktemp("pggan_home")


@pytest.fixture(scope="session")
def tiny_rop_run(tiny_home) -> Path:
    """A smoke-profile fundus run (4 -> 16 px) on 12 phantom images at 32 px."""
    config = load_config("smoke", "rop", {"data": {"n_images": 12, "resolution": 32,
                                                   "heldout_fraction": 0.25}})
    data = prepare_dataset(config, tiny_home / "data" / "rop", progress=False, workers=1)
    return train(config, data, tiny_home / "runs" / "rop-seg", progress=False)


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
