"""Where things live: the repository root, prepared datasets, the vessel U-Net (run folders:
``runs.folder.RunSpec``).

Every step finds its inputs by the same (dataset, profile, data, seed) names, so a notebook
run by the book (cwd ``notebooks/``) and one run by papermill from the root agree on paths.
The built-in phantoms are the default data; a user's own folder (``source``) gets its own
prepared dataset and run folders, named by ``data_name``, so phantom runs and runs on real
data never share a folder. The root can be moved with ``PGGAN_HOME`` (e.g. a scratch disk for
paper-scale runs).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

PHANTOM = "phantom"  # the data name of the built-in phantoms


def data_name(source: str | Path | None) -> str:
    """The name a data source's prepared dataset and runs go by: ``phantom``, or the folder's
    name followed by a short hash of its absolute path (two folders both called ``data``
    must not share runs), e.g. ``DRIVE-3f9a1c``.
    """
    if source is None or str(source) == PHANTOM:
        return PHANTOM
    folder = Path(source).expanduser().resolve()
    slug = re.sub(r"[^\w.-]+", "_", folder.name).strip("._-") or "data"
    return f"{slug}-{hashlib.sha256(str(folder).encode()).hexdigest()[:6]}"


def repo_root(start: str | Path | None = None) -> Path:
    """The folder holding ``_config.yml`` above ``start`` (or the cwd); ``PGGAN_HOME`` wins."""
    if os.environ.get("PGGAN_HOME"):
        return Path(os.environ["PGGAN_HOME"]).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "pggan_core").is_dir():
            return folder
    return here


def checkout_root() -> Path:
    """The checkout this package runs from, for what is committed there (shipped runs,
    benchmark results), wherever ``PGGAN_HOME`` puts data and runs; ``repo_root()`` when the
    package is installed elsewhere."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "_config.yml").is_file() else repo_root()


def prepared_dir(dataset: str, profile: str, root: Path | None = None,
                 source: str | Path | None = None, seed: int = 0) -> Path:
    """The prepared-dataset folder: ``data/prepared/<dataset>-<profile>`` for the phantom,
    ``data/prepared/<dataset>-<profile>-<data name>`` for a real ``source`` folder, with
    ``-seed<N>`` after either for a data seed other than 0 (the phantom's images and the
    split follow ``data.seed``, so two seeds never share a folder).
    """
    name = data_name(source)
    suffix = ("" if name == PHANTOM else f"-{name}") + seed_suffix(seed)
    return (root or repo_root()) / "data" / "prepared" / f"{dataset}-{profile}{suffix}"


def seed_suffix(seed: int) -> str:
    """What a seed adds to a folder's name: nothing for 0 (every default, the shipped runs),
    ``-seed<N>`` otherwise."""
    return "" if seed == 0 else f"-seed{seed}"


def vessel_model_path(profile: str, root: Path | None = None) -> Path:
    """The trained vessel U-Net for a profile, reused by data preparation and evaluation."""
    return (root or repo_root()) / "runs" / "vessels" / profile / "vessel_unet.pt"
