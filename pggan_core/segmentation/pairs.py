"""Labelled pairs for a segmenter, made the same way from real and from generated images.

Real images bring their ground truth (the fundus phantom's exact vessels, a folder's manual masks,
the BraTS labels); the GAN brings its own segmentation channels, continuous in [-1, 1]. Both go
through one function per dataset (``fundus_pairs``, ``tumour_pairs``) with one binarisation rule
(``binary_target``), so a real and a synthetic pair differ only in where they came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pggan_core.data.preprocess import fields_of_view, vessel_input
from pggan_core.errors import DataError
from pggan_core.segmentation.vessels import enlarge_fundus
from pggan_core.settings import DataConfig

# a target pixel is foreground where its map, as a fraction in [0, 1], exceeds this
TARGET_THRESHOLD = 0.5
# the glioma segmenter's classes: background, then BraTS labels 1, 2, 4 as prepared channels 4-6
TUMOUR_CLASSES = ("background", "NCR/NET (1)", "ED (2)", "ET (4)")


@dataclass(frozen=True)
class LabelledSet:
    """Segmenter inputs ``x`` (N, C, H, W) float32, targets ``y`` (N, H, W) (fundus: float32
    0/1 vessel; glioma: int64 class), and where a fundus pixel counts, ``fov`` (N, H, W) bool
    (None for glioma: every pixel counts)."""

    x: np.ndarray
    y: np.ndarray
    fov: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, indices: np.ndarray) -> LabelledSet:
        """The pairs ``indices``."""
        return LabelledSet(self.x[indices], self.y[indices],
                           None if self.fov is None else self.fov[indices])

    def join(self, other: LabelledSet) -> LabelledSet:
        """These pairs followed by ``other``'s."""
        return LabelledSet(np.concatenate([self.x, other.x]), np.concatenate([self.y, other.y]),
                           None if self.fov is None else np.concatenate([self.fov, other.fov]))


def binary_target(fraction: np.ndarray) -> np.ndarray:
    """The one binarisation rule: foreground where the map exceeds ``TARGET_THRESHOLD`` (a
    box-filtered mask's "more than half the pixel is vessel")."""
    return np.asarray(fraction) > TARGET_THRESHOLD


def fundus_pairs(images: np.ndarray, vessel_maps: np.ndarray, data_cfg: DataConfig,
                 scale_to: int) -> LabelledSet:
    """Vessel U-Net pairs at ``scale_to`` px from fundus images (N, >=3, R, R) in [-1, 1] and their
    vessel maps (N, R, R) in [0, 1] (a ground-truth fraction, or the GAN's channel): the photograph
    and its field of view enlarged as the U-Net segments small images (``vessels.enlarge_fundus``)
    and preprocessed as its input, the map enlarged bicubically and binarised inside the FOV."""
    fovs = fields_of_view(images, data_cfg)
    x = np.empty((len(images), 1, scale_to, scale_to), np.float32)
    y = np.empty((len(images), scale_to, scale_to), np.float32)
    fov_out = np.empty((len(images), scale_to, scale_to), bool)
    for i, (image, vessel_map, fov) in enumerate(zip(images, vessel_maps, fovs, strict=True)):
        rgb, big_fov = enlarge_fundus(image, fov, scale_to)
        x[i, 0] = vessel_input(rgb, big_fov, data_cfg)
        big_map = cv2.resize(np.asarray(vessel_map, np.float32), (scale_to, scale_to),
                             interpolation=cv2.INTER_CUBIC)
        y[i] = binary_target(big_map) & big_fov
        fov_out[i] = big_fov
    return LabelledSet(x, y, fov_out)


def tumour_classes(label_channels: np.ndarray) -> np.ndarray:
    """Label channels (N, 3, R, R) in [-1, 1] -> int64 classes (N, R, R): the label whose channel is
    highest where it exceeds one half as a fraction, else background (0). A real slice's
    box-filtered one-hot channels sum to at most 1, so at most one exceeds one half; of a generated
    slice's, the highest wins."""
    fraction = (np.asarray(label_channels, np.float32) + 1.0) / 2.0
    best = fraction.argmax(axis=1)
    return np.where(binary_target(fraction.max(axis=1)), best + 1, 0).astype(np.int64)


def tumour_pairs(images: np.ndarray) -> LabelledSet:
    """Glioma segmenter pairs from seven-channel slices (N, 7, R, R) in [-1, 1]: the four
    modalities in, the tumour class per pixel out (``tumour_classes``)."""
    if images.ndim != 4 or images.shape[1] != 7:
        raise DataError(f"tumour_pairs: expected slices (N, 7, R, R) (T1, T1c, T2, FLAIR and "
                        f"the three label channels), got {images.shape}")
    return LabelledSet(np.ascontiguousarray(images[:, :4], np.float32),
                       tumour_classes(images[:, 4:7]))
