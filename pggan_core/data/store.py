"""A prepared dataset on disk: a manifest table and a memory-mapped pyramid per resolution.

Layout of one prepared dataset folder::

    DIR/
      dataset.json     what it is: dataset, channel names, resolutions, config, versions
      manifest.csv     one row per image: labels, split, source file, seed, preprocessing
      res_004.npy      uint8 (N, C, 4, 4)   box-filtered from the full resolution
      ...
      res_512.npy      uint8 (N, C, 512, 512)

Images are stored as uint8 (like NVIDIA's PGGAN TFRecords) so 2,000 RGB+vessel images at
512 px take 2 GB rather than 8; they are read back as float32 in [-1, 1]. Each level of the
pyramid is box-filtered from the full-resolution float image, so rounding never compounds.
The folder is written under a temporary name and renamed when complete (``atomic_dir``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pggan_core.atomic import atomic_dir, write_text_atomic
from pggan_core.errors import DataError

# Bump when preprocessing changes what ends up in the arrays; stored in every manifest row.
PREPROCESSING_VERSION = "2"  # 2: small datasets always hold out at least one item

CHANNELS: dict[str, tuple[str, ...]] = {
    "rop": ("R", "G", "B", "vessel"),
    "brats": ("T1", "T1c", "T2", "FLAIR", "NCR/NET (1)", "ED (2)", "ET (4)"),
}
# The leading channels that are the image itself; the rest are segmentation maps, dropped
# when training without segmentation (the paper's Figure 3 ablation).
IMAGE_CHANNELS: dict[str, int] = {"rop": 3, "brats": 4}


def pyramid_resolutions(max_resolution: int) -> list[int]:
    """4, 8, ..., max_resolution."""
    out, r = [], 4
    while r <= max_resolution:
        out.append(r)
        r *= 2
    return out


def box_downsample(images: np.ndarray) -> np.ndarray:
    """Halve the last two axes by averaging 2x2 blocks (a box filter, as PGGAN's dataset tool)."""
    *lead, h, w = images.shape
    return images.reshape(*lead, h // 2, 2, w // 2, 2).mean(axis=(-3, -1))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] float -> uint8 (0..255), rounding to nearest."""
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 (0..255) -> float32 in [-1, 1]."""
    return images.astype(np.float32) / 127.5 - 1.0


class DatasetWriter:
    """Write a prepared dataset image by image; the folder appears only when complete.

    Use as a context manager::

        with DatasetWriter(out, "rop", n_images=100, resolution=512) as w:
            for i, (image, row) in enumerate(samples):
                w.add(i, image, row)     # image: float (C, R, R) in [-1, 1]

    Leaving the block by an exception (Ctrl-C included) discards everything written so far
    and leaves an existing dataset at ``out`` untouched.
    """

    def __init__(
        self,
        out_dir: str | Path,
        dataset: str,
        n_images: int,
        resolution: int,
        channels: Sequence[str] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.dataset = dataset
        self.n_images = n_images
        self.resolution = resolution
        self.channels = tuple(channels or CHANNELS[dataset])
        self.info = info or {}
        self.rows: list[dict[str, Any] | None] = [None] * n_images
        self._ctx = atomic_dir(self.out_dir)
        self._arrays: dict[int, np.ndarray] = {}

    def __enter__(self) -> DatasetWriter:
        self._tmp = self._ctx.__enter__()
        shape = (self.n_images, len(self.channels))
        for res in pyramid_resolutions(self.resolution):
            self._arrays[res] = np.lib.format.open_memmap(
                self._tmp / f"res_{res:03d}.npy", mode="w+", dtype=np.uint8,
                shape=(*shape, res, res))
        return self

    def add(self, index: int, image: np.ndarray, row: dict[str, Any]) -> None:
        """Store image ``index`` (float (C, R, R) in [-1, 1]) and its manifest row."""
        expected = (len(self.channels), self.resolution, self.resolution)
        if image.shape != expected:
            raise DataError(f"image {index} ({row.get('source_file', '?')}) has shape "
                            f"{image.shape}, expected {expected}")
        if not np.isfinite(image).all():
            raise DataError(f"image {index} ({row.get('source_file', '?')}) contains NaN or "
                            "infinite values; check the source file")
        level = image.astype(np.float32)
        for res in sorted(self._arrays, reverse=True):
            if level.shape[-1] != res:
                level = box_downsample(level)
            self._arrays[res][index] = to_uint8(level)
        self.rows[index] = {"index": index, **row,
                            "preprocessing_version": PREPROCESSING_VERSION}

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        try:
            if exc_type is None:
                missing = [i for i, r in enumerate(self.rows) if r is None]
                if missing:
                    raise DataError(f"{self.out_dir}: images {missing[:5]} were never written")
                for array in self._arrays.values():
                    array.flush()
                self._arrays.clear()
                pd.DataFrame(self.rows).to_csv(self._tmp / "manifest.csv", index=False)
                meta = {
                    "dataset": self.dataset,
                    "channels": list(self.channels),
                    "n_images": self.n_images,
                    "resolution": self.resolution,
                    "resolutions": pyramid_resolutions(self.resolution),
                    "dtype": "uint8",
                    "value_range": [-1.0, 1.0],
                    "preprocessing_version": PREPROCESSING_VERSION,
                    **self.info,
                }
                write_text_atomic(self._tmp / "dataset.json", json.dumps(meta, indent=2))
        except BaseException as err:
            self._arrays.clear()
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        self._arrays.clear()
        return self._ctx.__exit__(exc_type, exc, tb)


class PreparedDataset:
    """Read a prepared dataset: ``.manifest`` (pandas) and ``.images(res)`` (memory-mapped)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()  # runs record it; it must not depend on the cwd
        meta_path = self.path / "dataset.json"
        if not meta_path.is_file():
            raise DataError(f"{self.path} is not a prepared dataset (no dataset.json): run "
                            f"`pggan data prepare --dataset rop --out {self.path}` first")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        self.dataset: str = self.meta["dataset"]
        self.channels: tuple[str, ...] = tuple(self.meta["channels"])
        self.resolutions: list[int] = list(self.meta["resolutions"])
        self.max_resolution: int = int(self.meta["resolution"])
        self.manifest: pd.DataFrame = pd.read_csv(self.path / "manifest.csv")
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.manifest)

    def images(self, resolution: int) -> np.ndarray:
        """The uint8 array (N, C, R, R) at ``resolution``, memory-mapped read-only."""
        if resolution not in self.resolutions:
            raise DataError(f"{self.path} has no {resolution} px level (it has "
                            f"{self.resolutions}); prepare it with --resolution {resolution}")
        if resolution not in self._cache:
            self._cache[resolution] = np.load(self.path / f"res_{resolution:03d}.npy",
                                              mmap_mode="r")
        return self._cache[resolution]

    def batch(self, indices: Sequence[int] | np.ndarray, resolution: int) -> np.ndarray:
        """Images ``indices`` at ``resolution`` as float32 (B, C, R, R) in [-1, 1]."""
        idx = np.asarray(indices)
        order = np.argsort(idx)  # sorted reads are kinder to the page cache
        out = np.empty((len(idx), len(self.channels), resolution, resolution), np.float32)
        out[order] = to_float(self.images(resolution)[idx[order]])
        return out

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices of ``split`` ("train" or "heldout")."""
        return self.manifest.index[self.manifest["split"] == split].to_numpy()
