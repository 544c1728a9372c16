"""Where things live: the repository root, prepared datasets and run folders.

Every step finds its inputs by the same (dataset, profile, variant) names, so a notebook run
by the book (cwd ``notebooks/``) and one run by papermill from the root agree on paths.
The root can be moved with ``PGGAN_HOME`` (e.g. a scratch disk for paper-scale runs).
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root(start: str | Path | None = None) -> Path:
    """The folder holding ``_config.yml`` above ``start`` (or the cwd); ``PGGAN_HOME`` wins."""
    if os.environ.get("PGGAN_HOME"):
        return Path(os.environ["PGGAN_HOME"]).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "pggan_core").is_dir():
            return folder
    return here


def prepared_dir(dataset: str, profile: str, root: Path | None = None) -> Path:
    """The default prepared-dataset folder, ``data/prepared/<dataset>-<profile>``."""
    return (root or repo_root()) / "data" / "prepared" / f"{dataset}-{profile}"


def run_dir(dataset: str, profile: str, variant: str = "seg", root: Path | None = None) -> Path:
    """One run folder per (dataset, profile, variant): ``runs/<dataset>/<profile>/<variant>``.

    ``variant`` is "seg" (with segmentation channels, the paper's model) or "noseg" (the
    ablation of Figure 3).
    """
    return (root or repo_root()) / "runs" / dataset / profile / variant


def vessel_model_path(profile: str, root: Path | None = None) -> Path:
    """The trained vessel U-Net for a profile, reused by data preparation and evaluation."""
    return (root or repo_root()) / "runs" / "vessels" / profile / "vessel_unet.pt"


def require_run(dataset: str, profile: str, variant: str = "seg", root: Path | None = None
                ) -> Path:
    """The finished run folder for (dataset, profile, variant), or an error naming the command.

    Later notebooks (evaluation, encoder, latent space) read a run; when it is missing they
    stop here and say how to make it.
    """
    import json

    from pggan_core.errors import RunNotFoundError

    folder = run_dir(dataset, profile, variant, root)
    info = folder / "run.json"
    if not info.is_file() or not json.loads(info.read_text()).get("finished"):
        flag = "" if variant == "seg" else " -p with_segmentation False"
        raise RunNotFoundError(
            f"no finished {variant} run of {dataset} on profile {profile} at {folder}: run "
            f"`papermill notebooks/03_train.md out.ipynb -p dataset {dataset} -p profile "
            f"{profile}{flag}` first")
    return folder
