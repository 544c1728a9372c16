"""What the augmentation study's segmenter learns on each dataset: one ``SegmentationTask``, named
by the dataset's spec (``DatasetSpec.segmentation``), holds everything that differs between datasets
(the pairs, the network, its batches, loss and scores, the words for it). Fundus: the vessel U-Net
on the paper's 48 x 48 patches, scored by vessel Dice and AUC inside the field of view. Glioma: the
same U-Net with four modalities in and four classes out on whole slices, cross-entropy plus soft
Dice (the usual remedy for a tumour that covers a few per cent of the slice), scored by Dice per
tumour region."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from pggan_core.data.store import PreparedDataset
from pggan_core.datasets import dataset_spec, hook
from pggan_core.errors import ConfigError, DataError
from pggan_core.segmentation.pairs import TUMOUR_CLASSES, LabelledSet, fundus_pairs, tumour_pairs
from pggan_core.segmentation.vessels import VesselUNet, sample_patches
from pggan_core.settings import Config

Augment = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
Draw = Callable[[], tuple[Tensor, Tensor]]

# a predicted vessel is a probability above this (the U-Net's sigmoid, as everywhere here)
DICE_THRESHOLD = 0.5


@dataclass(frozen=True)
class SegmentationTask:
    """One dataset's segmentation task, as the augmentation study trains and scores it."""

    metrics: tuple[str, ...]  # the scores, the study's lead one first
    target: str  # what the segmenter learns to draw, in figure titles
    # inputs' background value (outside the field of view / brain): the classic arm's rotation fill
    input_floor: float
    classic_flips: bool  # the classic arm flips (False: every arm's batches are flipped)
    # (prepared data, rows, resolution, config) -> real pairs with their ground truth
    real_pairs: Callable[[PreparedDataset, np.ndarray, int, Config], LabelledSet]
    # (generated images (N, C, R, R) in [-1, 1], config) -> pairs, their label channels as targets
    synthetic_pairs: Callable[[np.ndarray, Config], LabelledSet]
    network: Callable[[LabelledSet, Config], nn.Module]  # a fresh, seeded segmenter
    # (pairs, config, rng, augment) -> a function drawing one augmented training batch
    batches: Callable[[LabelledSet, Config, np.random.Generator, Augment], Draw]
    loss: Callable[[Tensor, Tensor], Tensor]
    score: Callable[[np.ndarray, LabelledSet], dict[str, float]]  # (outputs, held-out pairs)
    describe: Callable[[Config], str]  # the segmenter and its training, in words
    # hook ("module:function") drawing one pair (input, target) as the segmenter sees it, (H, W, 3)
    pair_panel: str


def segmentation_task(dataset: str) -> SegmentationTask:
    """``dataset``'s task (its spec's ``segmentation``), or a ConfigError if it has none."""
    task = dataset_spec(dataset).segmentation
    if task is None:
        raise ConfigError(f"dataset {dataset!r} names no segmentation task "
                          "(DatasetSpec.segmentation): there is no augmentation study for it")
    return hook(task)()


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """2|P ∩ T| / (|P| + |T|) over all pixels given (NaN when both are empty)."""
    total = int(predicted.sum()) + int(truth.sum())
    return float("nan") if total == 0 else 2.0 * float((predicted & truth).sum()) / total


# ----------------------------------------------------------------------------- Fundus: vessels


def _real_vessel_pairs(data: PreparedDataset, idx: np.ndarray, resolution: int, cfg: Config
                       ) -> LabelledSet:
    truth = data.vessel_truth(idx, resolution)
    if truth is None:
        raise DataError(f"{data.path}: no ground-truth vessel masks (its vessel channel is the "
                        "U-Net's map), so there is nothing honest to train on or score "
                        "against; prepare a folder with manual masks")
    return fundus_pairs(data.batch(idx, resolution), truth, cfg.data,
                        cfg.vessels.train_resolution)


def _synthetic_vessel_pairs(images: np.ndarray, cfg: Config) -> LabelledSet:
    return fundus_pairs(images, (images[:, 3] + 1.0) / 2.0, cfg.data,
                        cfg.vessels.train_resolution)


def _vessel_batches(pairs: LabelledSet, cfg: Config, rng: np.random.Generator,
                    augment: Augment) -> Draw:
    inputs, targets = pairs.x[:, 0], pairs.y
    centres = [np.argwhere(fov).astype(np.int32) for fov in pairs.fov]

    def draw() -> tuple[Tensor, Tensor]:
        x, y = sample_patches(inputs, targets, centres, cfg.vessels.patch,
                              cfg.augment.batch_size, rng)
        x, y = augment(x, y[:, 0])
        return x, y[:, None]

    return draw


