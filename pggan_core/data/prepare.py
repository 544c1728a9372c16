"""The paper's preprocessing end to end: a source (phantom or real folder) to a prepared dataset.

ROP: every photograph at 512 x 512 ("All images were resized to 512 x 512 pixels") with a vessel
map (the phantom's exact vessels, the folder's manual masks, or the vessel U-Net's), as RGB +
vessel in [-1, 1]. BraTS: volumes z-scored over the brain, near-empty slices skipped, slices
padded to 256, labels 1/2/4 as three more channels (steps in ``preprocess``). Both end in
``DatasetWriter``: the pyramid down to 4 px, the folder renamed into place only when complete.
"""

from __future__ import annotations

import multiprocessing as mp
import zlib
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pggan_core.config import check_resolution
from pggan_core.data import preprocess
from pggan_core.data.store import (
    PREPROCESSING_VERSION,
    DatasetWriter,
    PreparedDataset,
    sha256_of,
    to_resolution,
)
from pggan_core.datasets import dataset_spec, hook
from pggan_core.errors import ConfigError, DataError
from pggan_core.paths import vessel_model_path
from pggan_core.progress import Progress
from pggan_core.settings import Config

ROP_NATIVE = 512  # the paper resizes every fundus photograph to 512 x 512


def prepare_dataset(config: Config, out_dir: str | Path, source: str | Path | None = None,
                    n_images: int | None = None, progress: bool = True, workers: int = 2) -> Path:
    """Prepare ``config.data.dataset`` in ``out_dir`` (returned) from ``source``, by default
    ``config.data.source`` (None: the phantom). ``n_images`` overrides ``config.data.n_images``;
    a real source without it uses every image (ROP) or case (BraTS) found."""
    data = config.data
    check_resolution(data.resolution, "--resolution")
    source = source if source is not None else data.source
    out_dir = Path(out_dir)
    info: dict[str, Any] = {"source": source_label(source), "seed": data.seed,
                            "config": config.to_dict()["data"]}
    samples, n, facts = hook(dataset_spec(data.dataset).samples)(config, source, n_images,
                                                                 workers, progress)
    info |= facts
    keep_truth = info.get("vessel_channel") == "unet" and info.get("vessel_truth") is not None
    with DatasetWriter(out_dir, data.dataset, n, data.resolution, info=info,
                       vessel_truth=keep_truth) as writer:
        bar = Progress(n, f"prepare {data.dataset}", unit="image", enabled=progress)
        for index, (image, row, *truth) in enumerate(samples):
            truth_at_resolution = (to_resolution(truth[0].astype(np.float32), data.resolution)
                                   if keep_truth else None)
            writer.add(index, to_resolution(image, data.resolution), row, truth_at_resolution)
            bar.update(1)
        bar.close()
    return out_dir


def ensure_prepared(config: Config, out_dir: str | Path, source: str | Path | None = None,
                    progress: bool = True) -> PreparedDataset:
    """Open the prepared dataset at ``out_dir``, first preparing it if missing or stale (other
    data settings or source, older PREPROCESSING_VERSION): the new one replaces it atomically."""
    out_dir = Path(out_dir)
    if (out_dir / "dataset.json").is_file():
        existing = PreparedDataset(out_dir)
        # prepare_dataset reads config.data.source when no source is given: compare that
        wanted = {"config": config.to_dict()["data"],
                  "source": source_label(source if source is not None else config.data.source),
                  "preprocessing_version": PREPROCESSING_VERSION}
        if "vessel_map_resolution" in existing.meta:  # a U-Net's channel: drawn at this size
            wanted["vessel_map_resolution"] = vessel_map_resolution(config)
        if all(existing.meta.get(key) == value for key, value in wanted.items()):
            return existing
        print(f"{out_dir} was prepared with other settings; preparing it again")
    prepare_dataset(config, out_dir, source=source, progress=progress)
    return PreparedDataset(out_dir)


def source_label(source: str | Path | None) -> str:
    """How a prepared dataset records its source: ``phantom``, or the folder's absolute path
    (so the same folder named from two working directories is the same data)."""
    return "phantom" if source is None else str(Path(source).expanduser().resolve())


def _n_heldout(n: int, heldout_fraction: float) -> int:
    """How many of ``n`` items to hold out: the fraction, but at least one when n >= 2 (a
    small dataset must not round away the held-out images evaluation compares against)."""
    if heldout_fraction <= 0 or n < 2:
        return 0
    return min(max(round(n * heldout_fraction), 1), n - 1)


def _split(index: int, n: int, heldout_fraction: float) -> str:
    """The last items are held out (never used in GAN training)."""
    return "heldout" if index >= n - _n_heldout(n, heldout_fraction) else "train"


def _ordered_map(fn: Callable, items: list, workers: int) -> Iterator:
    """``map`` over a process pool in order (phantom rendering is CPU-bound)."""
    if workers <= 1 or len(items) < 4:
        yield from map(fn, items)
        return
    with mp.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(fn, items, chunksize=4)


