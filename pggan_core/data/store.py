"""A prepared dataset on disk: a manifest table and a memory-mapped pyramid per resolution::

    DIR/
      dataset.json     dataset, channel names, resolutions, config, versions
      manifest.csv     one row per image: labels, split, source file, seed, preprocessing
      res_004.npy ... res_512.npy  uint8 (N, C, R, R), one per resolution from 4 px up
      vessel_truth.npy uint8 (N, R, R), fundus only: ground-truth vessel masks (0..255 = pixel
                       fraction), kept when the vessel *channel* is the U-Net's map but masks
                       exist (phantoms, folders with manual masks)

uint8 storage (like NVIDIA's PGGAN TFRecords) puts 2,000 RGB+vessel images at 512 px in 2 GB
rather than 8; they read back as float32 in [-1, 1]. Every level is box-filtered from the
full-resolution float image, so rounding never compounds. The folder is written under a
temporary name and renamed when complete (``atomic_dir``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pggan_core.atomic import atomic_dir, write_text_atomic
from pggan_core.datasets import dataset_spec
from pggan_core.errors import DataError, DataMismatchError
from pggan_core.settings import resolutions

# Bump when preprocessing changes what ends up in the arrays; stored in every manifest row.
PREPROCESSING_VERSION = "3"
VESSEL_TRUTH_FILE = "vessel_truth.npy"

# the fields of ``PreparedDataset.data_record`` that say which data a run learnt from
DATA_IDENTITY = ("dataset", "source", "preprocessing_version", "manifest_sha256")


def same_data(recorded: dict[str, Any] | None, current: dict[str, Any]) -> bool:
    """Whether a run's recorded data (``data_record``) is the data ``current`` describes."""
    return recorded is not None and all(recorded.get(k) == current[k] for k in DATA_IDENTITY)


def require_same_data(recorded: dict[str, Any] | None, current: dict[str, Any], run: Path,
                      fix: str) -> None:
    """DataMismatchError, naming both datasets and ``fix``, unless the run in ``run`` trained
    on ``current`` (a run that records no data never matches)."""
    if not same_data(recorded, current):
        raise DataMismatchError(f"{run} was trained on {describe_data(recorded)}, not on "
                                f"{describe_data(current)}; {fix}")


def describe_data(record: dict[str, Any] | None) -> str:
    """One phrase for messages and captions: name, image count, source folder if real."""
    if not record:
        return "data not recorded (a run made before runs recorded their data)"
    text = f"{record['name']} ({record.get('n_images', '?')} images"
    if record.get("source") not in (None, "phantom"):
        text += f" from {record['source']}"
    return text + ")"


