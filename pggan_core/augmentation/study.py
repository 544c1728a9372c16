"""The augmentation study's protocol: which segmenters are trained on what, and how they are
compared (``pggan augment-study``, ``notebooks/08_augmentation.md``).

The paper's case for generating the segmentation maps with the images is that synthetic, labelled
images can "amplify" a small dataset (Beers et al. 2018, Introduction). Per seed, segmenters are
trained in four ``ARMS``: ``real``, on k real labelled items (fundus: photographs; glioma: subjects,
all their slices) of the GAN's own training split, or all of them; ``real + classic``, the same
items under classic augmentation; ``real + synthetic``, the same items plus ``augment.n_synthetic``
(M) pairs from the GAN trained with segmentation channels; ``synthetic``, the M pairs alone. Every
arm gets the same segmenter, initialisation, updates and batch size, and all are scored on the
held-out split, which the GAN never saw (for glioma, whole subjects). The GAN learnt every training
item with its masks, so the synthetic arms measure whether a GAN trained where labels are plentiful
can carry them to a segmenter that has only k (synthetic pairs can be handed on where patients'
images cannot), not labels made from nothing.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pggan_core.atomic import write_text_atomic
from pggan_core.augmentation.classic import classic_augmenter
from pggan_core.data.store import PreparedDataset, describe_data
from pggan_core.datasets import dataset_spec, hook
from pggan_core.device import pick_device
from pggan_core.errors import ConfigError, DataError
from pggan_core.generate import sample_images
from pggan_core.progress import Progress
from pggan_core.provenance import code_that_ran, derivation, provenance
from pggan_core.runs.folder import (
    RunSpec,
    open_run,
    require_trained_run,
    run_config,
)
from pggan_core.runs.reuse import lanes_and_threads
from pggan_core.segmentation.pairs import TARGET_THRESHOLD, LabelledSet
from pggan_core.segmentation.segmenters import METRIC_NAMES, score_segmenter, train_segmenter
from pggan_core.segmentation.tasks import segmentation_task
from pggan_core.settings import Config
from pggan_core.training.checkpoint import load_generator, weights_fingerprint

ARMS = ("real", "real + classic", "real + synthetic", "synthetic")
RESULT_FILE = "augmentation.json"
STALE_FILE = "augmentation.stale.json"
# latents of the synthetic pairs: seed SYNTHETIC_SEED_BASE + study seed, far from other pages'
SYNTHETIC_SEED_BASE = 5_000


@dataclass(frozen=True)
class StudyData:
    """Everything the segmenters learn from and are scored on: the training split's pairs ``real``,
    the item (photograph or subject) of each in ``real_items``, the held-out pairs ``test`` and
    ``synthetic[s]``, the M generated pairs of seed ``s``."""

    dataset: str
    real: LabelledSet
    real_items: np.ndarray
    test: LabelledSet
    synthetic: tuple[LabelledSet, ...]

    @property
    def n_items(self) -> int:
        """The number of distinct items (photographs or subjects) in ``real``."""
        return len(np.unique(self.real_items))


@dataclass(frozen=True)
class Job:
    """One segmenter: arm, number k of real labelled items (0 for ``synthetic``) and seed."""

    arm: str
    k: int
    seed: int


def study_jobs(label_counts: tuple[int, ...], n_items: int, seeds: int) -> list[Job]:
    """Every segmenter the study trains: per seed, each arm with real labels at each k of
    ``label_counts`` below ``n_items`` and at all ``n_items``, and the synthetic arm once."""
    counts = sorted({k for k in label_counts if 0 < k < n_items} | {n_items})
    return [Job(arm, k, seed) for seed in range(seeds) for k in counts for arm in ARMS[:3]
            ] + [Job("synthetic", 0, seed) for seed in range(seeds)]


def chosen_items(real_items: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The first ``k`` items of a seed's random order: nested, so each seed's k = 5 items include
    its k = 2 ones and score differences between k are not new draws of luck."""
    items = np.unique(real_items)
    return np.random.default_rng(seed).permutation(items)[:k]