# ---------------------------------------------------------------- ROP
def rop_samples(config: Config, source: str | Path | None, n_images: int | None,
                workers: int, progress: bool) -> tuple[Iterator, int, dict[str, Any]]:
    """(image, manifest row, ground-truth vessel mask or None) per photograph, their count,
    and what the vessel channel is made of: ``vessel_channel`` "mask" or "unet" and
    ``vessel_truth`` (where ground-truth masks come from, None without masks)."""
    data = config.data
    mode = data.vessel_channel
    if source is None:
        from pggan_core.data.fundus_phantom import render_fundus

        n = n_images or data.n_images
        items = [data.seed * 1_000_000 + i for i in range(n)]
        load: Callable = partial(render_fundus, size=ROP_NATIVE)
        has_masks = True
    else:
        from pggan_core.data.loaders import find_fundus_images, load_fundus

        records = find_fundus_images(source)
        n = min(n_images or len(records), len(records))
        items = records[:n]
        # refuse photographs smaller than the output (upsampling adds only blur)
        load = partial(load_fundus, size=ROP_NATIVE, min_side=data.resolution)
        has_masks = all(r.vessel_path is not None for r in items)
    if mode == "mask" and not has_masks:
        raise DataError(f"{source}: data.vessel_channel=mask but some images have no vessel "
                        "mask; use vessel_channel auto or unet")
    segmenter = None
    if mode == "unet" or (mode == "auto" and not has_masks):
        # the U-Net sits above the data it learns from: the dataset's spec names it
        label_model = dataset_spec(data.dataset).label_model
        if label_model is None:
            raise ConfigError(f"dataset {data.dataset!r} names no label model "
                              "(DatasetSpec.label_model) to draw its vessel channel; give "
                              "images with masks and data.vessel_channel mask")
        ensure_vessel_unet = hook(label_model)
        # the U-Net later scores this dataset's held-out photographs: never train it on them
        heldout = [r.image_path for i, r in enumerate(items)
                   if source is not None and _split(i, n, data.heldout_fraction) == "heldout"]
        segmenter = ensure_vessel_unet(config, str(source) if source and has_masks else None,
                                       progress, exclude=heldout)

    def generate() -> Iterator[tuple[np.ndarray, dict[str, Any], np.ndarray | None]]:
        for index, (item, fundus) in enumerate(zip(items, _ordered_map(load, items, workers),
                                                   strict=True)):
            if segmenter is not None:
                vessel_map = gan_scale_vessel_map(segmenter, fundus.rgb, config)
            else:
                vessel_map = fundus.vessels.astype(np.float32)
            row = {"id": _relative_id(fundus.source_file, source) if source
                   else f"rop-{item:08d}",
                   "split": _split(index, n, data.heldout_fraction),
                   "source_file": fundus.source_file,
                   "seed": item if source is None else -1,
                   **fundus.labels}
            yield preprocess.fundus_channels(fundus.rgb, vessel_map), row, fundus.vessels

    model = vessel_model_path(config.profile)
    vessels = {"vessel_channel": "unet" if segmenter is not None else "mask",
               **({"vessel_map_resolution": vessel_map_resolution(config),
                   "vessel_model_sha256": sha256_of(model) if model.is_file() else None}
                  if segmenter is not None else {}),
               "vessel_truth": (None if not has_masks else "phantom" if source is None
                                else "manual masks")}
    return generate(), n, vessels


def vessel_map_resolution(config: Config) -> int:
    """The size at which the U-Net draws the vessel channel: the top of the GAN's schedule."""
    return min(config.schedule.max_resolution, config.data.resolution)


def gan_scale_vessel_map(segmenter, rgb: np.ndarray, config: Config) -> np.ndarray:
    """The vessel U-Net's map of a photograph as the GAN sees it, at ``rgb``'s size.

    The paper's fourth channel maps the vessels visible at the resolution the GAN learns, not
    finer ones: the photograph is box-filtered to the schedule's top as the pyramid filters it,
    segmented there (as generated photographs are), and each map pixel repeated up to ``rgb``'s
    size, so the pyramid gives this map back at the top and filters it below like the photograph.
    """
    top = vessel_map_resolution(config)
    photograph = to_resolution(preprocess.fundus_channels(
        rgb, np.zeros(rgb.shape[:2], np.float32)), top)[None]
    fov = preprocess.fields_of_view(photograph, config.data)
    vessel_map = segmenter.segment_images(photograph, config.vessels.train_resolution, fov)[0]
    repeat = rgb.shape[0] // top
    return np.repeat(np.repeat(vessel_map, repeat, axis=0), repeat, axis=1)


def _relative_id(source_file: str, source: str | Path) -> str:
    """A real image's unique id: its path below ``source`` without suffix (stems alone collide:
    FIVES has ``train/Original/1_A.png`` and ``test/.../1_A.png``)."""
    path, root = Path(source_file), Path(source)
    rel = path.relative_to(root) if root.is_dir() and path.is_relative_to(root) else path
    return rel.with_suffix("").as_posix()


