"""What the encoded latents show (Figure 5): t-SNE, cross-validated k-nearest-neighbour
scores that put numbers on what the t-SNE shows, spherical interpolation, principal directions
and walks through the latent space.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict, cross_val_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from pggan_core.atomic import write_text_atomic
from pggan_core.config import Config
from pggan_core.data.store import PreparedDataset
from pggan_core.errors import DataError
from pggan_core.latent.encoder import load_latents
from pggan_core.runs.folder import run_data_dir
from pggan_core.training.checkpoint import load_generator

PIXEL_CONTROL_RESOLUTION = 64  # the k-NN raw-pixel control never reads larger images


def tsne_embedding(latents: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE of ``latents`` (sklearn; PCA initialisation, automatic learning rate).

    The perplexity is clipped to (n - 1) / 3 so small sets still embed (sklearn requires it
    below n; a third keeps each point's neighbourhood smaller than the whole set).
    """
    n = len(latents)
    if n < 4:
        raise DataError(f"t-SNE needs at least 4 latents, got {n}: encode more images")
    perplexity = float(min(perplexity, (n - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed)
    return tsne.fit_transform(np.asarray(latents, dtype=np.float64)).astype(np.float32)


def knn_accuracy(latents: np.ndarray, labels: np.ndarray | pd.Series, k: int = 5,
                 folds: int = 5, seed: int = 0) -> dict[str, float]:
    """Cross-validated k-nearest-neighbour accuracy of predicting ``labels`` from latents.

    Returns ``accuracy`` (mean over stratified folds), ``std``, ``chance`` (the majority
    class's share: what always guessing it scores), ``n``, ``k`` and ``folds``. Images of a
    class seen only once are left out (``n`` counts the rest); folds are capped by the rarest
    class's count, k by the smallest training fold.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    # a class seen once cannot be both trained on and tested: leave its image out
    keep = np.isin(labels, classes[counts >= 2])
    latents, labels = np.asarray(latents)[keep], labels[keep]
    classes, counts = classes[counts >= 2], counts[counts >= 2]
    if len(classes) < 2:
        raise DataError(f"k-NN accuracy needs two classes with 2+ images each, got "
                        f"{dict(zip(*np.unique(labels, return_counts=True), strict=True))}")
    folds = int(min(folds, counts.min()))
    k = int(min(k, len(labels) - len(labels) // folds - 1))
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_score(KNeighborsClassifier(k), latents, labels, cv=split)
    return {"accuracy": float(scores.mean()), "std": float(scores.std()),
            "chance": float(counts.max() / counts.sum()), "n": len(labels), "k": k,
            "folds": folds}


def knn_correlation(latents: np.ndarray, values: np.ndarray | pd.Series, k: int = 5,
                    folds: int = 5, seed: int = 0) -> dict[str, float]:
    """How well a continuous label (e.g. slice position) follows from latent neighbours.

    Each image's value is predicted as the mean of its k nearest latents in the other folds;
    returns the Spearman correlation and R² of prediction vs truth (0 is chance for both).
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 4:
        raise DataError(f"k-NN correlation needs at least 4 latents, got {len(values)}")
    folds = int(min(folds, len(values) // 2))
    k = int(min(k, len(values) - len(values) // folds - 1))
    predicted = cross_val_predict(KNeighborsRegressor(k), latents, values,
                                  cv=KFold(folds, shuffle=True, random_state=seed))
    return {"spearman": float(spearmanr(values, predicted).statistic),
            "r2": float(r2_score(values, predicted)), "n": len(values), "k": k, "folds": folds}


def slerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation from ``z0`` (t = 0) to ``z1`` (t = 1); ``(len(t), D)``.

    The great circle keeps latents at a typical length, where a straight line would pass
    through the low-norm middle that Gaussian latents rarely visit (White 2016). Lengths are
    interpolated linearly; nearly parallel endpoints fall back to a straight line.
    """
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))[:, None]
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    cos = np.clip(z0 @ z1 / (n0 * n1), -1.0, 1.0)
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:
        return ((1 - t) * z0 + t * z1).astype(np.float32)
    u0, u1 = z0 / n0, z1 / n1
    direction = (np.sin((1 - t) * omega) * u0 + np.sin(t * omega) * u1) / np.sin(omega)
    return (direction * ((1 - t) * n0 + t * n1)).astype(np.float32)


def principal_directions(latents: np.ndarray, n: int = 3) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """The mean latent, the top ``n`` principal directions (unit rows) and their std devs."""
    pca = PCA(n_components=min(n, *latents.shape)).fit(latents)
    return (pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
            np.sqrt(pca.explained_variance_).astype(np.float32))


def path_by_value(latents: np.ndarray, values: np.ndarray, n_steps: int = 8
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Latents along a label's range: the mean latent of each of ``n_steps`` quantile bins.

    E.g. BraTS slice position, low to high: generating these walks through the brain. A mean
    of latents is shorter than its members, which does not matter to a generator that
    pixel-normalises its input. Returns (bin centre values, latents (n_steps, D)).
    """
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    bins = [b for b in np.array_split(order, min(n_steps, len(values))) if len(b)]
    centres = np.array([values[b].mean() for b in bins])
    return centres, np.stack([latents[b].mean(axis=0) for b in bins]).astype(np.float32)


def knn_scores(dataset: str, latents: np.ndarray, labels: pd.DataFrame,
               pixels: np.ndarray) -> dict[str, dict[str, float]]:
    """Each label predicted from its 5 nearest latents, and the control on raw pixels.

    ROP: laterality and (where labelled) plus severity (accuracy vs chance). BraTS: tumour
    presence (accuracy) and slice position (Spearman). A label of one class only gets the
    reason instead of an accuracy. The last row predicts the label Figure 5 is coloured by
    (laterality, slice position) from the nearest raw images (``pixels``, one row per image)
    instead: a latent space where that label is "primary" should do at least as well as the
    pixels, with 128 numbers instead of thousands.
    """
    if dataset == "rop":
        scores = {"laterality (OD/OS)": _knn_or_why_not(latents, labels["laterality"])}
        if "plus_severity" in labels:  # a phantom's label; a user's folder may not have it
            scores["plus severity"] = _knn_or_why_not(latents, labels["plus_severity"])
        scores["laterality, on raw pixels (control)"] = _knn_or_why_not(pixels,
                                                                        labels["laterality"])
        return scores
    return {"tumour present": _knn_or_why_not(latents, labels["tumour_present"]),
            "slice position": knn_correlation(latents, labels["slice_position"]),
            "slice_position, on raw pixels (control)": knn_correlation(
                pixels, labels["slice_position"])}


def _knn_or_why_not(latents: np.ndarray, labels: pd.Series) -> dict[str, Any]:
    """``knn_accuracy``, or None with the reason when the images carry a single class (a
    user's folder of one eye only, or of slices that all show tumour)."""
    try:
        return knn_accuracy(latents, labels)
    except DataError as err:
        return {"accuracy": None, "chance": None, "why_not": str(err)}


def headline_scores(dataset: str, scores: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The numbers of ``knn_scores`` behind Figure 5, flat, for ``latent_space.json`` and the
    claims table.

    ROP: laterality accuracy (the paper's "right eye / left eye distinction is primary") and
    its chance level. BraTS: tumour-presence accuracy and the Spearman correlation of the
    slice position predicted from latent neighbours (the "traverse through the axial slices").
    """
    if dataset == "rop":
        knn, name = scores["laterality (OD/OS)"], "laterality"
        out = {"knn_laterality_accuracy": knn["accuracy"], "knn_laterality_chance": knn["chance"]}
    else:
        knn, name = scores["tumour present"], "tumour"
        out = {"knn_tumour_accuracy": knn["accuracy"], "knn_tumour_chance": knn["chance"],
               "knn_slice_position_spearman": scores["slice position"]["spearman"]}
    if knn.get("why_not"):  # the claims table prints the reason instead of a number
        out[f"knn_{name}_accuracy_missing"] = knn["why_not"]
    return out


def score_latent_space(run_dir: str | Path) -> dict[str, Any]:
    """The k-NN numbers behind Figure 5 for a run whose latents are encoded
    (``pggan encode``): ``knn_scores`` with its raw-pixel control, flattened by
    ``headline_scores``; written to ``latent_space.json`` and returned (``details`` holds
    every row).
    """
    run_dir = Path(run_dir)
    latents, labels = load_latents(run_dir)
    _, info = load_generator(run_dir)
    config: Config = info["config"]
    data = PreparedDataset(run_data_dir(run_dir, config))
    # the raw-pixel control at <= 64 px: it is about layout (which side the disc is on, the
    # slice level), and 512 px images of a whole training set would not fit in memory
    pixels = data.batch(labels["index"].to_numpy(), min(int(info["resolution"]),
                                                        PIXEL_CONTROL_RESOLUTION))
    pixels = pixels[:, :len(info["channels"])].reshape(len(pixels), -1)
    scores = knn_scores(config.data.dataset, latents, labels, pixels)
    result = {**headline_scores(config.data.dataset, scores), "details": scores}
    write_text_atomic(run_dir / "latent_space.json", json.dumps(result, indent=2))
    return result


def walk_path(dataset: str, latents: np.ndarray, labels: pd.DataFrame, n_steps: int = 8
              ) -> tuple[np.ndarray, list[str]]:
    """Latents to generate for a walk through the latent space, and a caption per step.

    BraTS: the mean latent of each of ``n_steps`` slice-position groups, bottom to top (the
    paper's "traverse through the axial slices"). ROP: the great circle from the mean right-eye
    latent to the mean left-eye latent.
    """
    if dataset == "brats":
        centres, path = path_by_value(latents, labels["slice_position"], n_steps)
        return path, [f"{c:.2f}" for c in centres]
    by_eye = {eye: latents[(labels["laterality"] == eye).to_numpy()].mean(axis=0)
              for eye in ("OD", "OS")}
    t = np.linspace(0, 1, n_steps)
    return slerp(by_eye["OD"], by_eye["OS"], t), [f"{v:.2f}" for v in t]
