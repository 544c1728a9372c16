"""Pure image measures on arrays: SWD, MS-SSIM, nearest neighbours, domain statistics. They know
nothing of runs, checkpoints or training, so the trainer (its SWD log) and the run-level evaluation
(``pggan_core.evaluation``) can both use them."""

import numpy as np

from pggan_core.errors import DataError


def check_images(images: np.ndarray, name: str) -> np.ndarray:
    """``images`` as a non-empty (N, C, H, W) array (DataError otherwise); anything with a ``shape``
    (a ``store.ImageView``) is passed through unread."""
    if not hasattr(images, "shape"):
        images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise DataError(f"{name}: expected a non-empty (N, C, H, W) array, got shape "
                        f"{images.shape}; pass images as N x channels x height x width")
    return images
