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

from dataclasses import dataclass

from pggan_core.errors import ConfigError


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


def dataset_ids() -> tuple[str, ...]:
    """Every registered dataset id, in registration order."""
    return tuple(DATASETS)


register_dataset(DatasetSpec(
    id="rop", title="Fundus photographs (ROP)", short="ROP",
    channels=("R", "G", "B", "vessel"), image_channels=3,
    items=("photograph", "photographs"), export_formats=("png", "npy")))
register_dataset(DatasetSpec(
    id="brats", title="Glioma MRI (BraTS)", short="BraTS",
    channels=("T1", "T1c", "T2", "FLAIR", "NCR/NET (1)", "ED (2)", "ET (4)"), image_channels=4,
    items=("subject", "subjects"), export_formats=("nifti", "npy")))
