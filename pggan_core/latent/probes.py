"""Cross-validation folds, linear probes, t-SNE silhouettes and labels read off generated images:
the numbers that check Figure 5's picture against chance and against raw pixels.

Folds are grouped by subject where a subject has many images (neighbouring BraTS slices look
alike: a test slice must not have its neighbours in training) and fixed by a seed, so k-NN and
probe, on latents and on pixels, are scored on the same splits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    cross_val_score,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from pggan_core.data.store import box_downsample
from pggan_core.datasets import LatentLabel, dataset_spec, hook
from pggan_core.errors import DataError
from pggan_core.generate import images_from_latents
from pggan_core.measures.global_structure import disc_centres

FOLDS = 5
KNN_K = 5  # neighbours per k-NN prediction, capped by the smallest training fold
PROBE_C = 1.0  # sklearn's default L2 strength; with standardised inputs it is scale-free
PROBE_MAX_ITER = 2000  # thousands of pixel features converge slower than 32 latents
GENERATED_IMAGES = 512
GENERATE_CHUNK = 64  # images drawn and labelled at a time: bounded memory at 512 px
# tumour: a label on this share of the image (3 px at 64 px); a few stray pixels are none
TUMOUR_MIN_FRACTION = 0.0005
TUMOUR_MIN_PIXELS = 2


def fold_indices(labels: np.ndarray | pd.Series, groups: np.ndarray | pd.Series | None = None,
                 seed: int = 0, stratify: bool = True
                 ) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Deterministic ``FOLDS``-fold splits of ``labels`` and a sentence naming them. With
    ``groups`` (each slice's subject) no group is split between training and test
    (StratifiedGroupKFold; GroupKFold for a continuous label, ``stratify=False``); folds are
    capped by the number of groups and, for a class label, of groups holding the rarest class, so
    every training fold sees every class (DataError where a class lies in one group). Without
    groups: StratifiedKFold / KFold; with a single group the same, and the sentence says so."""
    labels = np.asarray(labels)
    n, folds = len(labels), FOLDS
    placeholder = np.zeros((n, 1))  # sklearn splitters read only the length of X
    n_groups = len(np.unique(groups)) if groups is not None else 0
    if groups is not None and n_groups >= 2:
        groups = np.asarray(groups)
        if stratify:
            per_class = {c: len(np.unique(groups[labels == c])) for c in np.unique(labels)}
            if min(per_class.values()) < 2:  # its one group's fold would train without it
                raise DataError(f"grouped folds need every class in 2+ subjects, got "
                                f"{ {str(c): k for c, k in per_class.items()} }")
            folds = min(folds, n_groups, *per_class.values())
            splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        else:
            folds = min(folds, n_groups)
            splitter = GroupKFold(folds)
        splits = list(splitter.split(placeholder, labels, groups))
        return splits, f"{folds}-fold, grouped by subject"
    if stratify:
        folds = int(min(folds, np.unique(labels, return_counts=True)[1].min()))
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:
        folds = int(min(folds, n // 2))
        splitter = KFold(folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(placeholder, labels))
    why = ("; ungrouped: only one subject, so neighbouring images share folds"
           if groups is not None else "")
    return splits, f"{folds}-fold{', stratified' if stratify else ''}{why}"


def _usable_folds(features: np.ndarray, labels: np.ndarray | pd.Series,
                  groups: np.ndarray | pd.Series | None, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]], str]:
    """The images of classes with 2+ images (one alone cannot be trained on and tested), their
    folds and sentence; DataError unless two such classes are left."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    keep = np.isin(labels, classes[counts >= 2])
    if len(np.unique(labels[keep])) < 2:
        raise DataError(f"cross-validated accuracy needs two classes with 2+ images each, got "
                        f"{dict(zip(classes.tolist(), counts.tolist(), strict=True))}")
    groups = np.asarray(groups)[keep] if groups is not None else None
    splits, split = fold_indices(labels[keep], groups, seed)
    return np.asarray(features)[keep], labels[keep], splits, split


def _accuracy(scores: Any, labels: np.ndarray, splits: list, split: str, **extra: int
              ) -> dict[str, Any]:
    """The fold ``scores`` as ``accuracy`` (mean), ``std``, ``chance`` (the majority class's
    share: what always guessing it scores), ``n``, ``extra``, ``folds`` and ``split``."""
    counts = np.unique(labels, return_counts=True)[1]
    return {"accuracy": float(np.mean(scores)), "std": float(np.std(scores)),
            "chance": float(counts.max() / counts.sum()), "n": len(labels), **extra,
            "folds": len(splits), "split": split}


def probe_accuracy(features: np.ndarray, labels: np.ndarray | pd.Series,
                   groups: np.ndarray | pd.Series | None = None, seed: int = 0
                   ) -> dict[str, Any]:
    """Cross-validated accuracy of logistic regression on standardised ``features`` (scaler fitted
    per training fold) predicting ``labels`` on ``fold_indices``' folds, as ``_accuracy``'s keys.
    Classes of one image are left out; DataError unless two classes remain."""
    features, labels, splits, split = _usable_folds(features, labels, groups, seed)
    model = make_pipeline(StandardScaler(),
                          LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER))
    scores = [model.fit(features[train], labels[train]).score(features[test], labels[test])
              for train, test in splits]
    return _accuracy(scores, labels, splits, split)


def knn_accuracy(latents: np.ndarray, labels: np.ndarray | pd.Series, seed: int = 0,
                 groups: np.ndarray | pd.Series | None = None) -> dict[str, Any]:
    """Cross-validated ``KNN_K``-nearest-neighbour accuracy of predicting ``labels`` from
    latents, as ``probe_accuracy`` (the same folds and keys, plus ``k``)."""
    latents, labels, splits, split = _usable_folds(latents, labels, groups, seed)
    k = int(min(KNN_K, *(len(train) - 1 for train, _ in splits)))
    scores = cross_val_score(KNeighborsClassifier(k), latents, labels, cv=splits)
    return _accuracy(scores, labels, splits, split, k=k)


def tsne_embedding(latents: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE (PCA init, automatic learning rate); DataError below 4 latents. Perplexity is
    clipped to (n - 1) / 3 so small sets embed (sklearn needs it below n; a third keeps each
    neighbourhood smaller than the set)."""
    n = len(latents)
    if n < 4:
        raise DataError(f"t-SNE needs at least 4 latents, got {n}: encode more images")
    perplexity = float(min(perplexity, (n - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed)
    return tsne.fit_transform(np.asarray(latents, dtype=np.float64)).astype(np.float32)


def label_silhouette(embedding: np.ndarray, labels: np.ndarray | pd.Series) -> float:
    """sklearn's silhouette of ``labels``' classes in a (t-SNE) plane: -1 mixed up, 0 overlapping,
    1 tight, far-apart clusters; DataError unless 2 to n - 1 classes."""
    labels = np.asarray(labels)
    n_classes = len(np.unique(labels))
    if not 2 <= n_classes < len(labels):
        raise DataError(f"a silhouette needs 2 to {len(labels) - 1} classes, got {n_classes}")
    return float(silhouette_score(np.asarray(embedding, np.float64), labels))


def laterality_from_disc(images: np.ndarray) -> np.ndarray:
    """Per fundus image (N, C, R, R) in [-1, 1], RGB first: "OD" (right eye) where the optic disc
    (``global_structure.disc_centres``, the loaders' rule for user photographs) is in the right
    half, else "OS": correct on every prepared phantom (OD disc right of the fovea), 16-128 px."""
    disc_x = disc_centres(images)[:, 1]
    return np.where(disc_x < np.shape(images)[-1] / 2, "OS", "OD")


def tumour_from_label_channels(label_channels: np.ndarray) -> np.ndarray:
    """Tumour presence per MRI slice from its label channels (N, 3, R, R) in [-1, 1]: labels > 0
    (the midpoint) on ``TUMOUR_MIN_FRACTION`` of the image and ``TUMOUR_MIN_PIXELS`` at least."""
    label_channels = np.asarray(label_channels)
    size = label_channels.shape[-1] * label_channels.shape[-2]
    tumour_pixels = (label_channels > 0).any(axis=1).sum(axis=(1, 2))
    return tumour_pixels >= max(TUMOUR_MIN_PIXELS, math.ceil(TUMOUR_MIN_FRACTION * size))


def tumour_from_images(images: np.ndarray) -> np.ndarray:
    """``tumour_from_label_channels`` of MR slices (N, 7, R, R): their label channels 4-6."""
    return tumour_from_label_channels(images[:, 4:7])


def latent_label(dataset: str) -> LatentLabel:
    """``dataset``'s ``DatasetSpec.latent_label``, its latent space's label; DataError if none."""
    label = dataset_spec(dataset).latent_label
    if label is None:
        raise DataError(f"dataset {dataset!r} names no label to score its latent space by "
                        "(DatasetSpec.latent_label): nothing for `pggan latent` to measure")
    return label


def labels_from_images(dataset: str, images: np.ndarray) -> np.ndarray:
    """Figure 5's label read off (generated or real) images by ``LatentLabel.from_images``."""
    return hook(latent_label(dataset).from_images)(images)


def draw_latents(n: int, latent_dim: int, seed: int) -> torch.Tensor:
    """The ``n`` latents ``generate.sample_images`` draws for ``seed``: same seed, same z."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))


def labels_of_generated(G: nn.Module, z: torch.Tensor | np.ndarray, resolution: int,
                        alpha: float, dataset: str, label_resolution: int | None = None
                        ) -> np.ndarray:
    """The label each latent's image shows (``labels_from_images``, clipped as ``sample_images``
    does), box-filtered down to ``label_resolution`` (default: as drawn) as reals are, so a rule
    checked on them reads alike; ``GENERATE_CHUNK`` at a time, so memory is bounded at 512 px."""
    labels = []
    for start in range(0, len(z), GENERATE_CHUNK):
        images = np.clip(images_from_latents(G, z[start:start + GENERATE_CHUNK], resolution,
                                             alpha), -1.0, 1.0)
        while label_resolution is not None and images.shape[-1] > label_resolution:
            images = box_downsample(images)
        labels.append(labels_from_images(dataset, images))
    return np.concatenate(labels)


def generated_z_probe(G: nn.Module, dataset: str, resolution: int, latent_dim: int,
                      alpha: float = 1.0, n: int = GENERATED_IMAGES, seed: int = 0,
                      label_resolution: int | None = None) -> dict[str, Any]:
    """What the generator encodes at all: ``probe_accuracy`` (stratified folds; ``accuracy`` None
    with ``why_not`` for one class) of the label each generated image shows, from its z, plus
    ``generated_images``, ``seed``, ``resolution`` (read at), ``label_rule``, ``label_share``."""
    z = draw_latents(n, latent_dim, seed)
    labels = labels_of_generated(G, z, resolution, alpha, dataset,
                                 label_resolution).astype(str)
    read_at = min(resolution, label_resolution or resolution)
    classes, counts = np.unique(labels, return_counts=True)
    out: dict[str, Any] = {"generated_images": n, "seed": seed, "resolution": read_at,
                           "label_rule": latent_label(dataset).rule,
                           "label_share": {c: round(k / n, 4) for c, k in
                                           zip(classes.tolist(), counts.tolist(), strict=True)}}
    try:
        return {**probe_accuracy(z.numpy(), labels, seed=seed), **out}
    except DataError as err:
        return {"accuracy": None, "chance": None, "why_not": str(err), **out}


def label_rule_agreement(dataset: str, images: np.ndarray, labels: pd.DataFrame) -> float:
    """Share of real training images whose ``labels_from_images`` matches their recorded label:
    how far labels read off generated images can be trusted."""
    read = labels_from_images(dataset, images).astype(str)
    truth = labels[latent_label(dataset).column].to_numpy()
    return float(np.mean(read == truth.astype(str)))