def training_pairs(data: StudyData, job: Job) -> LabelledSet:
    """The pairs a job's segmenter learns from."""
    if job.arm == "synthetic":
        return data.synthetic[job.seed]
    real = data.real.subset(np.flatnonzero(np.isin(data.real_items,
                                                   chosen_items(data.real_items, job.k,
                                                                job.seed))))
    return real.join(data.synthetic[job.seed]) if job.arm == "real + synthetic" else real


def run_job(data: StudyData, cfg: Config, job: Job) -> dict[str, Any]:
    """Train one segmenter and score it on the held-out pairs: a row of the results."""
    start = time.perf_counter()
    pairs = training_pairs(data, job)
    augment = (classic_augmenter(data.dataset, cfg, job.seed) if job.arm == "real + classic"
               else None)
    net = train_segmenter(data.dataset, pairs, cfg, seed=job.seed, augment=augment)
    scores = score_segmenter(data.dataset, net, data.test)
    return {**asdict(job), "n_pairs": len(pairs), **{k: round(v, 5) for k, v in scores.items()},
            "seconds": round(time.perf_counter() - start, 1)}


def study_data(run: Path, cfg: Config) -> tuple[StudyData, dict[str, Any]]:
    """The real training and held-out pairs of ``run``'s prepared data and the synthetic
    pairs of its generator, with a record of where each came from."""
    info, data, G, resolution, latent = _open_run(run)
    dataset = data.dataset
    train_idx, test_idx = data.split_indices("train"), data.split_indices("heldout")
    if len(test_idx) == 0:
        raise DataError(f"{data.path} holds out no images; prepare it with data."
                        "heldout_fraction > 0 so the study has real images to score on")
    test_idx = _whole_items(data, test_idx, cfg.augment.n_test)
    synthetic = tuple(
        synthetic_pairs(dataset, sample_images(G, cfg.augment.n_synthetic, resolution, latent,
                                               SYNTHETIC_SEED_BASE + s), cfg)
        for s in range(cfg.augment.seeds))
    real, test = (real_pairs(data, idx, resolution, cfg) for idx in (train_idx, test_idx))
    items = _items(data, train_idx)
    spec = dataset_spec(dataset)
    singular, plural = spec.items
    n_test_items = len(np.unique(_items(data, test_idx)))
    record = {
        "gan": {"run": str(run), "resolution": resolution,
                "generator_sha256": weights_fingerprint(G),
                "trained_on": f"every {singular} of the training split of "
                              f"{describe_data(info.get('data'))}: {len(train_idx)} images "
                              f"with the {hook(spec.label_origin)(data.meta)}",
                "n_train_images": int(len(train_idx))},
        "real": {"n_train_items": int(len(np.unique(items))), "item": singular,
                 "items": plural, "n_train_images": int(len(train_idx)),
                 "n_test_images": int(len(test_idx)), "n_test_items": int(n_test_items),
                 "test": f"the held-out split of {data.path.name}: {len(test_idx)} images of "
                         f"{n_test_items} {plural} the GAN never saw"},
        "target_threshold": TARGET_THRESHOLD,
    }
    return StudyData(dataset, real, np.asarray(items), test, synthetic), record


def real_pairs(data: PreparedDataset, idx: np.ndarray, resolution: int, cfg: Config
               ) -> LabelledSet:
    """Pairs of the prepared rows ``idx`` at ``resolution`` with their ground truth."""
    return segmentation_task(data.dataset).real_pairs(data, idx, resolution, cfg)


def synthetic_pairs(dataset: str, images: np.ndarray, cfg: Config) -> LabelledSet:
    """Pairs of generated images, their own segmentation channels as the targets."""
    return segmentation_task(dataset).synthetic_pairs(images, cfg)


def example_pairs(run: Path, cfg: Config, n: int = 4) -> tuple[LabelledSet, LabelledSet]:
    """``n`` real training pairs and ``n`` synthetic ones (the first seed's latents), made
    exactly as the study makes them: what the chapter shows the reader."""
    _, data, G, resolution, latent = _open_run(Path(run))
    fake = sample_images(G, n, resolution, latent, SYNTHETIC_SEED_BASE)
    return (real_pairs(data, data.split_indices("train")[:n], resolution, cfg),
            synthetic_pairs(data.dataset, fake, cfg))


