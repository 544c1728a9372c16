"""The vessel U-Net: 48 x 48 patches with an 8-pixel stride, trained, saved and applied.

Beers et al. (2018), "Retinopathy of Prematurity Dataset": "A U-net pre-trained on 200 manually
segmented vessel images was used to perform segmentation of the vasculature, which operates on
48 x 48 pixel patches with an overlap of 8 pixels in the x and y directions." The authors' code
(QTIM-Lab retina-unet / qtim_ROP ``segment_unet.py``) slides the patch with a stride of 8 and
averages the overlapping predictions; so do we, with retina-unet's network. Without the i-ROP
photographs the U-Net trains on the fundus phantom's exact vessel masks (or on a real vessel set
such as DRIVE, given a folder with manual masks). The same segmenter later scores synthetic images
for the paper's vessel-agreement AUC (0.97).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

from pggan_core.atomic import atomic_file, write_text_atomic
from pggan_core.data.fundus_phantom import render_fundus
from pggan_core.data.preprocess import field_of_view, vessel_input
from pggan_core.data.types import FundusImage
from pggan_core.device import pick_device
from pggan_core.errors import CheckpointError, ConfigError, DataError
from pggan_core.progress import Progress
from pggan_core.settings import Config, DataConfig, VesselConfig

# Seeds of the U-Net's own phantoms, far from those of prepared GAN datasets; the held-out
# images use a second, disjoint block so they never overlap the training ones.
TRAIN_SEED_BASE = 7_000_000
HELDOUT_SEED_BASE = 8_000_000
MAX_PATCHES = 8192  # patches held in memory at once while segmenting (about 75 MB)
ROC_POINTS = 200  # ROC curve points kept in the metrics JSON

# --------------------------------------------------------------------------------- The network


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class VesselUNet(nn.Module):
    """retina-unet's U-Net: a 1-channel patch in, one vessel logit per pixel out. Widths base,
    2*base, 4*base; max-pooling down, nearest-neighbour upsampling up (as retina-unet's
    UpSampling2D), concatenated skips. BatchNorm (not in retina-unet) lets the short demo schedules
    converge in a few hundred iterations. With ``in_channels`` and ``out_channels`` it is the
    augmentation study's glioma segmenter (four MR modalities in, one logit per tumour class out).
    """

    def __init__(self, base_channels: int = 16, in_channels: int = 1,
                 out_channels: int = 1) -> None:
        super().__init__()
        b = base_channels
        self.down1 = _double_conv(in_channels, b)
        self.down2 = _double_conv(b, 2 * b)
        self.bottom = _double_conv(2 * b, 4 * b)
        self.up2 = _double_conv(4 * b + 2 * b, 2 * b)
        self.up1 = _double_conv(2 * b + b, b)
        self.head = nn.Conv2d(b, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) with H, W divisible by 4 -> (B, out, H, W) logits."""
        d1 = self.down1(x)
        d2 = self.down2(F.max_pool2d(d1, 2))
        bottom = self.bottom(F.max_pool2d(d2, 2))
        u2 = self.up2(torch.cat([F.interpolate(bottom, scale_factor=2.0), d2], dim=1))
        u1 = self.up1(torch.cat([F.interpolate(u2, scale_factor=2.0), d1], dim=1))
        return self.head(u1)


# ------------------------------------------------------------------------------------- Patches


def segment_by_patches(net: nn.Module, images: torch.Tensor, patch: int, stride: int,
                       batch_size: int = 256) -> torch.Tensor:
    """Vessel probability (N, 1, H, W) of preprocessed images (N, 1, H, W), patch by patch: every
    ``patch`` x ``patch`` window at ``stride`` (the last ones aligned with the image's edge; an
    image smaller than a patch is padded) goes through ``net`` in batches of ``batch_size``, and a
    pixel's probability is the mean over its windows. MONAI's ``sliding_window_inference`` windows
    (as fast as an unfold/fold of our own: ``benchmarks/bench_monai.py``)."""
    from monai.inferers import sliding_window_inference

    device = next(net.parameters()).device
    with torch.inference_mode():
        # MONAI's stride is int(patch * (1 - overlap)): ask for the overlap of a stride half
        # a pixel longer, so the rounding down lands on ``stride`` exactly
        return sliding_window_inference(
            images.to(device), (patch, patch), batch_size, lambda x: torch.sigmoid(net(x)),
            overlap=1 - (stride + 0.5) / patch, mode="constant").cpu()


