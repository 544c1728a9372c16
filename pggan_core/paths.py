"""Where things live: the checkout, prepared datasets, the vessel U-Net (run folders:
``runs.folder.RunSpec``).

``repo_root`` finds the checkout, for everything: the one holding the working directory, else the
imported ``pggan_core``'s, else the working directory; a working directory in another checkout
than the package's is refused, so the code that runs is the code beside the notebooks it runs.
Notebooks, book pages, shipped runs and benchmark results are read from it (the book is built
into its ``_build/``); prepared datasets and runs go under ``home()``: the checkout too, unless
``PGGAN_HOME`` moves them (a scratch disk for paper-scale runs, a test's own folder). Every step
finds its inputs by the same (dataset, profile, data, seed) names, so a notebook run by the book
(cwd ``notebooks/``) and by papermill from the root agree; a user's own folder (``source``) gets
its own prepared dataset and runs (``data_name``), never shared with the built-in phantoms'.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from pggan_core.errors import ConfigError

PHANTOM = "phantom"  # the data name of the built-in phantoms


def data_name(source: str | Path | None) -> str:
    """The name a data source's prepared dataset and runs go by: ``phantom``, or the folder's
    name and a short hash of its absolute path (two ``data`` folders must not share runs), e.g.
    ``DRIVE-3f9a1c``."""
    if source is None or str(source) == PHANTOM:
        return PHANTOM
    folder = Path(source).expanduser().resolve()
    slug = re.sub(r"[^\w.-]+", "_", folder.name).strip("._-") or "data"
    return f"{slug}-{hashlib.sha256(str(folder).encode()).hexdigest()[:6]}"


def checkout_of(folder: Path) -> Path | None:
    """The checkout (holding ``_config.yml`` and ``pggan_core/``) ``folder`` is in, or None."""
    folder = folder.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / "_config.yml").is_file() and (candidate / "pggan_core").is_dir():
            return candidate
    return None


PACKAGE_DIR = Path(__file__).resolve().parent  # the imported pggan_core


def repo_root() -> Path:
    """The checkout everything is read from (module docstring); ConfigError, naming both folders
    and the fix, when the cwd is in a checkout other than the imported package's."""
    here, package = checkout_of(Path.cwd()), checkout_of(PACKAGE_DIR)
    if here is not None and package is not None and here != package:
        raise ConfigError(
            f"the working directory is in the checkout {here}, but pggan_core is imported from "
            f"{package}; run `pip install -e .` in {here}, or set PYTHONPATH={here}, to use "
            f"this one (or work from {package})")
    return here or package or Path.cwd().resolve()


def home() -> Path:
    """Where prepared datasets and runs go: ``PGGAN_HOME`` if set, else ``repo_root()``."""
    if os.environ.get("PGGAN_HOME"):
        return Path(os.environ["PGGAN_HOME"]).resolve()
    return repo_root()


def prepared_dir(dataset: str, profile: str, root: Path | None = None,
                 source: str | Path | None = None, seed: int = 0) -> Path:
    """``data/prepared/<dataset>-<profile>`` for the phantom, ``...-<data name>`` for a real
    ``source`` folder, either followed by ``seed_suffix(seed)`` (the phantom's images and the
    split follow ``data.seed``, so two seeds never share a folder)."""
    name = data_name(source)
    suffix = ("" if name == PHANTOM else f"-{name}") + seed_suffix(seed)
    return (root or home()) / "data" / "prepared" / f"{dataset}-{profile}{suffix}"


def seed_suffix(seed: int) -> str:
    """A folder name's seed part: ``-seed<N>``, nothing for 0 (the defaults, shipped runs)."""
    return "" if seed == 0 else f"-seed{seed}"


def vessel_model_path(profile: str, root: Path | None = None) -> Path:
    """The trained vessel U-Net for a profile, reused by data preparation and evaluation."""
    return (root or home()) / "runs" / "vessels" / profile / "vessel_unet.pt"
