"""The paper's one number: does the generator's own vessel channel predict what a vessel segmenter
finds in the synthetic photograph (AUC; Beers et al. report 0.97)?"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from pggan_core.data.preprocess import fields_of_view
from pggan_core.data.store import PreparedDataset
from pggan_core.errors import DataError
from pggan_core.segmentation.vessels import segment_vessels
from pggan_core.settings import Config, DataConfig

# The U-Net's probability above which a pixel is labelled vessel. The authors' scripts binarise
# the U-Net's output at 0.4-0.5; 0.5 is the usual cut of a sigmoid trained with cross-entropy.
VESSEL_LABEL_THRESHOLD = 0.5


def _vessel_inputs(vessel_score: np.ndarray, segmentation: np.ndarray, fov: np.ndarray | None,
                   threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    score = np.asarray(vessel_score, dtype=np.float32)
    seg = np.asarray(segmentation, dtype=np.float32)
    if score.ndim != 3 or score.shape != seg.shape:
        raise DataError(f"vessel_agreement_auc: vessel_score {score.shape} and segmentation "
                        f"{seg.shape} must both be (N, H, W) of one shape")
    mask = np.ones(score.shape, dtype=bool) if fov is None else np.broadcast_to(
        np.asarray(fov, dtype=bool), score.shape)
    return score, seg > threshold, mask


def vessel_agreement_auc(vessel_score: np.ndarray, segmentation: np.ndarray,
                         fov: np.ndarray | None = None,
                         threshold: float = VESSEL_LABEL_THRESHOLD) -> float:
    """The paper's AUC: how well a vessel map *predicts* the U-Net's segmentation, over the pixels
    of all images pooled.

    Beers et al. (2018, "Image Quality"): the GAN's vessel maps "predict the segmentation maps
    generated from the segmentation algorithm" at AUC 0.97. So each pixel's label is the U-Net's
    vessel probability (``segmentation``, (N, H, W)) above ``threshold``, and its score the
    continuous ``vessel_score`` (N, H, W), on any monotone scale (the GAN's own vessel channel;
    ground truth for the reference). Swapping the two is a different number. Only pixels inside
    ``fov`` ((N, H, W) or (H, W) bool; None = all) count; DataError if their labels hold one class.
    """
    score, vessel, mask = _vessel_inputs(vessel_score, segmentation, fov, threshold)
    labels = vessel[mask]
    if labels.all() or not labels.any():
        raise DataError("vessel_agreement_auc: the U-Net's segmentation has only one class "
                        "inside the field of view, so AUC is undefined; check the images and "
                        "the threshold")
    return float(roc_auc_score(labels, score[mask]))


def per_image_vessel_auc(vessel_score: np.ndarray, segmentation: np.ndarray,
                         fov: np.ndarray | None = None,
                         threshold: float = VESSEL_LABEL_THRESHOLD) -> np.ndarray:
    """AUC of each image on its own (arguments as ``vessel_agreement_auc``), shape (N,): NaN for an
    image whose segmentation has one class inside the FOV (summarise with ``np.nanmean``). The
    spread shows whether a pooled AUC hides some badly inconsistent samples."""
    score, vessel, mask = _vessel_inputs(vessel_score, segmentation, fov, threshold)
    out = np.full(len(score), np.nan)
    for i in range(len(score)):
        labels = vessel[i][mask[i]]
        if labels.any() and not labels.all():
            out[i] = roc_auc_score(labels, score[i][mask[i]])
    return out


def vessel_agreement(segmenter, images: np.ndarray, vessel_maps: np.ndarray,
                     data_cfg: DataConfig, scale_to: int) -> float | None:
    """The paper's AUC for fundus images (N, >=3, R, R) in [-1, 1] and their continuous
    ``vessel_maps`` (N, R, R): labels from the U-Net's segmentation of each photograph
    (``segment_vessels``, probability > ``VESSEL_LABEL_THRESHOLD``), inside the field of view
    (``preprocess.fields_of_view``). None when the segmentation has one class only (no vessel at
    all, or nothing but vessel)."""
    fov = fields_of_view(images, data_cfg)
    segmentation = segment_vessels(segmenter, images, scale_to, fov)
    labels = segmentation[fov] > VESSEL_LABEL_THRESHOLD
    if labels.all() or not labels.any():
        return None
    return vessel_agreement_auc(vessel_maps, segmentation, fov)


def vessel_agreement_results(segmenter, fake: np.ndarray, data: PreparedDataset,
                              heldout_idx: np.ndarray, config: Config) -> dict[str, Any]:
    """The AUC on generated images and its reference on held-out real ones, with a record of
    what was compared (``metrics.json``)."""
    k, scale = config.eval.n_auc_images, config.vessels.train_resolution
    resolution = fake.shape[-1]
    reals = data.batch(heldout_idx[:k], resolution)
    truth = data.vessel_truth(heldout_idx[:k], resolution)
    label = (f"the vessel U-Net's segmentation of the photograph (trained on "
             f"{config.vessels.train_resolution} px images; probability > "
             f"{VESSEL_LABEL_THRESHOLD})")
    record: dict[str, Any] = {
        "direction": "score predicts label (the paper's)",
        "score": "the generator's own vessel channel, continuous",
        "label": label,
        "threshold": VESSEL_LABEL_THRESHOLD,
        "field_of_view": ("red > 20/255, eroded by data.fov_erosion_px scaled from 512 px, the "
                          "same for U-Net training, data preparation and evaluation"),
        "n_images": int(min(k, len(fake))),
        "segmented_at_px": scale,
    }
    result = {"vessel_agreement_auc": vessel_agreement(segmenter, fake[:k], fake[:k, 3],
                                                       config.data, scale)}
    if truth is None:
        # read by the book's claims table in place of the number (any "<metric>_missing" key)
        result["vessel_agreement_auc_reference"] = None
        result["vessel_agreement_auc_reference_missing"] = "none: no ground-truth vessel masks"
        record["reference"] = (
            "none: this dataset has no ground-truth vessel masks, and its vessel channel is the "
            "U-Net's own map, so a reference would score the U-Net against itself")
    else:
        result["vessel_agreement_auc_reference"] = vessel_agreement(
            segmenter, reals, truth, config.data, scale)
        record["reference"] = (
            f"{len(reals)} held-out real images: score = their ground-truth vessel masks "
            f"({data.meta.get('vessel_truth', 'masks')}), label = the same U-Net's segmentation")
    return {**result, "vessel_agreement": record}
