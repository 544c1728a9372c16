"""The vessel U-Net: patches, network, training, saving, loading, segmenting."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pggan_core.config import load_config
from pggan_core.data.types import FundusImage
from pggan_core.errors import CheckpointError
from pggan_core.segmentation import vessels
from pggan_core.segmentation.vessels import (
    VesselUNet,
    load_vessel_unet,
    segment_by_patches,
    train_vessel_unet,
    windows_per_image,
)


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


class _Ramp(torch.nn.Module):
    """A stand-in U-Net whose logit is the pixel's row inside its patch: overlapping patches
    disagree, so the average is something to check."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # a device to run on

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(x.shape[-2], dtype=x.dtype)[:, None].expand(x.shape[-2:])
        return x * 0 + rows


def _by_hand(h: int, w: int, patch: int, stride: int) -> np.ndarray:
    """The mean over windows at ``stride``, the last aligned with the edge, of sigmoid(row)."""
    starts = lambda size: sorted({*range(0, size - patch + 1, stride), size - patch})  # noqa: E731
    total, count = np.zeros((h, w)), np.zeros((h, w))
    for top in starts(h):
        for left in starts(w):
            total[top:top + patch, left:left + patch] += 1 / (1 + np.exp(-np.arange(patch)))[
                :, None]
            count[top:top + patch, left:left + patch] += 1
    return total / count


@pytest.mark.parametrize(("h", "w"), [(64, 64), (61, 70), (128, 48)])
def test_patches_cover_every_pixel_and_average_their_overlaps(h, w):
    probs = segment_by_patches(_Ramp(), torch.zeros(2, 1, h, w), patch=48, stride=8,
                               batch_size=5)
    assert probs.shape == (2, 1, h, w)
    np.testing.assert_allclose(probs[1, 0].numpy(), _by_hand(h, w, 48, 8), atol=1e-6)
    assert windows_per_image((h, w), 48, 8) == len(
        sorted({*range(0, h - 47, 8), h - 48})) * len(sorted({*range(0, w - 47, 8), w - 48}))


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
def test_another_network_trains_the_same_way(tmp_path):
    """What bench_monai.py compares: any 1-in, 1-logit network on the same schedule."""
    cfg = load_config("smoke", "rop", {"vessels": {"iterations": 5}})
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 1, 1))
    metrics = train_vessel_unet(cfg, tmp_path / "m.pt", progress=False, network=net)
    assert len(metrics["loss"]) == 5 and 0.0 <= metrics["auc"] <= 1.0
    saved = torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"]
    assert saved.keys() == net.state_dict().keys()


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


def _folder_with_masks(folder, n: int, size: int = 72) -> None:
    folder.mkdir()
    for i in range(n):
        image = lines_fundus(i, size)
        cv2.imwrite(str(folder / f"eye{i}.png"), (image.rgb[:, :, ::-1] * 255).astype(np.uint8))
        cv2.imwrite(str(folder / f"eye{i}_vessels.png"), image.vessels.astype(np.uint8) * 255)


def test_the_unet_never_sees_the_photographs_it_is_told_to_leave_out(tmp_path):
    folder = tmp_path / "fundus"
    _folder_with_masks(folder, 6)
    cfg = load_config("smoke", "rop", {"vessels": {"n_train_images": 10, "n_heldout_images": 2}})
    left_out = [folder / "eye1.png", folder / "eye4.png"]
    train, heldout = vessels.vessel_images(cfg, str(folder), exclude=left_out)
    used = {im.source_file for im in train + heldout}
    assert len(used) == 4 and not used & {str(p) for p in left_out}


def test_preparing_a_folder_keeps_its_heldout_split_away_from_the_unet(tmp_path, monkeypatch):
    """On a user's folder with masks and ``vessel_channel: unet``, the U-Net that draws the
    vessel channel is trained without the photographs the dataset holds out (which the
    reference AUC later scores it on)."""
    from pggan_core.data.prepare import prepare_dataset
    from pggan_core.data.store import PreparedDataset

    folder = tmp_path / "fundus"
    _folder_with_masks(folder, 10, size=96)
    told: dict[str, list] = {}

    class Everywhere:  # stands in for the trained U-Net: what it draws does not matter here
        def segment_images(self, images: np.ndarray, scale_to: int, fov: np.ndarray
                           ) -> np.ndarray:
            return np.full((len(images), *images.shape[2:]), 0.5, np.float32)

    def ensure(cfg, source=None, progress=True, exclude=()):
        told["exclude"] = [str(p) for p in exclude]
        return Everywhere()

    monkeypatch.setattr(vessels, "ensure_vessel_unet", ensure)
    cfg = load_config("smoke", "rop", {"data": {"vessel_channel": "unet",
                                                "heldout_fraction": 0.2}})
    data = PreparedDataset(prepare_dataset(cfg, tmp_path / "prepared", source=folder,
                                           progress=False, workers=1))
    heldout_files = set(data.manifest.loc[data.split_indices("heldout"), "source_file"])
    assert len(heldout_files) == 2 and set(told["exclude"]) == heldout_files
