"""Is laterality primary? Figure 5's question asked of several attributes at once.

The paper says of its t-SNE that "a right eye / left eye distinction is primary" in the fundus
latent space. Primary among what? Each attribute (``LatentLabel.attributes``, e.g.
``fundus_attributes``) is read off each image by one rule, split at its median where continuous,
and scored in three views: ``encoded reals`` (the paper's encoder on the real training images:
Figure 5), ``E(G(z))`` (the encoder on generated images, its own training distribution) and ``z``
(those images' own latents: what a perfect encoder would return).

Every view is put on the unit sphere: the generator pixel-normalises its latent, so directions,
not lengths, are what it sees. Each (view, attribute) gets 5-NN accuracy against chance (the
majority class's share), a linear probe and the two groups' silhouette in the view's t-SNE plane.
A view's primary attribute leads both by silhouette and by 5-NN gain; if they disagree, none is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pggan_core.data.store import box_downsample
from pggan_core.errors import DataError
from pggan_core.generate import images_from_latents
from pggan_core.latent.encoder import encode
from pggan_core.latent.probes import (
    draw_latents,
    knn_accuracy,
    label_silhouette,
    laterality_from_disc,
    probe_accuracy,
    tsne_embedding,
    tumour_from_images,
)
from pggan_core.measures.global_structure import disc_centres

VIEWS = ("encoded reals", "E(G(z))", "z")


def _inside_mean(values: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Per-image mean of ``values`` (N, R, R) over ``region`` (N, R, R), 0 where empty."""
    counts = region.sum(axis=(1, 2))
    return np.where(counts > 0, (values * region).sum(axis=(1, 2)) / np.maximum(counts, 1), 0.0)


