"""Nearest-neighbour distances to the training set, for memorisation checks: generated->train should
not be smaller than held-out->train."""

from __future__ import annotations

import numpy as np
import torch

from pggan_core.errors import DataError
from pggan_core.measures import check_images

# bytes of one block of images in ``nearest_neighbours`` (float64): 32 images of 4 x 256^2, 8 of
# 4 x 512^2. Re-reading the query once per reference block costs a ``batch``-th of the distances
# themselves, so small blocks are cheap.
NN_BLOCK_BYTES = 64 * 2**20


def nearest_neighbours(query: np.ndarray, reference: np.ndarray,
                       batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each query image's L2 distance (pixel space, flattened) to its closest reference image, and
    that image's index: two (N_query,) arrays; DataError when the sets' image shapes differ. Chunked
    ``torch.cdist`` in float64 over blocks of ``batch`` x ``batch`` images (default: as many as fit
    ``NN_BLOCK_BYTES``) bounds memory at any resolution and set size (either set may be a
    ``store.ImageView``, read a block at a time); the winning distance is recomputed directly, so an
    exact copy gives exactly 0."""
    query = check_images(query, "nearest_neighbours query")
    reference = check_images(reference, "nearest_neighbours reference")
    if query.shape[1:] != reference.shape[1:]:
        raise DataError(f"nearest_neighbours: query images are {query.shape[1:]} but reference "
                        f"images are {reference.shape[1:]}; compare at the same resolution")
    if batch is None:
        batch = max(1, min(256, NN_BLOCK_BYTES // (8 * int(np.prod(query.shape[1:])))))

    def flat(images: np.ndarray, start: int) -> torch.Tensor:
        block = np.asarray(images[start:start + batch], dtype=np.float64)
        return torch.from_numpy(block.reshape(len(block), -1))

    best = np.full(len(query), np.inf)
    best_idx = np.zeros(len(query), dtype=np.int64)
    for r_start in range(0, len(reference), batch):
        r = flat(reference, r_start)
        for q_start in range(0, len(query), batch):
            q = flat(query, q_start)
            dist, idx = torch.cdist(q, r).min(dim=1)
            dist, idx = dist.numpy(), idx.numpy() + r_start
            rows = slice(q_start, q_start + len(q))
            better = dist < best[rows]
            best[rows] = np.where(better, dist, best[rows])
            best_idx[rows] = np.where(better, idx, best_idx[rows])
    distances = np.empty(len(query))
    for start in range(0, len(query), batch):
        rows = slice(start, start + batch)
        diff = flat(query, start).numpy() - np.asarray(reference[best_idx[rows]], np.float64
                                                       ).reshape(len(best_idx[rows]), -1)
        distances[rows] = np.sqrt(np.sum(diff * diff, axis=1))
    return distances, best_idx


def nearest_neighbour_distances(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``nearest_neighbours``' distances alone, (N_query,): generated images much closer to the
    training set than held-out ones are copies."""
    return nearest_neighbours(query, reference)[0]