# ---------------------------------------------------------------- BraTS
def brats_samples(config: Config, source: str | Path | None, n_images: int | None,
                  workers: int, progress: bool) -> tuple[Iterator, int, dict[str, Any]]:
    """(slice, manifest row) per axial slice of the phantom's subjects or a BraTS folder's cases,
    and their count (a subject's slices are consecutive and share a split)."""
    data = config.data
    if data.resolution > data.pad_to:
        raise ConfigError(f"--resolution {data.resolution}: BraTS slices are {data.pad_to} px "
                          f"(the paper trained glioma images up to 256); use 256 or less")
    per_subject = data.slices_per_subject
    if source is None:
        n = n_images or data.n_images
        n_subjects = -(-n // per_subject)
        items: list = [data.seed * 1_000_000 + i for i in range(n_subjects)]
    else:
        from pggan_core.data.loaders import find_brats_cases

        items = find_brats_cases(source)
        n_subjects = len(items)
        n = min(n_images or n_subjects * per_subject, n_subjects * per_subject)
    n_heldout_subjects = _n_heldout(n_subjects, data.heldout_fraction)
    jobs = [(item, data, k >= n_subjects - n_heldout_subjects) for k, item in enumerate(items)]

    def generate() -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        written = 0
        for slices in _ordered_map(_brain_slices, jobs, workers):
            for image, row in slices:
                if written == n:
                    return
                written += 1
                yield image, row
        if written < n:
            raise DataError(f"{source or 'phantom'}: only {written} usable slices for the "
                            f"{n} requested; lower --n or add cases")

    return generate(), n, {}


def _brain_slices(job: tuple) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """One subject's (phantom seed or BraTS case) picked slices as 7 channels, with their rows."""
    from pggan_core.data.brain_phantom import BrainPhantom
    from pggan_core.data.loaders import load_brats_case

    item, data, heldout = job
    if isinstance(item, int):
        volume, seed = BrainPhantom().subject(item), item
    else:
        volume, seed = load_brats_case(item), -1
    zvol = preprocess.zscore_volume(volume.modalities, volume.brain_mask, volume.source_file)
    # real cases have no seed: derive a stable one from the subject id (not hash(): salted)
    subject = str(volume.meta.get("subject", seed))
    rng = np.random.default_rng(zlib.crc32(subject.encode()) if seed < 0 else seed)
    slices = preprocess.select_slices(volume.brain_mask, volume.seg, data.min_brain_fraction,
                                      data.slices_per_subject, rng)
    out = []
    for z in slices:
        image = preprocess.brats_slice_channels(zvol, volume.seg, volume.brain_mask, z,
                                                data.pad_to, data.z_clip)
        labels = volume.seg[:, :, z]
        out.append((image, {
            "id": f"{subject}_z{z:03d}",
            "split": "heldout" if heldout else "train",
            "source_file": volume.source_file,
            "seed": seed,
            "subject": volume.meta.get("subject", ""),
            "slice_index": int(z),
            "slice_position": round(z / max(volume.seg.shape[2] - 1, 1), 4),
            "tumour_present": bool((labels > 0).any()),
            "grade": volume.meta.get("grade", "unknown"),
        }))
    return out


def example(dataset: str, seed: int = 0, source: str | Path | None = None):
    """One raw sample to look at (the spec's ``example``): phantom ``seed``, or the first image
    or case of ``source``."""
    spec = dataset_spec(dataset)
    if spec.example is None:
        raise ConfigError(f"dataset {dataset!r} names no raw example (DatasetSpec.example)")
    return hook(spec.example)(seed, source)


def rop_example(seed: int, source: str | Path | None):
    """A FundusImage at the paper's 512 px: the phantom of ``seed``, or the folder's first."""
    if source is None:
        from pggan_core.data.fundus_phantom import render_fundus

        return render_fundus(seed, ROP_NATIVE)
    from pggan_core.data.loaders import find_fundus_images, load_fundus

    return load_fundus(find_fundus_images(source)[0], ROP_NATIVE)


def brats_example(seed: int, source: str | Path | None):
    """A BrainVolume: the phantom subject of ``seed``, or the folder's first case."""
    if source is None:
        from pggan_core.data.brain_phantom import BrainPhantom

        return BrainPhantom().subject(seed)
    from pggan_core.data.loaders import find_brats_cases, load_brats_case

    return load_brats_case(find_brats_cases(source)[0])


def stored_label_origin(facts: dict[str, Any]) -> str:
    """Where a dataset that says nothing better has its label channels from."""
    return "label channels as prepared"


def _is_phantom(facts: dict[str, Any]) -> bool:
    return facts.get("source") in (None, "phantom")


def vessel_origin(facts: dict[str, Any]) -> str:
    """Where a prepared fundus set's vessel channel comes from (``facts``: dataset.json or a
    data record)."""
    origins = {"mask": "the phantom's exact vessels" if _is_phantom(facts) else
               "its manual vessel masks", "unet": "the vessel U-Net (not ground truth)"}
    return f"vessel channel from {origins.get(facts.get('vessel_channel'), 'unknown')}"


def tumour_origin(facts: dict[str, Any]) -> str:
    """Where a prepared MRI set's tumour labels come from."""
    return f"tumour labels from {'the phantom' if _is_phantom(facts) else 'its seg files'}"
