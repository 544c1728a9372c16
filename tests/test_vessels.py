"""The vessel U-Net: patches, network, training, saving, loading, segmenting."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pggan_core.config import load_config
from pggan_core.data import vessels
from pggan_core.data.types import FundusImage
from pggan_core.data.vessels import (
    VesselUNet,
    extract_patches,
    load_vessel_unet,
    stitch_patches,
    train_vessel_unet,
)
from pggan_core.errors import CheckpointError


def lines_fundus(seed: int, size: int = 64) -> FundusImage:
    """A reddish disc crossed by a few obvious dark lines: the vessels are the lines."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    fov = np.hypot(yy - 0.5, xx - 0.5) < 0.47
    rgb = np.zeros((size, size, 3), np.float32)
    rgb[fov] = (0.8, 0.38, 0.15)
    lines = np.zeros((size, size), np.uint8)
    for _ in range(4):
        a, b = rng.integers(0, size, 2), rng.integers(0, size, 2)
        cv2.line(lines, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 1,
                 int(rng.integers(1, 4)))
    vessel = lines.astype(bool) & fov
    rgb[vessel] = (0.4, 0.1, 0.05)
    rgb += rng.normal(0, 0.01, rgb.shape).astype(np.float32)
    rgb[~fov] = 0
    return FundusImage(np.clip(rgb, 0, 1), vessel, fov, {}, f"lines:{seed}")


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (2, 1, 70, 53), (1, 2, 30, 100)])
def test_extract_stitch_round_trip_is_exact(shape):
    images = torch.rand(shape)
    patches, grid = extract_patches(images, patch=48, stride=8)
    assert patches.shape[1:] == (shape[1], 48, 48)
    assert torch.allclose(stitch_patches(patches, grid), images, atol=1e-6)


def test_patches_cover_every_pixel_and_average_overlaps():
    images = torch.zeros(1, 1, 61, 61)
    patches, grid = extract_patches(images, patch=48, stride=8)
    assert len(patches) == 3 * 3  # padded to 64: (64 - 48) / 8 + 1 = 3 per axis
    # patch k filled with k: pixel (0, 0) lies in patch 0 only, the centre in all nine
    filled = torch.arange(len(patches), dtype=torch.float32)[:, None, None, None].expand_as(
        patches)
    stitched = stitch_patches(filled.contiguous(), grid)
    assert stitched[0, 0, 0, 0] == 0
    assert stitched[0, 0, 30, 30] == pytest.approx(4.0)
    assert stitched[0, 0, 60, 60] == 8


def test_unet_output_shape():
    net = VesselUNet(base_channels=4)
    out = net(torch.rand(3, 1, 48, 48))
    assert out.shape == (3, 1, 48, 48)


def test_load_missing_model_says_what_to_run(tmp_path):
    with pytest.raises(CheckpointError, match="pggan vessels train --profile smoke"):
        load_vessel_unet(tmp_path / "runs" / "vessels" / "smoke" / "vessel_unet.pt")
    bad = tmp_path / "smoke" / "vessel_unet.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_vessel_unet(bad)


@pytest.mark.slow
def test_smoke_training_saves_loads_and_segments(tmp_path):
    cfg = load_config("smoke", "rop")
    out = tmp_path / "vessel_unet.pt"
    metrics = train_vessel_unet(cfg, out, progress=False)
    assert out.is_file() and out.with_suffix(".json").is_file()
    saved_metrics = json.loads(out.with_suffix(".json").read_text())
    assert len(saved_metrics["loss"]) == cfg.vessels.iterations
    assert 0.0 <= saved_metrics["auc"] <= 1.0
    assert saved_metrics["auc"] == metrics["auc"]
    assert saved_metrics["roc_fpr"][0] == 0 and saved_metrics["roc_tpr"][-1] == 1
    raw = torch.load(out, weights_only=True)
    assert raw["config"]["vessels"]["base_channels"] == cfg.vessels.base_channels

    segmenter = load_vessel_unet(out)
    for size in (40, 64, 97):  # below a patch, a multiple of the stride, neither
        image = lines_fundus(size, size)
        prob = segmenter.segment(image.rgb)
        assert prob.shape == (size, size) and prob.dtype == np.float32
        assert prob.min() >= 0 and prob.max() <= 1
    batch = segmenter.segment_batch([lines_fundus(1).rgb, lines_fundus(2, 80).rgb])
    assert [p.shape for p in batch] == [(64, 64), (80, 80)]
    assert np.allclose(batch[0], segmenter.segment(lines_fundus(1).rgb), atol=1e-5)


@pytest.mark.slow
def test_segmenter_finds_obvious_dark_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(vessels, "render_fundus", lines_fundus)
    # 24 px patches: a quarter of the paper's compute per patch, plenty for 1-3 px lines
    cfg = load_config("smoke", "rop", {"vessels": {"iterations": 60, "base_channels": 8,
                                                   "patch": 24}})
    metrics = train_vessel_unet(cfg, tmp_path / "m.pt", progress=False)
    assert metrics["loss"][-1] < metrics["loss"][0]
    image = lines_fundus(12345, 96)  # a seed and size the U-Net never saw
    prob = load_vessel_unet(tmp_path / "m.pt").segment(image.rgb, image.fov)
    auc = roc_auc_score(image.vessels[image.fov], prob[image.fov])
    assert auc > 0.8, auc


@pytest.mark.slow
def test_training_on_a_folder_with_manual_masks(tmp_path):
    folder = tmp_path / "fundus"
    folder.mkdir()
    for i in range(4):
        image = lines_fundus(i, 72)
        cv2.imwrite(str(folder / f"eye{i}.png"), (image.rgb[:, :, ::-1] * 255).astype(np.uint8))
        cv2.imwrite(str(folder / f"eye{i}_vessels.png"), image.vessels.astype(np.uint8) * 255)
    cv2.imwrite(str(folder / "unlabelled.png"), np.zeros((72, 72, 3), np.uint8))
    cfg = load_config("smoke", "rop", {"vessels": {"patch": 24}})
    metrics = train_vessel_unet(cfg, tmp_path / "m.pt", source=str(folder), progress=False)
    assert metrics["source"] == str(folder)
    assert metrics["n_train"] + metrics["n_heldout"] == 4  # the image without a mask is unused
    assert metrics["n_heldout"] >= 1
