"""The dataset registry: what the package knows about each dataset, asked in one place.

After stylegan2-ada-pytorch's registries: one ``DatasetSpec`` per dataset, added with
``register_dataset`` and read with ``dataset_spec``, so that a module asks the spec ("how many
image channels?", "what is the page title?") instead of comparing dataset ids. It sits below
every other module (it imports only the errors), so the config, the data layer and the book
can all read it.

The two datasets of Beers et al. (2018) are registered here. What is still decided by
comparing ids, and so not yet a property of the spec (preparing phantoms and folders, domain
statistics, the latent-space labels, the augmentation study's segmenters), is listed in the
package README.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pggan_core.errors import ConfigError

# A hook is a function or its "package.module:function" name, imported when first used: the
# registry sits below the modules that implement the built-in datasets' hooks.
Hook = Callable[..., Any] | str


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its names, its channels and how its generated samples are written."""

    id: str  # "rop": the name in configs, commands and folders
    title: str  # page headings
    short: str  # table columns
    channels: tuple[str, ...]  # every stored channel: the image's first, then label maps
    image_channels: int  # how many leading channels are the image (the rest: segmentation)
    items: tuple[str, str]  # one independent item, singular and plural (a subject's slices)
    export_formats: tuple[str, ...]  # `pggan generate --format`: the first is the default
    # (config, source, n_images, workers, progress) -> (iterator of (image (C, R, R) in
    # [-1, 1], manifest row[, ground-truth vessel mask]), how many, facts for dataset.json):
    # the images `pggan data prepare` stores, from the phantom (source None) or a folder
    samples: Hook = ""
    # (image (C, R, R) in [-1, 1]) -> panels (H, W, 3) in [0, 1]: how pictures show a sample
    panels: Hook = "pggan_core.viz.plots:channel_panels"
    # (images (N, C, R, R), DataConfig) -> {statistic: per-image values} of the label channels
    # (vessel density, tumour area...), compared generated against real; None: none
    domain_stats: Hook | None = None

    @property
    def label_channels(self) -> tuple[str, ...]:
        """The segmentation channels, dropped when training without segmentation."""
        return self.channels[self.image_channels:]


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` (or replace the one of its id); returns it."""
    if not spec.id.isidentifier():
        raise ConfigError(f"dataset id {spec.id!r}: use letters, digits and underscores")
    if not 0 < spec.image_channels <= len(spec.channels):
        raise ConfigError(f"dataset {spec.id!r}: image_channels={spec.image_channels} must be "
                          f"between 1 and its {len(spec.channels)} channels")
    DATASETS[spec.id] = spec
    return spec


def dataset_spec(dataset: str) -> DatasetSpec:
    """The registered spec of ``dataset``; a ConfigError naming the registered ones if none."""
    try:
        return DATASETS[dataset]
    except KeyError:
        raise ConfigError(f"unknown dataset {dataset!r}: choose one of "
                          f"{', '.join(DATASETS)}") from None


def hook(function: Hook) -> Callable[..., Any]:
    """A spec's hook as a function (imported from its "package.module:function" name)."""
    if callable(function):
        return function
    module, _, name = function.partition(":")
    return getattr(importlib.import_module(module), name)


def dataset_ids() -> tuple[str, ...]:
    """Every registered dataset id, in registration order."""
    return tuple(DATASETS)


register_dataset(DatasetSpec(
    id="rop", title="Fundus photographs (ROP)", short="ROP",
    channels=("R", "G", "B", "vessel"), image_channels=3,
    items=("photograph", "photographs"), export_formats=("png", "npy"),
    samples="pggan_core.data.prepare:rop_samples", panels="pggan_core.viz.plots:fundus_panels",
    domain_stats="pggan_core.evaluation.evaluate:fundus_domain_stats"))
register_dataset(DatasetSpec(
    id="brats", title="Glioma MRI (BraTS)", short="BraTS",
    channels=("T1", "T1c", "T2", "FLAIR", "NCR/NET (1)", "ED (2)", "ET (4)"), image_channels=4,
    items=("subject", "subjects"), export_formats=("nifti", "npy"),
    samples="pggan_core.data.prepare:brats_samples", panels="pggan_core.viz.plots:mr_panels",
    domain_stats="pggan_core.evaluation.evaluate:mri_domain_stats"))