def windows_per_image(shape: tuple[int, ...], patch: int, stride: int) -> int:
    """How many windows ``segment_by_patches`` runs over one image of ``shape`` (..., H, W)."""
    rows, cols = (1 + math.ceil(max(size - patch, 0) / stride) for size in shape[-2:])
    return rows * cols


# ------------------------------------------------------------------ Applying a trained network


class VesselSegmenter:
    """A trained vessel U-Net with the preprocessing it was trained with."""

    def __init__(self, net: VesselUNet, data_cfg: DataConfig, vessel_cfg: VesselConfig) -> None:
        self.net = net.eval()  # on the device it was trained or loaded on
        self.data_cfg = data_cfg
        self.vessel_cfg = vessel_cfg

    def default_fov(self, rgb: np.ndarray) -> np.ndarray:
        """The field of view the U-Net was trained in (``preprocess.field_of_view``)."""
        return field_of_view(rgb, self.data_cfg)

    def segment(self, rgb: np.ndarray, fov: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) RGB (uint8 or [0, 1] float) -> float32 (H, W) vessel probability, 0 outside
        ``fov`` (default: ``default_fov(rgb)``)."""
        return self.segment_batch([rgb], None if fov is None else [fov])[0]

    def segment_images(self, images: np.ndarray, scale_to: int, fov: np.ndarray) -> np.ndarray:
        """``segment_vessels`` with this U-Net: images (N, >=3, R, R) in [-1, 1], segmented at
        ``scale_to`` px and reduced back to R."""
        return segment_vessels(self, images, scale_to, fov)

    def segment_batch(self, rgbs: list[np.ndarray], fovs: list[np.ndarray] | None = None
                      ) -> list[np.ndarray]:
        """``segment`` for a list of images (any sizes): consecutive images of one size share
        network batches, in groups of at most ``MAX_PATCHES`` windows (bounded memory)."""
        fovs = fovs if fovs is not None else [self.default_fov(rgb) for rgb in rgbs]
        p, s = self.vessel_cfg.patch, self.vessel_cfg.stride
        probs: list[np.ndarray] = []
        group: list[np.ndarray] = []
        for rgb, fov in [*zip(rgbs, fovs, strict=True), (None, None)]:
            x = None if rgb is None else vessel_input(rgb, fov, self.data_cfg)
            if group and (x is None or x.shape != group[0].shape or
                          (len(group) + 1) * windows_per_image(x.shape, p, s) > MAX_PATCHES):
                batch = torch.from_numpy(np.stack(group))[:, None]
                probs += list(segment_by_patches(self.net, batch, p, s)[:, 0].numpy())
                group = []
            if x is not None:
                group.append(x)
        return [np.where(fov, prob, 0.0).astype(np.float32)
                for prob, fov in zip(probs, fovs, strict=True)]


def load_vessel_unet(path: str | Path) -> VesselSegmenter:
    """Load a U-Net saved by ``train_vessel_unet``; CheckpointError if missing or unreadable."""
    path = Path(path)
    profile = path.parent.name or "demo"
    if not path.is_file():
        raise CheckpointError(f"{path}: no trained vessel U-Net; run `pggan vessels train "
                              f"--profile {profile}` first")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        vessel_cfg = VesselConfig(**saved["config"]["vessels"])
        data_cfg = DataConfig(**saved["config"]["data"])
        net = VesselUNet(vessel_cfg.base_channels)
        net.load_state_dict(saved["state_dict"])
    except Exception as err:
        raise CheckpointError(f"{path}: unreadable vessel U-Net ({type(err).__name__}); "
                              f"delete it and run `pggan vessels train --profile {profile}`"
                              ) from err
    return VesselSegmenter(net, data_cfg, vessel_cfg)


# ------------------------------------------------------------------------------------ Training


def phantom_seeds(v: VesselConfig) -> tuple[list[int], list[int]]:
    """The phantom seeds the U-Net trains on and is evaluated on (two disjoint blocks)."""
    offset = v.seed * 10_000
    return ([TRAIN_SEED_BASE + offset + i for i in range(v.n_train_images)],
            [HELDOUT_SEED_BASE + offset + i for i in range(v.n_heldout_images)])


def vessel_images(cfg: Config, source: str | None = None,
                  exclude: Collection[str | Path] = ()) -> tuple[list[FundusImage],
                                                                 list[FundusImage]]:
    """The U-Net's (training, held-out) images at ``vessels.train_resolution``: phantoms
    (``phantom_seeds``), or the images of ``source`` with manual vessel masks, shuffled by
    ``vessels.seed``, never one of ``exclude`` (the GAN dataset's held-out split, which the U-Net
    later scores: having learnt them would inflate every number it gives). DataError for a
    ``source`` with fewer than 2 masked images."""
    v = cfg.vessels
    size = v.train_resolution
    if source is None:
        train_seeds, heldout_seeds = phantom_seeds(v)
        return ([render_fundus(s, size) for s in train_seeds],
                [render_fundus(s, size) for s in heldout_seeds])
    from pggan_core.data.loaders import find_fundus_images, load_fundus

    excluded = {Path(path).resolve() for path in exclude}
    records = [r for r in find_fundus_images(source)
               if r.vessel_path is not None and Path(r.image_path).resolve() not in excluded]
    order = np.random.default_rng(v.seed).permutation(len(records))
    wanted = v.n_train_images + v.n_heldout_images
    images = [load_fundus(records[i], size) for i in order[:wanted]]
    if len(images) < 2:
        raise DataError(f"{source}: found {len(images)} images with vessel masks, need at "
                        "least 2; give a folder like DRIVE's with manual masks, or no source "
                        "to train on phantoms")
    n_heldout = max(1, min(v.n_heldout_images, len(images) // 5))
    return images[n_heldout:], images[:n_heldout]


def sample_patches(
    inputs: np.ndarray, targets: np.ndarray, centres: list[np.ndarray], patch: int,
    n: int, rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random ``patch`` x ``patch`` windows of (input, target) images (N, H, W), each
    centred on a random pixel of ``centres[i]`` (the field of view of image i, as
    ``np.argwhere``) and randomly flipped: (n, 1, patch, patch) tensors."""
    h, w = inputs.shape[1:]
    xs, ys = np.empty((n, patch, patch), np.float32), np.empty((n, patch, patch), np.float32)
    for k in range(n):
        i = int(rng.integers(len(inputs)))
        cy, cx = centres[i][rng.integers(len(centres[i]))]
        top = int(np.clip(cy - patch // 2, 0, h - patch))
        left = int(np.clip(cx - patch // 2, 0, w - patch))
        x = inputs[i, top:top + patch, left:left + patch]
        y = targets[i, top:top + patch, left:left + patch]
        if rng.random() < 0.5:  # vessels have no preferred direction: flips are free data
            x, y = x[:, ::-1], y[:, ::-1]
        if rng.random() < 0.5:
            x, y = x[::-1], y[::-1]
        xs[k], ys[k] = x, y
    return torch.from_numpy(xs)[:, None], torch.from_numpy(ys)[:, None]


def fit_unet(net: nn.Module, draw_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], iterations: int,
             lr: float, label: str, progress: bool = True) -> list[float]:
    """Train ``net`` in place for ``iterations`` Adam steps at ``lr`` on batches ``draw_batch()``
    (inputs, targets), on the device ``net`` is on; returns the loss per step. The one loop of every
    segmenter here, the vessel U-Net's and the augmentation study's."""
    device = next(net.parameters()).device
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    losses: list[float] = []
    net.train()
    bar = Progress(iterations, label, enabled=progress)
    for _ in range(iterations):
        x, y = draw_batch()
        loss = loss_fn(net(x.to(device)), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(round(loss.item(), 5))
        bar.update(1, detail=f"loss {losses[-1]:.4f}")
    bar.close()
    net.eval()
    return losses


def evaluate_auc(segmenter: VesselSegmenter, images: list[FundusImage]) -> dict[str, Any]:
    """ROC AUC of the full patch/stride segmentation against the masks, inside each image's
    field of view (``preprocess.field_of_view``, as in training and in every later step)."""
    fovs = [segmenter.default_fov(im.rgb) for im in images]
    probs = segmenter.segment_batch([im.rgb for im in images], fovs)
    scores = np.concatenate([p[fov] for p, fov in zip(probs, fovs, strict=True)])
    truth = np.concatenate([im.vessels[fov] for im, fov in zip(images, fovs, strict=True)])
    fpr, tpr, _ = roc_curve(truth, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, ROC_POINTS).round().astype(int))
    return {
        "auc": float(roc_auc_score(truth, scores)),
        "roc_fpr": [round(float(f), 5) for f in fpr[keep]],
        "roc_tpr": [round(float(t), 5) for t in tpr[keep]],
        "vessel_fraction": float(truth.mean()),
    }


def train_vessel_unet(
    cfg: Config, out_path: str | Path, source: str | None = None, progress: bool = True,
    network: nn.Module | None = None, exclude: Collection[str | Path] = (),
) -> dict[str, Any]:
    """Train the vessel U-Net on ``vessel_images`` (never ``exclude``), evaluate it on the held-out
    ones, and write ``out_path`` (a state_dict and a plain config dict, readable ``weights_only``)
    and its ``metrics_path`` (loss curve, held-out AUC and ROC points), both atomically; returns the
    metrics. ``network`` (1 channel in, 1 logit out) replaces ``VesselUNet(vessels.base_channels)``,
    e.g. MONAI's UNet in ``benchmarks/bench_monai.py``."""
    v = cfg.vessels
    if v.train_resolution < v.patch:
        raise ConfigError(f"vessels.train_resolution={v.train_resolution} is smaller than "
                          f"vessels.patch={v.patch}; raise it")
    start = time.perf_counter()
    torch.manual_seed(v.seed)
    rng = np.random.default_rng(v.seed)
    device = pick_device(cfg.train.device)
    train, heldout = vessel_images(cfg, source, exclude)
    # the field of view of every later step (preparation, evaluation), not the phantom's own
    fovs = [field_of_view(im.rgb, cfg.data) for im in train]
    inputs = np.stack([vessel_input(im.rgb, fov, cfg.data)
                       for im, fov in zip(train, fovs, strict=True)])
    targets = np.stack([(im.vessels & fov).astype(np.float32)
                        for im, fov in zip(train, fovs, strict=True)])
    centres = [np.argwhere(fov) for fov in fovs]
    for image, inside in zip(train, centres, strict=True):
        if len(inside) == 0:
            raise DataError(f"{image.source_file}: empty field of view; check its FOV mask "
                            "or remove the image")
    data_seconds = time.perf_counter() - start

    net = (network or VesselUNet(v.base_channels)).to(device)
    losses = fit_unet(
        net, lambda: sample_patches(inputs, targets, centres, v.patch, v.batch_size, rng),
        F.binary_cross_entropy_with_logits, v.iterations, v.lr, "vessel U-Net", progress)
    train_seconds = time.perf_counter() - start - data_seconds

    segmenter = VesselSegmenter(net, cfg.data, v)
    metrics = {
        "profile": cfg.profile,
        "source": source or "phantom",
        "n_train": len(train),
        "n_heldout": len(heldout),
        "n_excluded": len(exclude),  # the GAN dataset's held-out photographs, never seen
        "train_resolution": v.train_resolution,
        "loss": losses,
        **evaluate_auc(segmenter, heldout),
        "seconds_data": round(data_seconds, 2),
        "seconds_train": round(train_seconds, 2),
        "seconds_total": round(time.perf_counter() - start, 2),
    }
    out_path = Path(out_path)
    saved = {
        "state_dict": {k: t.detach().cpu() for k, t in net.state_dict().items()},
        "config": {**unet_settings(cfg), "profile": cfg.profile, "source": source or "phantom"},
    }
    with atomic_file(out_path) as fh:
        torch.save(saved, fh)
    write_text_atomic(metrics_path(out_path), json.dumps(metrics, indent=1))
    return metrics


def unet_settings(cfg: Config) -> dict[str, Any]:
    """What a vessel U-Net is trained with: its own section and the preprocessing of its input
    (saved with it; a shipped U-Net is used only for a profile with these settings)."""
    return {"vessels": dataclasses.asdict(cfg.vessels),
            "data": {k: getattr(cfg.data, k)
                     for k in ("gamma", "clahe_clip", "clahe_tiles", "fov_erosion_px")}}


def metrics_path(model_path: str | Path) -> Path:
    """The metrics JSON saved next to a vessel U-Net."""
    return Path(model_path).with_suffix(".json")


def load_metrics(model_path: str | Path) -> dict[str, Any]:
    """The metrics ``train_vessel_unet`` saved next to ``model_path`` (CheckpointError if none)."""
    path = metrics_path(model_path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no vessel U-Net metrics; run `pggan vessels train` first")
    return json.loads(path.read_text())


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """A square float32 [0, 1] copy of ``rgb`` at ``size`` px (area filter when shrinking)."""
    image = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    interp = cv2.INTER_AREA if size < max(image.shape[:2]) else cv2.INTER_CUBIC
    return np.clip(cv2.resize(image, (size, size), interpolation=interp), 0.0, 1.0)


def ensure_vessel_unet(cfg: Config, source: str | None = None, progress: bool = True,
                       exclude: Collection[str | Path] = ()) -> VesselSegmenter:
    """The profile's saved vessel U-Net (``paths.vessel_model_path``), trained first if missing
    (``train_vessel_unet``): data preparation, evaluation and the vessel chapter share it."""
    from pggan_core.paths import vessel_model_path

    path = vessel_model_path(cfg.profile)
    if not path.is_file():
        train_vessel_unet(cfg, path, source=source, progress=progress, exclude=exclude)
    return load_vessel_unet(path)


def segment_vessels(segmenter, images: np.ndarray, scale_to: int, fov: np.ndarray
                    ) -> np.ndarray:
    """The U-Net's vessel probability for fundus images (N, >=3, R, R) in [-1, 1], 0 outside their
    fields of view ``fov`` (N, R, R): each segmented at ``scale_to`` px, the vessel calibre the
    U-Net learnt (``enlarge_fundus``), and the map reduced back to R."""
    size = images.shape[-1]
    out = np.empty((len(images), size, size), np.float32)
    for i, image in enumerate(images):
        prob = segmenter.segment(*enlarge_fundus(image, fov[i], scale_to))
        out[i] = np.where(fov[i], cv2.resize(prob, (size, size), interpolation=cv2.INTER_AREA),
                          0.0)
    return out


def enlarge_fundus(image: np.ndarray, fov: np.ndarray, scale_to: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A fundus image (>=3, R, R) in [-1, 1] and its field of view (R, R) at ``scale_to`` px,
    the vessel calibre the U-Net learnt: RGB (S, S, 3) in [0, 1] enlarged bicubically, the
    field of view by nearest neighbour (so it stays the same pixels)."""
    rgb = np.clip((image[:3].transpose(1, 2, 0) + 1.0) / 2.0, 0.0, 1.0)
    big = np.clip(cv2.resize(rgb, (scale_to, scale_to), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
    big_fov = cv2.resize(fov.astype(np.uint8), (scale_to, scale_to),
                         interpolation=cv2.INTER_NEAREST).astype(bool)
    return big, big_fov
