"""The two raw-sample types that phantoms and real loaders alike produce, so preprocessing and
the prepared-dataset writer never need to know where an image came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODALITIES = ("T1", "T1c", "T2", "FLAIR")  # BraTS order: t1, t1ce, t2, flair
BRATS_LABELS = (1, 2, 4)  # 1 NCR/NET, 2 ED (oedema), 4 ET (enhancing), BraTS 2017 meaning


@dataclass
class FundusImage:
    """One colour fundus photograph.

    rgb float32 (H, W, 3) in [0, 1]; vessels bool (H, W), exact (phantom) or manual, or None;
    fov bool (H, W), the illuminated disc. labels: laterality ("OD" right / "OS" left eye) and,
    where known, plus_severity ("normal" / "pre-plus" / "plus"), tortuosity, disc_x, disc_y
    (fractions of width / height). source_file: the file read, or "phantom:<seed>".
    """

    rgb: np.ndarray
    vessels: np.ndarray | None
    fov: np.ndarray
    labels: dict[str, Any] = field(default_factory=dict)
    source_file: str = ""

    def facts(self) -> dict[str, Any]:
        """What is known of this photograph: its labels (eye, plus disease...)."""
        return dict(self.labels)


@dataclass
class BrainVolume:
    """One multi-modal MR case in BraTS geometry (canonical RAS orientation, 1 mm).

    modalities float32 (4, X, Y, Z) in MODALITIES order, raw scanner-like intensities; seg uint8
    (X, Y, Z) in {0, 1, 2, 4} (BraTS 2017 meaning); brain_mask bool (X, Y, Z). meta: subject,
    grade ("HGG" / "LGG" / "unknown") and more. source_file: the case folder, or "phantom:<seed>".
    """

    modalities: np.ndarray
    seg: np.ndarray
    brain_mask: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    source_file: str = ""

    def facts(self) -> dict[str, Any]:
        """What is known of this case: subject, grade and the phantom's tumour size."""
        return {k: self.meta[k] for k in ("subject", "grade", "tumour_radius_mm")
                if k in self.meta}

    def zscore_summary(self, zvol: np.ndarray) -> str:
        """Each contrast's brain mean raw, and mean and std z-scored (``zvol``): the data
        chapter's printout."""
        inside = self.brain_mask
        return "\n".join(
            f"{name:6s} raw mean {raw[inside].mean():8.2f}  z-scored mean "
            f"{z[inside].mean():+.3f}, std {z[inside].std():.3f}"
            for name, raw, z in zip(MODALITIES, self.modalities, zvol, strict=True))