def _open_run(run: Path) -> tuple[dict[str, Any], PreparedDataset, Any, int, int]:
    """The run's ``run.json``, prepared data, (EMA) generator, resolution and latent size."""
    opened = open_run(run)
    return (opened.info.to_dict(), opened.data, opened.G, opened.resolution,
            opened.config.model.latent_dim)


def _items(data: PreparedDataset, idx: np.ndarray) -> np.ndarray:
    """The item of each row ``idx``: its ``DatasetSpec.item_column`` (a subject), else the row."""
    column = dataset_spec(data.dataset).item_column
    return idx if column is None else data.manifest[column].to_numpy()[idx]


def _whole_items(data: PreparedDataset, idx: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` of the rows ``idx``, whole items only (a subject's slices; at least one)."""
    items = _items(data, idx)
    keep = []
    for item in dict.fromkeys(items):
        rows = idx[items == item]
        if keep and len(keep) + len(rows) > n:
            break
        keep.extend(rows)
    return np.asarray(keep)


# --------------------------------------------------------- Running the jobs, in parallel lanes

_WORKER: dict[str, Any] = {}


def _init_worker(data: StudyData, cfg: Config, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER.update(data=data, cfg=cfg)


def _run_in_worker(job: Job) -> tuple[dict[str, Any], list[str]]:
    """A job's row and the code that ran for it (``provenance.code_that_ran``)."""
    with code_that_ran() as ran:
        row = run_job(_WORKER["data"], _WORKER["cfg"], job)
    return row, sorted(ran)


def run_jobs(data: StudyData, cfg: Config, jobs: list[Job], lanes: int | None = None,
             progress: bool = True) -> tuple[list[dict[str, Any]], set[str], int, int]:
    """Every job's row (in ``jobs``' order), the code that ran for them, the lanes and the threads
    per lane. Independent single-threaded trainings use the cores better than one on all of them
    (``lanes_and_threads``); ``lanes=1`` runs them here in turn, the default on a GPU, which one
    segmenter keeps busy."""
    import torch

    if lanes is None and pick_device(cfg.train.device).type == "cuda":
        lanes = 1
    lanes, threads = lanes_and_threads(len(jobs)) if lanes is None else (
        lanes, max(1, torch.get_num_threads() // lanes))
    bar = Progress(len(jobs), f"augmentation study {data.dataset}", unit="segmenter",
                   enabled=progress)
    rows: list[dict[str, Any]] = []
    code: set[str] = set()
    if lanes == 1:
        for job in jobs:
            with code_that_ran() as ran:
                rows.append(run_job(data, cfg, job))
            code |= ran
            bar.update(1, detail=f"{job.arm}, k={job.k}, seed {job.seed}")
    else:
        with mp.get_context("spawn").Pool(lanes, _init_worker, (data, cfg, threads)) as pool:
            for row, names in pool.imap(_run_in_worker, jobs):
                rows.append(row)
                code.update(names)
                bar.update(1, detail=f"{row['arm']}, k={row['k']}, seed {row['seed']}")
    bar.close()
    return rows, code, lanes, threads


# ------------------------------------------------------- The study end to end, and its summary


def run_augmentation_study(dataset: str, profile: str, seed: int = 0,
                           source: str | Path | None = None,
                           augment: dict[str, Any] | None = None, lanes: int | None = None,
                           progress: bool = True) -> dict[str, Any]:
    """The whole study for the (dataset, profile) run with segmentation on ``source``
    (None: the phantom), written into the run folder as ``augmentation.json`` and returned. ``seed``
    picks the run's data and training seed, as for every book run; the study's own seeds are 0 ..
    ``augment.seeds`` - 1. ``augment`` overrides keys of the profile's ``augment`` section (e.g.
    ``{"iterations": 1000}``)."""
    cfg = run_config(dataset, profile, seed, augment)
    run = require_trained_run(RunSpec(dataset, profile, seed=seed, source=source))
    return augmentation_study(run, cfg, lanes, progress)


def augmentation_study(run: str | Path, cfg: Config, lanes: int | None = None,
                       progress: bool = True) -> dict[str, Any]:
    """The study on the trained run in ``run`` with ``cfg``'s ``augment`` settings (its vessel and
    data sections for the fundus segmenter), written atomically to ``run/augmentation.json``;
    ConfigError for a count below 1."""
    start = time.perf_counter()
    run = Path(run)
    a = cfg.augment
    if min(a.seeds, a.iterations, a.n_synthetic, a.batch_size, *a.label_counts) < 1:
        raise ConfigError("augment.seeds, iterations, n_synthetic, batch_size and every "
                          f"label_counts entry must be at least 1 (got {a})")
    with code_that_ran() as ran:  # with the workers' code, what the study derives from
        data, record = study_data(run, cfg)
        dataset = data.dataset
        task = segmentation_task(dataset)
        jobs = study_jobs(a.label_counts, data.n_items, a.seeds)
        rows, code, lanes, threads = run_jobs(data, cfg, jobs, lanes, progress)
        result = {
            "dataset": dataset, "profile": cfg.profile, "seed": cfg.train.seed,
            "settings": asdict(a),
            "segmenter": task.describe(cfg),
            **record,
            "arms": list(ARMS), "metrics": list(task.metrics),
            "rows": rows, "summary": summarise(rows, task.metrics),
            "lanes": lanes, "threads_per_lane": threads,
            "seconds": round(time.perf_counter() - start, 1),
        }
        result |= claim_values(result)
    facts = provenance(cfg.profile, cfg.train.seed)
    result |= {"written": facts["built"], "commit": facts["commit"],
               "derivation": derivation("augmentation", record["gan"]["generator_sha256"],
                                        load_generator(run)[1]["config"], ran | code)}
    write_text_atomic(run / RESULT_FILE, json.dumps(result, indent=1))
    return result


def summarise(rows: list[dict[str, Any]], metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per (arm, k): each metric's mean, standard deviation (over seeds) and the seed count."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["arm"], row["k"]), []).append(row)
    out = []
    for (arm, k), members in sorted(groups.items(), key=lambda g: (ARMS.index(g[0][0]),
                                                                   g[0][1])):
        entry: dict[str, Any] = {"arm": arm, "k": k, "n_seeds": len(members)}
        for metric in metrics:
            values = np.array([m[metric] for m in members], float)
            entry[f"{metric}_mean"] = round(float(np.mean(values)), 5)
            entry[f"{metric}_sd"] = round(float(np.std(values, ddof=1)), 5) \
                if len(values) > 1 else 0.0
        out.append(entry)
    return out


def summary_entry(result: dict[str, Any], arm: str, k: int) -> dict[str, Any]:
    """The summary line of (``arm``, ``k``)."""
    return next(e for e in result["summary"] if e["arm"] == arm and e["k"] == k)


def label_counts(result: dict[str, Any]) -> list[int]:
    """The k of the study's real arms, the last being all the training items."""
    return sorted({e["k"] for e in result["summary"] if e["arm"] == "real"})


def claim_values(result: dict[str, Any]) -> dict[str, str]:
    """The results page's rows (``pggan_book.results_table``): the lead metric's mean ± sd of the
    arms at the fewest and at all real labels, and of the synthetic arm."""
    metric = result["metrics"][0]
    counts = label_counts(result)
    fewest, every = counts[0], counts[-1]

    def value(arm: str, k: int, note: str) -> str:
        entry = summary_entry(result, arm, k)
        return f"{entry[f'{metric}_mean']:.3f} ± {entry[f'{metric}_sd']:.3f} ({note})"

    items = result["real"]["items"]
    return {
        "augmentation_metric": METRIC_NAMES[metric],
        "augmentation_real_scarce": value("real", fewest, f"k = {fewest}"),
        "augmentation_classic_scarce": value("real + classic", fewest, f"k = {fewest}"),
        "augmentation_real_synthetic_scarce": value("real + synthetic", fewest,
                                                    f"k = {fewest}"),
        "augmentation_synthetic_only": value("synthetic", 0,
                                             f"M = {result['settings']['n_synthetic']}"),
        "augmentation_real_all": value("real", every, f"all {every} {items}"),
        "augmentation_real_synthetic_all": value("real + synthetic", every,
                                                 f"all {every} {items}"),
    }
