"""Is the generator handing back its training images? A per-image memorisation report.

A median distance to the training set cannot see a generator that copies one image in fifty, and
pixel L2 misses a copy shifted by two pixels or made a tenth brighter. So every generated image gets
two distances to its nearest training image, ``pixel`` (L2 over the image channels) and
``invariant`` (``invariant_matrix``), each set against what an image *not* trained on looks like:
every training image's distance to its nearest *other* training image (for MRI, the nearest slice of
another subject), a leave-one-out reference as large as the training set. A generated image is
flagged when, in either space, it is closer to a training image than all but the closest
``FLAG_QUANTILE`` of that reference.

The held-out real images, which set no threshold, are flagged the same way: the rate of a generator
that copies nothing. Too few to carry a 1 % rate (60 photographs, 48 slices at the demo profile),
they are joined by the training images judged as unseen in turn (``unseen_flags``). Every flagged
share comes with a Clopper-Pearson interval. Images are compared at ``COMPARED_RESOLUTION`` px at
most.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import binomtest

from pggan_core.measures.neighbours import nearest_neighbours

MAX_SHIFT = 2  # px at the compared resolution: the shifts a "shifted copy" may have
# flagged: closer than all but the closest 0.5 % of the reference in either of the two spaces, so
# that an image copying nothing is flagged about 1 % of the time
FLAG_QUANTILE = 0.005
CV_FOLDS = 5  # training subjects left out in turn: unseen real images as many as trained on


def standardised(images: np.ndarray) -> np.ndarray:
    """Images (N, ...) flattened and standardised per image (zero mean, unit norm): a
    brightness or contrast change of a copy does not move it."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)


def _crop(images: np.ndarray, dy: int, dx: int, margin: int) -> np.ndarray:
    """Centre of images (..., R, R) less ``margin`` px each side, moved by (dy, dx)."""
    size = images.shape[-1]
    return images[..., margin + dy:size - margin + dy, margin + dx:size - margin + dx]


def invariant_matrix(query: np.ndarray, reference: np.ndarray, max_shift: int = MAX_SHIFT,
                     batch: int = 256) -> np.ndarray:
    """(N, M): for each query image (N, C, R, R) and reference image, 1 - their largest normalised
    correlation over every shift of up to ``max_shift`` px and a left-right mirror (queries read
    ``batch`` at a time). Each image is compared in its centre (``max_shift`` px off each side, so a
    shifted view never leaves the image), standardised (a brighter or lower-contrast copy is the
    same image), less what every reference image shares (their standardised mean, such as the
    fundus's round field of view, which would make any two images alike), and standardised again."""
    query, reference = np.asarray(query, np.float32), np.asarray(reference, np.float32)
    common = standardised(_crop(reference, 0, 0, max_shift)).mean(axis=0)

    def features(images: np.ndarray, dy: int = 0, dx: int = 0) -> np.ndarray:
        return standardised(standardised(_crop(images, dy, dx, max_shift)) - common
                            ).astype(np.float32)

    ref_t = features(reference).T
    best = np.full((len(query), len(reference)), -np.inf)
    shifts = range(-max_shift, max_shift + 1)
    for start in range(0, len(query), batch):
        rows = slice(start, start + batch)
        block = query[rows]
        for view in (block, block[..., ::-1]):  # as it is, and mirrored left-right
            for dy in shifts:
                for dx in shifts:
                    np.maximum(best[rows], features(view, dy, dx) @ ref_t, out=best[rows])
    return 1.0 - best


def _pixel_matrix(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N, M) pixel L2 distances between two sets of images."""
    a = np.asarray(query, np.float64).reshape(len(query), -1)
    b = np.asarray(reference, np.float64).reshape(len(reference), -1)
    squared = (a ** 2).sum(axis=1)[:, None] + (b ** 2).sum(axis=1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0))


def _nearest(matrix: np.ndarray, exclude: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's smallest distance and its column, leaving out the ``exclude``d pairs."""
    if exclude is not None:
        matrix = np.where(exclude, np.inf, matrix)
    index = matrix.argmin(axis=1)
    return matrix[np.arange(len(matrix)), index], index


