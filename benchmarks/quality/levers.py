"""Changes to a prepared dataset that no config key makes, for the study's levers (a candidate's
``data_lever``): each writes a copy of a prepared dataset with the change, its manifest marked,
so a run trained on it records other data than the book's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from pggan_core.atomic import atomic_dir
from pggan_core.data.store import VESSEL_TRUTH_FILE, PreparedDataset, to_float
from pggan_core.latent.attributes import fundus_attributes


def field_brightness(images: np.ndarray) -> np.ndarray:
    """Mean grey level (0-255) of each uint8 fundus image (N, >=3, R, R) inside its field of
    view: Figure 5's brightness attribute (``latent.attributes.fundus_attributes``), times 255."""
    return fundus_attributes(to_float(np.asarray(images)))["brightness"] * 255.0


def one_brightness(source: Path, out: Path) -> None:
    """``source`` with each photograph's colour channels scaled so its brightness in the field
    of view is the training images' median (the vessel channel as it was): photographs that
    differ in everything but brightness. Every level of the pyramid is scaled by its image's
    factor at the top level, so the levels stay each other's box filters (up to rounding)."""
    data = PreparedDataset(source)
    top = data.images(data.max_resolution)
    brightness = field_brightness(top)
    target = float(np.median(brightness[data.split_indices("train")]))
    scale = (target / np.maximum(brightness, 1.0)).astype(np.float32)[:, None, None, None]
    with atomic_dir(out) as tmp:
        for resolution in data.resolutions:
            images = np.array(data.images(resolution))
            images[:, :3] = np.clip(np.rint(images[:, :3] * scale), 0, 255).astype(np.uint8)
            np.save(tmp / f"res_{resolution:03d}.npy", images)
        if (data.path / VESSEL_TRUTH_FILE).is_file():
            shutil.copy2(data.path / VESSEL_TRUTH_FILE, tmp / VESSEL_TRUTH_FILE)
        lever = f"one brightness: {target:.1f} of 255 in the field of view"
        (tmp / "dataset.json").write_text(json.dumps({**data.meta, "study_lever": lever},
                                                     indent=2))
        pd.concat([data.manifest, pd.Series(lever, index=data.manifest.index,
                                            name="study_lever")], axis=1) \
            .to_csv(tmp / "manifest.csv", index=False)


DATA_LEVERS = {"one_brightness": one_brightness}