def sha256_of(*paths: Path) -> str:
    """Hex SHA-256 of the files' bytes, one after another."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def box_downsample(images: np.ndarray) -> np.ndarray:
    """Halve the last two axes by averaging 2x2 blocks (a box filter, as PGGAN's dataset tool)."""
    *lead, h, w = images.shape
    return images.reshape(*lead, h // 2, 2, w // 2, 2).mean(axis=(-3, -1))


def to_resolution(images: np.ndarray, resolution: int) -> np.ndarray:
    """``box_downsample`` until the last axis is ``resolution``, as the pyramid is filtered."""
    while images.shape[-1] > resolution:
        images = box_downsample(images)
    return images


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] float -> uint8 (0..255), rounding to nearest."""
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 (0..255) -> float32 in [-1, 1]."""
    return images.astype(np.float32) / 127.5 - 1.0


class DatasetWriter:
    """Write a prepared dataset inside ``with``, ``add``-ing each index once; the folder appears
    only when complete (DataError on exit if an image was never added). Leaving the block by an
    exception (Ctrl-C included) discards it all and leaves a dataset at ``out_dir`` untouched.
    """

    def __init__(self, out_dir: str | Path, dataset: str, n_images: int, resolution: int,
                 info: dict[str, Any] | None = None, vessel_truth: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.dataset = dataset
        self.n_images = n_images
        self.resolution = resolution
        self.channels = dataset_spec(dataset).channels
        self.info = info or {}
        self.rows: list[dict[str, Any] | None] = [None] * n_images
        self._ctx = atomic_dir(self.out_dir)
        self._arrays: dict[int, np.ndarray] = {}
        self.vessel_truth = vessel_truth
        self._truth: np.ndarray | None = None

    def __enter__(self) -> DatasetWriter:
        self._tmp = self._ctx.__enter__()
        for res in resolutions(4, self.resolution):
            self._arrays[res] = np.lib.format.open_memmap(
                self._tmp / f"res_{res:03d}.npy", mode="w+", dtype=np.uint8,
                shape=(self.n_images, len(self.channels), res, res))
        if self.vessel_truth:
            self._truth = np.lib.format.open_memmap(
                self._tmp / VESSEL_TRUTH_FILE, mode="w+", dtype=np.uint8,
                shape=(self.n_images, self.resolution, self.resolution))
        return self

    def add(self, index: int, image: np.ndarray, row: dict[str, Any],
            vessel_truth: np.ndarray | None = None) -> None:
        """Store image ``index`` (float (C, R, R) in [-1, 1]), its manifest row and, for a writer
        made with ``vessel_truth=True``, its ground-truth vessel mask ((R, R), 0..1). DataError
        for a wrong shape, a missing mask or non-finite values."""
        if self._truth is not None:
            if vessel_truth is None or vessel_truth.shape != image.shape[-2:]:
                raise DataError(f"image {index} ({row.get('source_file', '?')}): expected a "
                                f"{image.shape[-2:]} ground-truth vessel mask, got "
                                f"{None if vessel_truth is None else vessel_truth.shape}")
            self._truth[index] = np.clip(np.rint(vessel_truth * 255.0), 0, 255)
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
        error = None
        try:
            if exc_type is None:
                missing = [i for i, r in enumerate(self.rows) if r is None]
                if missing:
                    raise DataError(f"{self.out_dir}: images {missing[:5]} were never written")
                for array in [*self._arrays.values(), self._truth]:
                    if array is not None:
                        array.flush()
                pd.DataFrame(self.rows).to_csv(self._tmp / "manifest.csv", index=False)
                meta = {"dataset": self.dataset, "channels": list(self.channels),
                        "n_images": self.n_images, "resolution": self.resolution,
                        "resolutions": resolutions(4, self.resolution), "dtype": "uint8",
                        "value_range": [-1.0, 1.0],
                        "preprocessing_version": PREPROCESSING_VERSION, **self.info}
                write_text_atomic(self._tmp / "dataset.json", json.dumps(meta, indent=2))
        except BaseException as err:
            error = err
        self._arrays.clear()  # the memory maps are closed before the folder moves or goes
        self._truth = None
        if error is not None:
            self._ctx.__exit__(type(error), error, error.__traceback__)
            raise error
        return self._ctx.__exit__(exc_type, exc, tb)


class PreparedDataset:
    """Read a prepared dataset: ``.manifest`` (pandas) and ``.images(res)`` (memory-mapped);
    DataError if ``path`` has no dataset.json."""

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
        """The uint8 (N, C, R, R) level, memory-mapped read-only; DataError if not prepared."""
        if resolution not in self.resolutions:
            raise DataError(f"{self.path} has no {resolution} px level (it has "
                            f"{self.resolutions}); prepare it with --resolution {resolution}")
        if resolution not in self._cache:
            self._cache[resolution] = np.load(self.path / f"res_{resolution:03d}.npy",
                                              mmap_mode="r")
        return self._cache[resolution]

    def batch(self, indices: Sequence[int] | np.ndarray, resolution: int,
              transient: bool = False) -> np.ndarray:
        """Images ``indices`` at ``resolution`` as float32 (B, C, R, R) in [-1, 1].

        ``transient``: through a mapping of its own, closed afterwards, so a pass over the whole
        set (evaluation, encoding) leaves none of it mapped; training's many small reads keep
        the shared mapping of ``images``."""
        idx = np.asarray(indices)
        order = np.argsort(idx)  # sorted reads are kinder to the page cache
        out = np.empty((len(idx), len(self.channels), resolution, resolution), np.float32)
        mapped = self.images(resolution)  # checks the level exists
        if transient:
            mapped = np.load(self.path / f"res_{resolution:03d}.npy", mmap_mode="r")
        out[order] = to_float(mapped[idx[order]])
        handle = getattr(mapped, "_mmap", None) if transient else None  # numpy's mmap object
        del mapped
        if handle is not None:
            handle.close()  # unmapped now, not whenever the garbage collector gets to it
        return out

    def fingerprint(self) -> str:
        """SHA-256 of what a GAN learns from: the manifest and the full-resolution array (every
        lower level is filtered from it). Equal fingerprints, equal training data."""
        return sha256_of(self.path / "manifest.csv",
                         self.path / f"res_{self.max_resolution:03d}.npy")

    def data_record(self) -> dict[str, Any]:
        """What a run records of the data it trains on: ``dataset``, ``source``,
        ``preprocessing_version`` and ``manifest_sha256`` (the manifest lists every image's
        file, labels, split and seed) identify it (DATA_IDENTITY); ``name`` (``phantom`` or the
        folder's ``paths.data_name``), ``n_images`` and ``vessel_channel`` are for captions."""
        from pggan_core.paths import data_name  # here: paths imports nothing of data

        source = self.meta.get("source", "phantom")
        return {"name": data_name(source), "dataset": self.dataset, "source": source,
                "preprocessing_version": self.meta.get("preprocessing_version"),
                "manifest_sha256": sha256_of(self.path / "manifest.csv"),
                "n_images": len(self), "vessel_channel": self.meta.get("vessel_channel")}

    def vessel_truth(self, indices: Sequence[int] | np.ndarray, resolution: int
                     ) -> np.ndarray | None:
        """Ground-truth vessel maps of fundus images ``indices``: float32 (B, R, R), the vessel
        fraction of each pixel, or None without any (a real folder without manual masks).

        The vessel channel itself when made from masks, else the masks kept beside the U-Net's
        channel (``vessel_truth.npy``), box-filtered like the pyramid."""
        idx = np.asarray(indices)
        if self.meta.get("vessel_channel") == "mask":
            channel = self.channels.index("vessel")
            return (self.batch(idx, resolution)[:, channel] + 1.0) / 2.0
        path = self.path / VESSEL_TRUTH_FILE
        if not path.is_file():
            return None
        return to_resolution(np.load(path, mmap_mode="r")[idx].astype(np.float32) / 255.0,
                             resolution)

    def view(self, indices: Sequence[int] | np.ndarray, resolution: int,
             channels: int) -> ImageView:
        """Images ``indices`` (first ``channels``) as an ``ImageView``: memory bounded by the
        slice taken, not the set."""
        return ImageView(self, np.asarray(indices), resolution, channels)

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices of ``split`` ("train" or "heldout")."""
        return self.manifest.index[self.manifest["split"] == split].to_numpy()


class ImageView:
    """A prepared dataset's images (N, C, R, R), read as float32 in [-1, 1] only when sliced.

    Slicing and index arrays return arrays; ``len``, ``shape``, ``ndim`` behave as an array's,
    so chunked consumers (nearest neighbours, encoding) take a view for an array and
    evaluation at 512 px never holds the whole set."""

    def __init__(self, data: PreparedDataset, indices: np.ndarray, resolution: int,
                 channels: int) -> None:
        self.data, self.indices, self.resolution, self.channels = (data, indices, resolution,
                                                                   channels)
        self.shape = (len(indices), channels, resolution, resolution)
        self.ndim = 4
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: slice | np.ndarray | int) -> np.ndarray:
        rows = self.indices[key]
        images = self.data.batch(np.atleast_1d(rows), self.resolution, transient=True)
        return images[0, :self.channels] if np.ndim(rows) == 0 else images[:, :self.channels]
