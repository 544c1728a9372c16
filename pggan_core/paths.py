"""Where things live: the checkout, prepared datasets, the vessel U-Net (run folders:
``runs.folder.RunSpec``).

One rule finds the checkout, for everything (``repo_root``): the checkout holding the working
directory, else the one the imported ``pggan_core`` comes from, else the working directory; a
working directory inside another checkout than the imported package's is refused, so the code
that runs is always the code beside the notebooks it runs. What the checkout holds is read
from it (notebooks, book pages, shipped runs, benchmark results) and the book is built into its
``_build/``. What is made from it, prepared datasets and runs, goes under ``home()``: the
checkout too, unless ``PGGAN_HOME`` moves them (a scratch disk for paper-scale runs, a test's
own folder).

Every step finds its inputs by the same (dataset, profile, data, seed) names, so a notebook
run by the book (cwd ``notebooks/``) and one run by papermill from the root agree on paths.
The built-in phantoms are the default data; a user's own folder (``source``) gets its own
prepared dataset and run folders, named by ``data_name``, so phantom runs and runs on real
data never share a folder.
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
    name followed by a short hash of its absolute path (two folders both called ``data``
    must not share runs), e.g. ``DRIVE-3f9a1c``.
    """
    if source is None or str(source) == PHANTOM:
        return PHANTOM
    folder = Path(source).expanduser().resolve()
    slug = re.sub(r"[^\w.-]+", "_", folder.name).strip("._-") or "data"
    return f"{slug}-{hashlib.sha256(str(folder).encode()).hexdigest()[:6]}"


def checkout_of(folder: Path) -> Path | None:
    """The checkout (the folder holding ``_config.yml`` and ``pggan_core/``) that ``folder``
    is in, or None."""
    folder = folder.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / "_config.yml").is_file() and (candidate / "pggan_core").is_dir():
            return candidate
    return None


PACKAGE_DIR = Path(__file__).resolve().parent  # the imported pggan_core


def repo_root() -> Path:
    """The checkout everything is read from: the one holding the cwd, else the imported
    package's, else the cwd.

    ConfigError, naming both folders and the fix, when the cwd is inside a checkout that is
    not the imported package's: its notebooks would run with another checkout's code.
    """
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
    """The prepared-dataset folder: ``data/prepared/<dataset>-<profile>`` for the phantom,
    ``data/prepared/<dataset>-<profile>-<data name>`` for a real ``source`` folder, with
    ``-seed<N>`` after either for a data seed other than 0 (the phantom's images and the
    split follow ``data.seed``, so two seeds never share a folder).
    """
    name = data_name(source)
    suffix = ("" if name == PHANTOM else f"-{name}") + seed_suffix(seed)
    return (root or home()) / "data" / "prepared" / f"{dataset}-{profile}{suffix}"


def seed_suffix(seed: int) -> str:
    """What a seed adds to a folder's name: nothing for 0 (every default, the shipped runs),
    ``-seed<N>`` otherwise."""
    return "" if seed == 0 else f"-seed{seed}"


def vessel_model_path(profile: str, root: Path | None = None) -> Path:
    """The trained vessel U-Net for a profile, reused by data preparation and evaluation."""
    return (root or home()) / "runs" / "vessels" / profile / "vessel_unet.pt"
