"""The one check every image measure makes of its input.
"""

from __future__ import annotations

import numpy as np

from pggan_core.errors import DataError


def check_images(images: np.ndarray, name: str) -> np.ndarray:
    if not hasattr(images, "shape"):
        images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise DataError(f"{name}: expected a non-empty (N, C, H, W) array, got shape "
                        f"{images.shape}; pass images as N x channels x height x width")
    return images
