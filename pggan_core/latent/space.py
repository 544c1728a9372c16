"""What the encoded latents show (Figure 5): t-SNE, cross-validated k-NN and linear-probe scores
that put numbers on it (each beside the same score on raw pixels), spherical interpolation,
principal directions and walks through the latent space.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.metrics import r2_score
from sklearn.model_selection import cross_val_predict
from sklearn.neighbors import KNeighborsRegressor

from pggan_core.atomic import write_text_atomic
from pggan_core.data.store import sha256_of
from pggan_core.datasets import hook
from pggan_core.device import pick_device
from pggan_core.errors import DataError
from pggan_core.latent.attributes import (
    VIEWS,
    attribute_scores,
    attribute_verdict,
    attribute_views,
    primary_attribute,
    score_records,
)
from pggan_core.latent.encoder import (
    INDOMAIN_LATENTS_FILE,
    LATENTS_FILE,
    load_encoder,
    load_latents,
)
from pggan_core.latent.probes import (
    GENERATED_IMAGES,
    KNN_K,
    fold_indices,
    generated_z_probe,
    knn_accuracy,
    label_rule_agreement,
    label_silhouette,
    latent_label,
    probe_accuracy,
    tsne_embedding,
)
from pggan_core.provenance import code_that_ran, derivation
from pggan_core.runs.folder import open_run
from pggan_core.training.checkpoint import weights_fingerprint

PIXEL_CONTROL_RESOLUTION = 64  # the raw-pixel controls never read larger images
TIE_MARGIN = 0.02  # latents and pixels scoring within this of each other carry a label equally
# which encoder's latents -> (their file, the scores' file)
LATENT_SOURCES = {"paper": (LATENTS_FILE, "latent_space.json"),
                  "indomain": (INDOMAIN_LATENTS_FILE, "latent_space_indomain.json")}


def knn_correlation(latents: np.ndarray, values: np.ndarray | pd.Series,
                    groups: np.ndarray | pd.Series | None = None) -> dict[str, Any]:
    """How well a continuous label (e.g. slice position) follows from latent neighbours: each
    value predicted as the mean of its ``KNN_K`` nearest latents in other folds (grouped by
    ``groups``); Spearman and R² of prediction vs truth (0: chance), ``n``, ``k``, ``folds``,
    ``split``. DataError below 4 latents."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 4:
        raise DataError(f"k-NN correlation needs at least 4 latents, got {len(values)}")
    splits, split = fold_indices(values, groups, stratify=False)
    k = int(min(KNN_K, *(len(train) - 1 for train, _ in splits)))
    predicted = cross_val_predict(KNeighborsRegressor(k), latents, values, cv=splits)
    return {"spearman": float(spearmanr(values, predicted).statistic),
            "r2": float(r2_score(values, predicted)), "n": len(values), "k": k,
            "folds": len(splits), "split": split}


def slerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation from ``z0`` (t = 0) to ``z1`` (t = 1), (len(t), D). The great
    circle keeps latents at a typical length, where a line would cross the low-norm middle that
    Gaussian latents rarely visit (White 2016). Lengths go linearly; near-parallel ends: a line."""
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
    """(bin centre values, latents (n_steps, D)): the mean latent of each of ``n_steps`` quantile
    bins of ``values``, e.g. BraTS slice position, low to high: a walk through the brain. A mean is
    shorter than its members, which a generator that pixel-normalises z ignores."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    bins = [b for b in np.array_split(order, min(n_steps, len(values))) if len(b)]
    centres = np.array([values[b].mean() for b in bins])
    return centres, np.stack([latents[b].mean(axis=0) for b in bins]).astype(np.float32)