def _vessel_scores(output: np.ndarray, test: LabelledSet) -> dict[str, float]:
    probs = 1.0 / (1.0 + np.exp(-output[:, 0]))
    scores, truth = probs[test.fov], test.y[test.fov] > 0.5
    # a test set without vessel pixels has no AUC (a GAN at a few px: no vessel covers half a pixel)
    auc = float(roc_auc_score(truth, scores)) if 0 < truth.sum() < truth.size else np.nan
    return {"dice": dice(scores > DICE_THRESHOLD, truth), "auc": auc}


def _vessel_text(cfg: Config) -> str:
    return (f"the project's vessel U-Net (base width {cfg.vessels.base_channels}) on "
            f"{cfg.vessels.patch} x {cfg.vessels.patch} patches with random flips, binary "
            f"cross-entropy, {_common_text(cfg)}; images at the U-Net's "
            f"{cfg.vessels.train_resolution} px, scored whole")


def vessel_task() -> SegmentationTask:
    """The fundus task: vessel maps from the U-Net's grey-level input."""
    return SegmentationTask(
        metrics=("dice", "auc"), target="vessel target", input_floor=0.0, classic_flips=False,
        real_pairs=_real_vessel_pairs, synthetic_pairs=_synthetic_vessel_pairs,
        network=lambda pairs, cfg: VesselUNet(cfg.vessels.base_channels),
        batches=_vessel_batches, loss=F.binary_cross_entropy_with_logits,
        score=_vessel_scores, describe=_vessel_text,
        pair_panel="pggan_core.viz.plots:vessel_pair_panel")


# ---------------------------------------------------------------------- Glioma: tumour regions

TUMOUR_METRICS = ("dice_wt", "dice_ncr", "dice_ed", "dice_et")


def tumour_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy plus one minus the soft Dice of the tumour classes (batch-pooled)."""
    probs = logits.softmax(dim=1)[:, 1:]
    onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    overlap = (probs * onehot).sum(dim=(0, 2, 3))
    soft_dice = (2 * overlap + 1.0) / (probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3)) + 1.0)
    return F.cross_entropy(logits, labels) + 1.0 - soft_dice.mean()


def _tumour_batches(pairs: LabelledSet, cfg: Config, rng: np.random.Generator,
                    augment: Augment) -> Draw:
    def draw() -> tuple[Tensor, Tensor]:
        pick = rng.integers(len(pairs), size=cfg.augment.batch_size)
        return augment(torch.from_numpy(pairs.x[pick]), torch.from_numpy(pairs.y[pick]))

    return draw


def _tumour_scores(output: np.ndarray, test: LabelledSet) -> dict[str, float]:
    predicted = output.argmax(1)
    scores = {"dice_wt": dice(predicted > 0, test.y > 0)}
    for key, label in zip(TUMOUR_METRICS[1:], range(1, len(TUMOUR_CLASSES)), strict=True):
        scores[key] = dice(predicted == label, test.y == label)
    return scores


def _tumour_text(cfg: Config) -> str:
    return (f"the same U-Net with the 4 modalities in and 4 classes out (base width "
            f"{cfg.augment.base_channels}) on whole slices, cross-entropy + soft Dice, "
            f"{_common_text(cfg)}")


def tumour_task() -> SegmentationTask:
    """The glioma task: the three BraTS tumour classes from the four modalities."""
    return SegmentationTask(
        metrics=TUMOUR_METRICS, target="tumour classes on FLAIR", input_floor=-1.0,
        classic_flips=True,
        real_pairs=lambda data, idx, resolution, cfg: tumour_pairs(data.batch(idx, resolution)),
        synthetic_pairs=lambda images, cfg: tumour_pairs(images),
        network=lambda pairs, cfg: VesselUNet(cfg.augment.base_channels, pairs.x.shape[1],
                                              len(TUMOUR_CLASSES)),
        batches=_tumour_batches, loss=tumour_loss, score=_tumour_scores,
        describe=_tumour_text, pair_panel="pggan_core.viz.plots:tumour_pair_panel")


def _common_text(cfg: Config) -> str:
    a = cfg.augment
    return f"{a.iterations} Adam updates (lr {a.lr}) of batches of {a.batch_size} in every arm"
