"""The authors' code's settings (the ``authors`` overlay) train, and are what the run uses.

The overlay is four explicit config values (5x5 convolutions, no equalized LR, Adam at 1e-4,
no EMA generator); this trains a tiny smoke-profile model with it through two resolutions and
checks each value reached the networks and optimizers, not just the config.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pggan_core.config import load_config
from pggan_core.data.store import DatasetWriter
from pggan_core.training import checkpoint as ckpt
from pggan_core.training.networks import Conv2d, Discriminator, Linear
from pggan_core.training.trainer import train

pytestmark = pytest.mark.slow  # trains a GAN


def _disc_dataset(path: Path, n: int = 8, resolution: int = 8) -> Path:
    """Bright discs on a dark field: a 4-channel (fundus-shaped) dataset in milliseconds."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:resolution, :resolution] / resolution
    with DatasetWriter(path, "rop", n_images=n, resolution=resolution) as writer:
        for i in range(n):
            cx, cy = rng.uniform(0.3, 0.7, 2)
            disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < 0.1).astype(np.float32)
            image = np.stack([disc * rng.uniform(0, 1) - (1 - disc) * 0.9 for _ in range(4)])
            writer.add(i, np.clip(image, -1, 1).astype(np.float32),
                       {"split": "heldout" if i == n - 1 else "train", "source_file": f"s{i}"})
    return path


@pytest.fixture(scope="module")
def authors_run(tmp_path_factory) -> tuple[object, Path]:
    """The smoke profile with the authors overlay, 4 -> 8 px (12 steps of batch 4)."""
    torch.set_num_threads(1)
    config = load_config("smoke", "rop", {"schedule": {"max_resolution": 8,
                                                       "batch_size": {4: 4, 8: 4}},
                                          "data": {"resolution": 8}},
                         overlays=("authors",))
    root = tmp_path_factory.mktemp("authors")
    run = train(config, _disc_dataset(root / "data"), root / "run", progress=False)
    return config, run


def _layers(*modules: torch.nn.Module) -> list[Conv2d | Linear]:
    return [m for module in modules for m in module.modules() if isinstance(m, Conv2d | Linear)]


def test_authors_overlay_trains_without_ema_equalized_lr_or_3x3(authors_run):
    config, run = authors_run
    assert (config.model.kernel_size, config.model.equalized_lr) == (5, False)
    assert (config.train.lr, config.train.use_ema) == (1e-4, False)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["equalized_lr"] is False and saved["train"]["use_ema"] is False

    state = ckpt.load_latest(run / "checkpoints")
    assert state["finished"] and state["resolution"] == 8
    assert state["G_ema"] is None  # no averaged generator was kept
    for name in ("opt_G", "opt_D"):
        assert [group["lr"] for group in state[name]["param_groups"]] == [1e-4], name

    G, info = ckpt.load_generator(run)
    assert info["ema"] is False
    D = Discriminator(config.model, len(state["channels"]), config.schedule.max_resolution)
    D.load_state_dict(state["D"])
    convs = [m for m in _layers(G, D) if isinstance(m, Conv2d)]
    kernels = {tuple(m.weight.shape[-2:]) for m in convs}
    assert (5, 5) in kernels and (3, 3) not in kernels  # 1x1 toRGB / fromRGB aside
    assert all(m.scale == 1.0 for m in _layers(G, D))  # no run-time weight scaling

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["resolution"] for r in records} == {4, 8}
    assert records and all(math.isfinite(r[k]) for r in records for k in ("d_loss", "g_loss"))
    assert G(torch.randn(2, config.model.latent_dim), 8).isfinite().all()
