"""The dataset registry (after stylegan2-ada-pytorch's): one ``DatasetSpec`` per dataset.

Added with ``register_dataset`` and read with ``dataset_spec``, so a module asks the spec ("how
many image channels?", "what is the page title?") instead of comparing dataset ids: the two
datasets of Beers et al. (2018) are registered here and no other module compares ids. It imports
only the errors, so every other module can read it.
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
class LatentLabel:
    """The label a dataset's latent space is scored and coloured by (Figure 5): the paper's
    "right eye / left eye distinction" for the fundus, tumour presence for MRI."""

    key: str  # the stem of latent_space.json's keys: knn_<key>_accuracy, probe_<key>_...
    column: str  # the manifest column it is read from
    words: str  # in sentences: "laterality"
    rows: str  # the stem of its rows in latent_space.json's details: "<rows>, linear probe"
    knn_row: str  # the k-NN row itself (the fundus names its classes: "laterality (OD/OS)")
    # (images (N, C, R, R) in [-1, 1]) -> each one's label, and that rule in words: how
    # generated images are labelled for the probe on their true z
    from_images: Hook
    rule: str
    # k-NN accuracy from which the label reads as "primary"; None: that of k-NN on raw pixels
    goal: float | None = None
    more_knn: tuple[tuple[str, str], ...] = ()  # further (row, column) k-NN rows, if labelled
    position: str | None = None  # an ordered column to walk along (slice position)
    walk_between: tuple[str, str] | None = None  # else: walk between the means of two classes
    group: str | None = None  # items whose images share a fold (a subject's slices)
    colour_by: tuple[str, ...] = ()  # Figure 5's colourings (default: the label column)
    # (images (N, C, R, R) in [-1, 1]) -> {attribute: per-image values}, the label first:
    # what Figure 5's "is it primary?" weighs it against (``latent.attributes``); None: none
    attributes: Hook | None = None
    hover: tuple[str, ...] = ("index",)  # manifest columns a t-SNE point's hover names
    walk_caption: str = "t = "  # before each step's value on the latent walk's slider


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
    unit: str = "images"  # what one stored image is, plural ("slices" of a volume)
    phantom: str = "phantom"  # the built-in data in a figure title: "the built-in <phantom>"
    # (config, source, n_images, workers, progress) -> (iterator of (image (C, R, R) in
    # [-1, 1], manifest row[, true vessel mask]), how many, facts for dataset.json): what
    # `pggan data prepare` stores, from the phantom (source None) or a folder
    samples: Hook = ""
    # (image (C, R, R) in [-1, 1]) -> panels (H, W, 3) in [0, 1]: how pictures show a sample
    panels: Hook = "pggan_core.viz.plots:channel_panels"
    thumbnail_panel: int = 0  # the panel that identifies a sample at thumbnail size
    # (images (N, C, R, R), DataConfig) -> {statistic: per-image values} of the label channels
    # (vessel density, tumour area...), compared generated against real; None: none
    domain_stats: Hook | None = None
    latent_label: LatentLabel | None = None  # None: `pggan latent` has nothing to score
    # (seed, source) -> one raw sample for the data chapter's walk through the preprocessing
    # (the phantom for ``seed``, or the folder's first image/case); None: prepared images only
    example: Hook | None = None
    # (dataset.json's facts) -> where the label channels come from, in words, for captions
    # and the augmentation study ("vessel channel from the phantom's exact vessels")
    label_origin: Hook = "pggan_core.data.prepare:stored_label_origin"
    # the manifest column naming the item images share (a subject), kept whole in a split;
    # None: every image is its own item
    item_column: str | None = None
    # manifest columns the data chapter charts: (column, category order | "hist" | None)
    label_columns: tuple[tuple[str, Any], ...] = ()
    # (image channels (N, C, R, R) in [-1, 1], DataConfig) -> (retrieval region, detail
    # region), bool (N, R, R): where Figure 4's reconstructions are compared with their inputs
    regions: Hook = "pggan_core.latent.reconstruction:whole_image_regions"
    # (Config) -> a StructureReader (``evaluation.ablation``): the anatomy Figure 3 reads from
    # the image channels alone, so runs without segmentation compare; None: none
    structure: Hook | None = None
    # (config, source, progress, exclude) -> a model with ``segment(rgb) -> (H, W) map``
    # (trained first if missing, on ``source``'s masked images but ``exclude``) that fills the
    # label channel of maskless images (``data.vessel_channel`` unet); None: all bring labels
    label_model: Hook | None = None
    # () -> the augmentation study's SegmentationTask (``segmentation.tasks``); None: no study
    segmentation: Hook | None = None

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
    items=("photograph", "photographs"), unit="images", export_formats=("png", "npy"),
    phantom="fundus phantom",
    samples="pggan_core.data.prepare:rop_samples", panels="pggan_core.viz.plots:fundus_panels",
    domain_stats="pggan_core.evaluation.evaluate:fundus_domain_stats",
    example="pggan_core.data.prepare:rop_example",
    label_origin="pggan_core.data.prepare:vessel_origin",
    label_columns=(("laterality", None), ("plus_severity", ("normal", "pre-plus", "plus")),
                   ("tortuosity", "hist")),
    regions="pggan_core.latent.reconstruction:fundus_regions",
    structure="pggan_core.evaluation.ablation:FundusStructure",
    label_model="pggan_core.segmentation.vessels:ensure_vessel_unet",
    segmentation="pggan_core.segmentation.tasks:vessel_task",
    latent_label=LatentLabel(
        key="laterality", column="laterality", words="laterality", rows="laterality",
        knn_row="laterality (OD/OS)", from_images="pggan_core.latent.probes:laterality_from_disc",
        rule="laterality from the disc side (the brightest blurred spot's half of the image)",
        goal=0.90, more_knn=(("plus severity", "plus_severity"),), walk_between=("OD", "OS"),
        attributes="pggan_core.latent.attributes:fundus_attributes",
        hover=("index", "laterality", "plus_severity"), walk_caption="OD → OS, t = ")))
register_dataset(DatasetSpec(
    id="brats", title="Glioma MRI (BraTS)", short="BraTS",
    channels=("T1", "T1c", "T2", "FLAIR", "NCR/NET (1)", "ED (2)", "ET (4)"), image_channels=4,
    items=("subject", "subjects"), unit="slices", export_formats=("nifti", "npy"),
    phantom="brain phantom",
    samples="pggan_core.data.prepare:brats_samples", panels="pggan_core.viz.plots:mr_panels",
    thumbnail_panel=-1,  # FLAIR with the tumour labels (the mosaic without them)
    domain_stats="pggan_core.evaluation.evaluate:mri_domain_stats",
    example="pggan_core.data.prepare:brats_example",
    label_origin="pggan_core.data.prepare:tumour_origin",
    item_column="subject",
    label_columns=(("tumour_present", None), ("grade", None), ("slice_index", "hist")),
    regions="pggan_core.latent.reconstruction:brain_regions",
    structure="pggan_core.evaluation.ablation:MriStructure",
    segmentation="pggan_core.segmentation.tasks:tumour_task",
    latent_label=LatentLabel(
        key="tumour", column="tumour_present", words="tumour presence", rows="tumour present",
        knn_row="tumour present", from_images="pggan_core.latent.probes:tumour_from_images",
        rule="tumour present: a label channel > 0 on >= 0.05% of the image",
        position="slice_position", group="subject",
        colour_by=("slice_position", "tumour_present"),
        attributes="pggan_core.latent.attributes:mri_attributes",
        hover=("index", "subject", "slice_index", "slice_position", "tumour_present"),
        walk_caption="slice position ")))
