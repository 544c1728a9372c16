"""Synthetic samples as files the field's tools (nnU-Net, MONAI, a vessel segmenter) read, for
``pggan generate --format``:

- ``png`` (fundus default): ``sample_NNNN_image.png`` (8-bit RGB) and, when the run generates
  them, ``sample_NNNN_vessels.png`` (8-bit grey vessel probability, 0-255 for 0-1);
- ``nifti`` (BraTS default): per sample a folder named as BraTS names a case,
  ``synth_NNNN/synth_NNNN_{t1,t1ce,t2,flair}.nii.gz`` (float32 z-scores, 0 outside the brain)
  and ``synth_NNNN_seg.nii.gz`` (uint8 labels 0, 1, 2, 4 with BraTS 2017's meaning), one axial
  slice each (R x R x 1) in RAS orientation with ``pad_to / R`` mm voxels;
- ``npy``: ``generated.npy``, the raw (N, C, R, R) float32 array in [-1, 1].

Every format writes ``manifest.csv`` (per sample: latent seed, files, resolution, run, commit);
``png`` and ``npy`` also a preview ``grid.png`` (``nifti`` stays a pure BraTS layout that ``pggan
data prepare --source`` reads). Sample i comes from the latent seeded ``seed + i``, so any sample
can be regenerated alone.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pggan_core.atomic import atomic_file, write_text_atomic
from pggan_core.data.preprocess import brain_mask
from pggan_core.data.store import to_uint8
from pggan_core.data.types import BRATS_LABELS
from pggan_core.datasets import dataset_spec
from pggan_core.errors import ConfigError
from pggan_core.generate import images_from_latents
from pggan_core.provenance import provenance
from pggan_core.settings import Config
from pggan_core.viz import plots

FORMATS = ("png", "nifti", "npy")
BRATS_SEQUENCES = ("t1", "t1ce", "t2", "flair")  # file suffixes, in the channels' order


def seeded_latents(n: int, latent_dim: int, seed: int) -> np.ndarray:
    """(n, latent_dim) latents, row i drawn from its own generator seeded ``seed + i``."""
    return np.stack([torch.randn(latent_dim, generator=torch.Generator().manual_seed(seed + i))
                     .numpy() for i in range(n)]).astype(np.float32)


def fundus_files(image: np.ndarray) -> dict[str, np.ndarray]:
    """One fundus sample (C, R, R) in [-1, 1] as 8-bit pictures: ``image`` (R, R, 3) RGB and,
    with a fourth channel, ``vessels`` (R, R) grey."""
    files = {"image": to_uint8(image[:3].transpose(1, 2, 0))}
    if len(image) > dataset_spec("rop").image_channels:
        files["vessels"] = to_uint8(image[3])
    return files


def brats_volumes(image: np.ndarray, z_clip: float) -> dict[str, np.ndarray]:
    """One BraTS sample (C, R, R) in [-1, 1] (``preprocess``'s display orientation) as RAS
    volumes (R, R, 1): float32 z-scores per sequence, 0 outside the brain (where every sequence
    is at its floor), and with label channels a uint8 ``seg`` of 0, 1, 2 and 4."""
    ras = lambda plane: np.ascontiguousarray(plane[::-1].T)[:, :, None]  # noqa: E731
    brain = brain_mask(image[None])[0]
    volumes = {name: ras(np.where(brain, image[i] * z_clip, 0.0)).astype(np.float32)
               for i, name in enumerate(BRATS_SEQUENCES)}
    if len(image) > dataset_spec("brats").image_channels:
        masks = image[4:4 + len(BRATS_LABELS)]
        # each pixel takes the label whose map is most confident, where any map says "yes"
        label = np.asarray(BRATS_LABELS, np.uint8)[masks.argmax(axis=0)]
        volumes["seg"] = ras(np.where(masks.max(axis=0) > 0, label, 0).astype(np.uint8))
    return volumes


def voxel_affine(resolution: int, pad_to: int) -> np.ndarray:
    """RAS affine of a slice generated at ``resolution`` px from ``pad_to`` mm-wide slices."""
    spacing = pad_to / resolution
    return np.diag([spacing, spacing, spacing, 1.0])


def write_samples(G: nn.Module, info: dict[str, Any], run: Path, out: Path, n: int,
                  seed: int = 0, fmt: str | None = None) -> Path:
    """Generate ``n`` samples from ``G`` (``checkpoint.load_generator``'s generator and info)
    and write them to ``out`` in ``fmt`` (default by dataset); returns ``manifest.csv``.
    ConfigError for a format the run's dataset is not written in."""
    config: Config = info["config"]
    dataset, resolution = config.data.dataset, int(info["resolution"])
    formats = dataset_spec(dataset).export_formats
    fmt = fmt or formats[0]
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt not in formats:
        raise ConfigError(f"--format {fmt} is not written for {dataset} runs ({run}): use "
                          f"--format {' or '.join(formats)}")
    images = np.clip(images_from_latents(G, seeded_latents(n, config.model.latent_dim, seed),
                                         resolution, float(info["alpha"])), -1.0, 1.0)
    out.mkdir(parents=True, exist_ok=True)
    commit = provenance(config.profile, seed)["commit"]
    rows = []
    for i, image in enumerate(images):
        row = {"sample": i, "latent_seed": seed + i, "resolution": resolution,
               "run": str(run), "commit": commit}
        if fmt == "png":
            for part, picture in fundus_files(image).items():
                name = f"sample_{i:04d}_{part}.png"
                plots.save_png(picture, out / name)
                row[part] = name
        elif fmt == "nifti":
            row |= _write_brats_case(image, out, f"synth_{i:04d}", config)
        rows.append(row)
    if fmt == "npy":
        with atomic_file(out / "generated.npy") as fh:
            np.save(fh, images)
        for row in rows:
            row["array"] = f"generated.npy[{row['sample']}]"
    if fmt != "nifti":  # a picture beside the volumes would make the folder a mixed layout
        plots.save_png(plots.sample_grid(images, dataset, ncols=8), out / "grid.png")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "manifest.csv", text.getvalue())
    return out / "manifest.csv"


def _write_brats_case(image: np.ndarray, out: Path, case: str, config: Config
                      ) -> dict[str, str]:
    """``out/case/case_<sequence>.nii.gz`` for one sample; the manifest's file columns."""
    import nibabel as nib

    affine = voxel_affine(image.shape[-1], config.data.pad_to)
    files = {}
    for name, volume in brats_volumes(image, config.data.z_clip).items():
        path = out / case / f"{case}_{name}.nii.gz"
        nifti = nib.Nifti1Image(volume, affine)
        nifti.header.set_xyzt_units("mm")
        with atomic_file(path) as fh:
            fh.write(gzip.compress(nifti.to_bytes(), mtime=0))
        files[name] = str(path.relative_to(out))
    return files