def invariant_distances(query: np.ndarray, reference: np.ndarray,
                        exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each query image's nearest reference image in ``invariant_matrix``'s distance, and its index;
    ``exclude`` (N, M) bool marks pairs that may not match (an image with itself, a slice with its
    own subject's)."""
    return _nearest(invariant_matrix(query, reference), exclude)


def _exclusion(n: int, groups: np.ndarray | None) -> np.ndarray:
    """(n, n) bool: an image may not match itself, nor an image of its own group."""
    if groups is None:
        return np.eye(n, dtype=bool)
    groups = np.asarray(groups)
    return groups[:, None] == groups[None, :]


def unseen_flags(matrices: dict[str, np.ndarray], groups: np.ndarray | None,
                 quantile: float = FLAG_QUANTILE, folds: int = CV_FOLDS, seed: int = 0
                 ) -> np.ndarray:
    """Training images judged as images the generator never saw, a bool each: their subjects
    (``groups``; None: each image its own) split into ``folds`` at random, each fold against the
    others with thresholds at ``quantile`` of those folds' own leave-one-out reference, in each
    space of ``matrices`` (training x training distances). Empty with fewer than three subjects (the
    rest of a fold would hold no pair to set a threshold)."""
    n = len(next(iter(matrices.values())))
    groups = np.arange(n) if groups is None else np.asarray(groups)
    subjects = np.unique(groups)
    if len(subjects) < 3:
        return np.zeros(0, bool)
    folds = min(folds, len(subjects))
    fold_of = dict(zip(np.random.default_rng(seed).permutation(subjects),
                       np.arange(len(subjects)) % folds, strict=True))
    fold = np.array([fold_of[g] for g in groups])
    same = _exclusion(n, groups)
    flags = np.zeros(n, bool)
    for f in range(folds):
        out, rest = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        for matrix in matrices.values():
            reference = _nearest(matrix[np.ix_(rest, rest)], same[np.ix_(rest, rest)])[0]
            nearest = matrix[np.ix_(out, rest)].min(axis=1)
            flags[out] |= nearest < np.quantile(reference, quantile)
    return flags


def share_with_interval(flags: np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """The flagged share of a bool array with its Clopper-Pearson interval."""
    k, n = int(np.sum(flags)), len(flags)
    if n == 0:
        return {"flagged": 0, "n": 0, "share": None, "interval": [None, None]}
    low, high = binomtest(k, n).proportion_ci(confidence, method="exact")
    return {"flagged": k, "n": n, "share": k / n, "interval": [float(low), float(high)]}


def memorisation_report(generated: np.ndarray, train: np.ndarray, heldout: np.ndarray,
                        train_groups: np.ndarray | None = None,
                        quantile: float = FLAG_QUANTILE) -> dict[str, Any]:
    """The report (see the module docstring) on generated images (N, C, R, R, image channels): the
    leave-one-out reference (``train_groups``: each training image's subject, so a slice never
    matches its own), thresholds at ``quantile``, flagged shares with intervals, and each image's
    nearest training image and distances."""
    exclude = _exclusion(len(train), train_groups)
    matrices = {"pixel": _pixel_matrix(train, train), "invariant": invariant_matrix(train, train)}
    reference = {space: _nearest(matrix, exclude)[0] for space, matrix in matrices.items()}
    thresholds = {space: float(np.quantile(values, quantile))
                  for space, values in reference.items()}
    unseen = unseen_flags(matrices, train_groups, quantile)

    def read(images: np.ndarray) -> dict[str, Any]:
        pixel, pixel_index = nearest_neighbours(images, train)
        invariant, invariant_index = invariant_distances(images, train)
        flags = (pixel < thresholds["pixel"]) | (invariant < thresholds["invariant"])
        return {"pixel": pixel, "pixel_index": pixel_index, "invariant": invariant,
                "invariant_index": invariant_index, "flagged": flags}

    generated_read, heldout_read = read(generated), read(heldout)
    return {"quantile": quantile, "max_shift": MAX_SHIFT, "thresholds": thresholds,
            "reference": {space: values.tolist() for space, values in reference.items()},
            "generated": {key: value.tolist() for key, value in generated_read.items()},
            "heldout": {key: value.tolist() for key, value in heldout_read.items()},
            "generated_flagged": share_with_interval(generated_read["flagged"]),
            "heldout_flagged": share_with_interval(heldout_read["flagged"]),
            "unseen_flagged": {**share_with_interval(unseen), "folds": CV_FOLDS}}


SETS = (("generated", "generated_flagged"), ("held-out real", "heldout_flagged"),
        ("unseen real (left out in turn)", "unseen_flagged"))


PLANTED = ("exact", "mirrored", "shifted 2 px", "brighter 10 %", "darker 10 %", "noise",
           "JPEG q75")


def planted_copies(images: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """Copies of images (N, C, R, R) in [-1, 1] as a copying generator might hand them back:
    ``PLANTED`` names the kinds (the JPEG copy compresses the first three channels as one
    colour image, and each further channel as a grey one)."""
    import cv2

    images = np.asarray(images, np.float32)
    if kind == "exact":
        return images.copy()
    if kind == "mirrored":
        return images[..., ::-1].copy()
    if kind == "shifted 2 px":  # the border that comes in is the image's own edge, repeated
        padded = np.pad(images, ((0, 0), (0, 0), (2, 0), (2, 0)), mode="edge")
        return padded[..., :images.shape[-2], :images.shape[-1]].copy()
    if kind in ("brighter 10 %", "darker 10 %"):
        gain = 1.1 if kind.startswith("brighter") else 0.9
        return np.clip((images + 1) * gain - 1, -1, 1)
    if kind == "noise":
        rng = np.random.default_rng(seed)
        return np.clip(images + rng.normal(0, 0.05, images.shape).astype(np.float32), -1, 1)
    if kind == "JPEG q75":
        out = np.empty_like(images)
        for i, image in enumerate(np.clip((images + 1) * 127.5, 0, 255).astype(np.uint8)):
            planes = [image[:3].transpose(1, 2, 0)] if len(image) >= 3 else []
            planes += [image[c] for c in range(3 if len(image) >= 3 else 0, len(image))]
            decoded = [cv2.imdecode(cv2.imencode(".jpg", p, [cv2.IMWRITE_JPEG_QUALITY, 75])[1],
                                    cv2.IMREAD_UNCHANGED) for p in planes]
            stacked = ([decoded[0].transpose(2, 0, 1)] if len(image) >= 3 else []) + \
                [d[None] for d in decoded[1 if len(image) >= 3 else 0:]]
            out[i] = np.concatenate(stacked).astype(np.float32) / 127.5 - 1
        return out
    raise ValueError(f"unknown planted copy {kind!r}: choose one of {', '.join(PLANTED)}")


COMPARED_RESOLUTION = 32  # px: images are compared at most this large (a copy is a copy here)


def at_resolution(images: Any, channels: int, resolution: int = COMPARED_RESOLUTION,
                  block: int = 64) -> np.ndarray:
    """The first ``channels`` of images (N, C, R, R), an array or a lazy view, box-filtered to at
    most ``resolution`` px, read ``block`` at a time (a 512 px training set would not fit in memory
    whole)."""
    parts = []
    for start in range(0, len(images), block):
        part = np.asarray(images[start:start + block], np.float32)[:, :channels]
        factor = max(part.shape[-1] // resolution, 1)
        if factor > 1:
            n, c, size = part.shape[0], part.shape[1], part.shape[-1] // factor
            part = part.reshape(n, c, size, factor, size, factor).mean(axis=(3, 5))
        parts.append(part)
    return np.concatenate(parts) if parts else np.zeros((0, channels, resolution, resolution),
                                                        np.float32)


def planted_check(originals: np.ndarray, train: np.ndarray, thresholds: dict[str, float],
                  seed: int = 0) -> dict[str, Any]:
    """Does the detector find copies? The share of each kind of ``PLANTED`` copy of ``originals``
    (training images (N, C, R, R) at the generator's resolution, reduced to ``train``'s as generated
    images are) that ``thresholds`` flag against ``train``."""
    out = {}
    for kind in PLANTED:
        copies = at_resolution(planted_copies(originals, kind, seed), originals.shape[1],
                               train.shape[-1])
        pixel = nearest_neighbours(copies, train)[0]
        invariant = invariant_distances(copies, train)[0]
        flags = (pixel < thresholds["pixel"]) | (invariant < thresholds["invariant"])
        out[kind] = float(flags.mean())
    return {"n": len(originals), "found": out}


def closest_pairs(report: dict[str, Any], n: int = 8) -> list[dict[str, Any]]:
    """The ``n`` generated images nearest a training image, in invariant space (where shifted,
    mirrored and brightened copies are near too): their index, their nearest training image
    and both distances, closest first."""
    invariant = np.asarray(report["generated"]["invariant"])
    order = np.argsort(invariant)[:n]
    return [{"generated": int(i), "train": int(report["generated"]["invariant_index"][i]),
             "invariant": float(invariant[i]),
             "pixel": float(report["generated"]["pixel"][i]),
             "flagged": bool(report["generated"]["flagged"][i])} for i in order]