def fundus_attributes(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per fundus image (N, >=3, R, R) in [-1, 1]: laterality (1 for a right eye, disc in the
    right half: ``probes.laterality_from_disc``), brightness (mean grey in the field of view),
    colour balance (mean red / mean green there), disc height (``disc_centres``' row / height)
    and, with a vessel channel, vessel density (share of the field of view above its midpoint)."""
    unit = (np.asarray(images, np.float32) + 1.0) / 2.0
    red, green, blue = unit[:, 0], unit[:, 1], unit[:, 2]
    field = red > 20 / 255  # the red rule loaders apply to a photograph without a FOV mask
    disc_row = disc_centres(images)[:, 0]
    out = {"laterality": (laterality_from_disc(images) == "OD").astype(np.float32),
           "brightness": _inside_mean((red + green + blue) / 3, field),
           "colour balance": _inside_mean(red, field) / np.maximum(_inside_mean(green, field),
                                                                   1e-3),
           "disc height": disc_row / unit.shape[-1]}
    if unit.shape[1] > 3:
        out["vessel density"] = _inside_mean((unit[:, 3] > 0.5).astype(np.float32), field)
    return out


def mri_attributes(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per MR slice (N, >=4, R, R) in [-1, 1] (T1, T1c, T2, FLAIR, labels): brain area (share in
    the head: the slice level's proxy, largest mid-brain), mean FLAIR and T1c in the brain and,
    with labels, tumour presence (``probes.tumour_from_images``) and size (share labelled)."""
    images = np.asarray(images, np.float32)
    background = images[:, :4].min(axis=(2, 3), keepdims=True)  # zero signal outside the head
    brain = (images[:, :4] > background + 0.02).any(axis=1)
    out = {"brain area": brain.mean(axis=(1, 2)),
           "FLAIR level": _inside_mean(images[:, 3], brain),
           "T1c level": _inside_mean(images[:, 1], brain)}
    if images.shape[1] > 4:
        out = {"tumour presence": tumour_from_images(images).astype(np.float32),
               "tumour size": (images[:, 4:] > 0).any(axis=1).mean(axis=(1, 2)), **out}
    return out


def two_groups(values: np.ndarray) -> np.ndarray:
    """An attribute as groups 0/1: as is when it takes two values, else split at its median (ties
    up, or down when the median is the minimum, as for tumour size: most slices have none), so a
    continuous attribute is asked laterality's yes/no question."""
    values = np.asarray(values, np.float64)
    if len(np.unique(values)) <= 2:
        return (values == values.max()).astype(int)
    median = np.median(values)
    return (values > median if median == values.min() else values >= median).astype(int)


def attribute_scores(views: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]],
                     perplexity: float = 30.0, seed: int = 0,
                     groups: dict[str, np.ndarray | None] | None = None
                     ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """A row per (view, attribute): ``knn`` (5-NN accuracy), ``chance``, ``knn_gain``, ``probe``,
    ``silhouette`` (in the t-SNE plane), all None with ``why_not`` for one group; and each view's
    plane. ``views``: name -> (latents, attributes); ``groups``: name -> each image's item, kept
    whole by the folds (a slice's subject)."""
    table, planes = [], {}
    for view, (latents, attributes) in views.items():
        latents = np.asarray(latents, np.float64)
        sphere = latents / np.maximum(np.linalg.norm(latents, axis=1, keepdims=True), 1e-12)
        plane = planes[view] = tsne_embedding(sphere, perplexity, seed)
        item = (groups or {}).get(view)
        for name, values in attributes.items():
            labels = two_groups(values)
            row: dict[str, Any] = {"view": view, "attribute": name, "n": len(labels)}
            try:
                knn = knn_accuracy(sphere, labels, seed=seed, groups=item)
                row |= {"knn": knn["accuracy"], "chance": knn["chance"],
                        "knn_gain": knn["accuracy"] - knn["chance"],
                        "probe": probe_accuracy(sphere, labels, seed=seed,
                                                groups=item)["accuracy"],
                        "silhouette": label_silhouette(plane, labels)}
            except DataError as err:  # one group only (every generated slice with tumour)
                row |= {"knn": None, "chance": None, "knn_gain": None, "probe": None,
                        "silhouette": None, "why_not": str(err)}
            table.append(row)
    return pd.DataFrame(table), planes


def score_records(scores: pd.DataFrame) -> list[dict[str, Any]]:
    """``attribute_scores``' table as JSON-ready rows: plain numbers, no NaN cells."""
    return [{key: (value.item() if isinstance(value, np.generic) else value)
             for key, value in row.items() if not (isinstance(value, float) and np.isnan(value))}
            for row in scores.to_dict("records")]


def primary_attribute(scores: pd.DataFrame, view: str) -> dict[str, Any]:
    """The attribute ``view`` separates first: ``by_silhouette`` and ``by_knn_gain`` (each
    measure's leader) and ``primary`` (their common leader, None when they differ)."""
    rows = scores[(scores["view"] == view) & scores["silhouette"].notna()]
    if rows.empty:
        return {"view": view, "by_silhouette": None, "by_knn_gain": None, "primary": None}
    by_silhouette = rows.loc[rows["silhouette"].astype(float).idxmax(), "attribute"]
    by_gain = rows.loc[rows["knn_gain"].astype(float).idxmax(), "attribute"]
    return {"view": view, "by_silhouette": by_silhouette, "by_knn_gain": by_gain,
            "primary": by_silhouette if by_silhouette == by_gain else None}


def attribute_verdict(scores: pd.DataFrame, label: str) -> str:
    """Figure 5's answer in a sentence: which attribute each view separates first, and whether
    that is the paper's ``label`` (laterality) in the encoded reals, the paper's view."""
    parts = []
    for view in VIEWS:
        lead = primary_attribute(scores, view)
        if lead["by_silhouette"] is None:
            continue
        parts.append(f"{view}: {lead['primary']}" if lead["primary"] is not None else
                     f"{view}: none ({lead['by_silhouette']} by silhouette, "
                     f"{lead['by_knn_gain']} by 5-NN gain)")
    paper_view = primary_attribute(scores, VIEWS[0])["primary"]
    answer = ("yes" if paper_view == label else
              f"no: {paper_view} is primary here" if paper_view is not None else
              "no attribute is primary here")
    return f"Is {label} primary in the encoded reals? {answer}. First separated — " + \
        "; ".join(parts) + "."


def attribute_views(G: Any, encoder: Any, attributes: Any, reals: np.ndarray,
                    real_latents: np.ndarray, resolution: int, alpha: float, latent_dim: int,
                    n: int, seed: int, read_at: int
                    ) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """The ``VIEWS``: ``real_latents`` of ``reals`` (at ``read_at`` px), and ``n`` images drawn from
    ``probes.draw_latents(n, latent_dim, seed)`` through ``encoder`` and their own z;
    ``attributes`` (``fundus_attributes``...) reads those box-filtered to ``read_at`` px too."""
    z = draw_latents(n, latent_dim, seed)
    generated = np.clip(images_from_latents(G, z, resolution, alpha), -1.0, 1.0)
    encoded = encode(encoder, generated)
    while generated.shape[-1] > read_at:
        generated = box_downsample(generated)
    of_generated = attributes(generated)
    return {VIEWS[0]: (real_latents, attributes(reals)), VIEWS[1]: (encoded, of_generated),
            VIEWS[2]: (z.numpy(), of_generated)}