def rows(dataset: str) -> dict[str, str]:
    """``latent_space.json``'s ``details`` rows (``knn``, ``knn_pixels``, ``probe``,
    ``probe_pixels``), the label's key stem (``name``) and ``column``, from its ``LatentLabel``."""
    label = latent_label(dataset)
    return {"name": label.key, "column": label.column, "knn": label.knn_row,
            "knn_pixels": f"{label.rows}, on raw pixels (control)",
            "probe": f"{label.rows}, linear probe",
            "probe_pixels": f"{label.rows}, linear probe on raw pixels (control)"}


def position_rows(position: str) -> tuple[str, str]:
    """The k-NN Spearman rows of ``LatentLabel.position``: on latents, on raw pixels (control)."""
    words = position.replace("_", " ")
    return words, f"{words}, on raw pixels (control)"


def fold_groups(dataset: str, labels: pd.DataFrame) -> np.ndarray | None:
    """Each image's item for grouped folds (``LatentLabel.group``: a BraTS slice's subject); None
    where each image is its own item or the table lacks the column."""
    column = latent_label(dataset).group
    return labels[column].to_numpy() if column is not None and column in labels else None


def knn_scores(dataset: str, latents: np.ndarray, labels: pd.DataFrame, pixels: np.ndarray,
               groups: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    """``LatentLabel``'s labels (``knn_row``, ``more_knn``, ``position``) from the nearest latents;
    control: main label and position from the nearest raw ``pixels`` (a row per image), which a
    space where the label is "primary" should match with 32-128 numbers. One class: ``why_not``."""
    label, names = latent_label(dataset), rows(dataset)
    scores = {names["knn"]: _or_why_not(knn_accuracy, latents, labels[label.column], groups)}
    for row, column in label.more_knn:
        if column in labels:  # a phantom's label (plus severity); a user's folder may lack it
            scores[row] = _or_why_not(knn_accuracy, latents, labels[column], groups)
    if label.position is not None:
        scores[position_rows(label.position)[0]] = knn_correlation(latents, labels[label.position],
                                                   groups=groups)
    scores[names["knn_pixels"]] = _or_why_not(knn_accuracy, pixels, labels[label.column],
                                              groups)
    if label.position is not None:
        scores[position_rows(label.position)[1]] = knn_correlation(pixels, labels[label.position],
                                                   groups=groups)
    return scores


def probe_scores(dataset: str, latents: np.ndarray, labels: pd.DataFrame, pixels: np.ndarray,
                 groups: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    """``probe_accuracy`` of the main label on latents and raw pixels, ``knn_scores``' folds: k-NN
    asks whether neighbours share the label, the probe whether one direction separates it."""
    names = rows(dataset)
    column = names["column"]
    return {names["probe"]: _or_why_not(probe_accuracy, latents, labels[column], groups),
            names["probe_pixels"]: _or_why_not(probe_accuracy, pixels, labels[column], groups)}


def _or_why_not(score: Callable[..., dict[str, Any]], features: np.ndarray,
                labels: pd.Series, groups: np.ndarray | None) -> dict[str, Any]:
    """``score``, or None with ``why_not`` for a single class (one eye only, all tumour)."""
    try:
        return score(features, labels, groups=groups)
    except DataError as err:
        return {"accuracy": None, "chance": None, "why_not": str(err)}


def tsne_silhouettes(dataset: str, latents: np.ndarray, pixels: np.ndarray,
                     labels: pd.DataFrame, perplexity: float, seed: int) -> dict[str, Any]:
    """The main label's silhouette in the t-SNE plane of ``latents`` (Figure 5's) and of raw
    ``pixels`` (control; both None with ``why_not`` for one class), ``label``, ``perplexity``
    (after ``tsne_embedding``'s cap) and ``seed``."""
    column = latent_label(dataset).column
    out: dict[str, Any] = {"label": column, "seed": seed,
                           "perplexity": float(min(perplexity, (len(latents) - 1) / 3))}
    try:
        for name, features in (("latents", latents), ("pixels", pixels)):
            out[name] = label_silhouette(tsne_embedding(features, perplexity, seed),
                                         labels[column])
    except DataError as err:
        out |= {"latents": None, "pixels": None, "why_not": str(err)}
    return out


def headline_scores(dataset: str, scores: dict[str, dict[str, Any]],
                    tsne: dict[str, Any] | None = None,
                    generated: dict[str, Any] | None = None) -> dict[str, Any]:
    """Figure 5's numbers, flat, for ``latent_space.json`` and the claims table: the main label's
    k-NN accuracy and chance (fundus laterality, the paper's "right eye / left eye distinction is
    primary"; MRI tumour presence) and the position's Spearman (MRI's "traverse through the axial
    slices"), each beside its raw-pixel control (``*_pixels``); the probe (``probe_*``), the t-SNE
    silhouettes (``tsne``) and the probe on generated images' true z (``generated``)."""
    names = rows(dataset)
    name, position = names["name"], latent_label(dataset).position
    knn = scores[names["knn"]]
    out = {f"knn_{name}_accuracy": knn["accuracy"], f"knn_{name}_chance": knn["chance"]}
    if position is not None:
        on_latents, on_pixels = position_rows(position)
        out[f"knn_{position}_spearman"] = scores[on_latents]["spearman"]
        pixel_row = scores.get(on_pixels)
        if pixel_row is not None:
            out[f"knn_{position}_spearman_pixels"] = pixel_row["spearman"]
    if names["knn_pixels"] in scores:
        out[f"knn_{name}_pixels"] = scores[names["knn_pixels"]]["accuracy"]
    if names["probe"] in scores:
        out[f"probe_{name}_accuracy"] = scores[names["probe"]]["accuracy"]
        out[f"probe_{name}_pixels"] = scores[names["probe_pixels"]]["accuracy"]
    if tsne is not None:
        out[f"tsne_{name}_silhouette"] = tsne["latents"]
        out[f"tsne_{name}_silhouette_pixels"] = tsne["pixels"]
    if generated is not None:
        out |= {f"probe_{name}_generated_z": generated["accuracy"],
                f"probe_{name}_generated_z_chance": generated["chance"],
                f"probe_{name}_generated_z_n": generated.get("n", 0),
                "generated_images": generated["generated_images"]}
    if knn.get("why_not"):  # the claims table prints the reason instead of a number
        out[f"knn_{name}_accuracy_missing"] = knn["why_not"]
    return out


def score_latent_space(run_dir: str | Path, seed: int = 0,
                       n_generated: int = GENERATED_IMAGES, encoder: str = "paper"
                       ) -> dict[str, Any]:
    """Figure 5's numbers for a run whose latents are encoded (``pggan encode``; with
    ``encoder="indomain"``, ``pggan invert``), written to ``LATENT_SOURCES``' file and returned:
    on the encoded training images and, as control, their raw pixels (all channels, at most
    ``PIXEL_CONTROL_RESOLUTION`` px), same folds (``fold_groups``): ``knn_scores``,
    ``probe_scores``, ``tsne_silhouettes`` (``eval.tsne_perplexity``). Then
    ``probes.generated_z_probe`` on ``n_generated`` images with its label rule's agreement on the
    training images and, for the paper's encoder, the attribute table (``latent.attributes``).
    Flat keys from ``headline_scores``; ``details`` holds every k-NN and probe row."""
    run_dir = Path(run_dir)
    latents_file, scores_file = LATENT_SOURCES[encoder]
    latents, labels = load_latents(run_dir, latents_file)
    run = open_run(run_dir)
    info, config, data = run.facts, run.config, run.data
    dataset, channels = config.data.dataset, len(run.channels)
    device = pick_device(config.train.device)
    G, drawn_at, alpha = run.G.to(device), int(info["resolution"]), float(info["alpha"])
    with code_that_ran() as ran:  # what the scores derive from, recorded below
        # pixels at <= 64 px: the control is about layout (disc side, slice level, a lit label
        # channel), and a whole training set at 512 px would not fit in memory
        resolution = min(drawn_at, PIXEL_CONTROL_RESOLUTION)
        images = data.batch(labels["index"].to_numpy(), resolution)[:, :channels]
        pixels = images.reshape(len(images), -1)
        groups = fold_groups(dataset, labels)
        scores = {**knn_scores(dataset, latents, labels, pixels, groups),
                  **probe_scores(dataset, latents, labels, pixels, groups)}
        tsne = tsne_silhouettes(dataset, latents, pixels, labels, config.eval.tsne_perplexity, seed)
        generated = {**generated_z_probe(G, dataset, drawn_at, config.model.latent_dim, alpha,
                                         n_generated, seed, label_resolution=resolution),
                     "label_rule_agreement_on_reals": label_rule_agreement(dataset, images, labels)}
        label = latent_label(dataset)
        attributes = None
        if encoder == "paper" and label.attributes is not None:  # Figure 5: is the label primary?
            paper_encoder = load_encoder(run_dir, device)
            views = attribute_views(G, paper_encoder, hook(label.attributes), images, latents,
                                    drawn_at, alpha, config.model.latent_dim, n_generated, seed,
                                    resolution)
            table, planes = attribute_scores(views, config.eval.tsne_perplexity, seed,
                                             {VIEWS[0]: groups})
            attributes = {"label": label.words, "scores": score_records(table),
                          # Figure 5's plane on the sphere, coloured by each attribute on its page
                          "plane": np.round(planes[VIEWS[0]], 3).tolist(),
                          "values": {name: np.round(values, 4).tolist()
                                     for name, values in views[VIEWS[0]][1].items()},
                          "primary": {v: primary_attribute(table, v) for v in VIEWS},
                          "verdict": attribute_verdict(table, label.words),
                          "views": "on the unit sphere; E(G(z)) and z: "
                                   f"{n_generated} generated images, seed {seed}"}
        main_row = scores[rows(dataset)["knn"]]
        downsampled = (f", box-filtered down from the encoder's {info['resolution']} px"
                       if resolution < drawn_at else ", as the encoder read them")
        result = {**headline_scores(dataset, scores, tsne, generated),
                  "folds": main_row.get("split", main_row.get("why_not")),
                  "pixels": f"all {channels} channels of the prepared training images at "
                            f"{resolution} px ({pixels.shape[1]} numbers per image){downsampled}",
                  "details": scores, "tsne": tsne, "generated_z": generated,
                  **({"attributes": attributes,
                      f"{label.key}_primary": attributes["primary"][VIEWS[0]]["primary"]
                      == label.words} if attributes is not None else {})}
    result["derivation"] = derivation("latent_space", weights_fingerprint(G), config, ran,
                                      {latents_file: sha256_of(run_dir / latents_file)})
    write_text_atomic(run_dir / scores_file, json.dumps(result, indent=2))
    return result


def walk_path(dataset: str, latents: np.ndarray, labels: pd.DataFrame, n_steps: int = 8
              ) -> tuple[np.ndarray, list[str]]:
    """Latents and captions of a walk: BraTS, the mean latents of ``n_steps`` slice-position groups
    bottom to top (the paper's "traverse through the axial slices"); ROP, the great circle from the
    mean right-eye to the mean left-eye latent; DataError if ``LatentLabel`` names neither."""
    label = latent_label(dataset)
    if label.position is not None:
        centres, path = path_by_value(latents, labels[label.position], n_steps)
        return path, [f"{c:.2f}" for c in centres]
    if label.walk_between is None:
        raise DataError(f"dataset {dataset!r}: its LatentLabel names neither a position nor "
                        "two classes to walk between")
    first, last = (latents[(labels[label.column] == value).to_numpy()].mean(axis=0)
                   for value in label.walk_between)
    t = np.linspace(0, 1, n_steps)
    return slerp(first, last, t), [f"{v:.2f}" for v in t]
