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
