"""Pictures: (C, H, W) arrays in [-1, 1] as panels a clinician can read.

A fundus sample is its RGB photograph beside its vessel map; an MR sample a 2x2 mosaic laid out as
the paper's Figure 2 (clockwise from top-right: T2, post-contrast T1, FLAIR, pre-contrast T1: rows
[T1, T2], [FLAIR, T1c]) beside FLAIR with the tumour labels overlaid (1 NCR/NET red, 2 oedema
green, 4 enhancing yellow, as in BraTS figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pggan_core.atomic import atomic_file
from pggan_core.datasets import dataset_spec, hook

# BraTS convention colours (RGB, 0..1) for labels 1, 2, 4
LABEL_COLOURS = np.array([[0.90, 0.15, 0.15], [0.20, 0.80, 0.25], [1.00, 0.85, 0.10]])


def _unit(x: np.ndarray) -> np.ndarray:
    """[-1, 1] -> [0, 1], clipped."""
    return np.clip((x + 1.0) / 2.0, 0.0, 1.0)


def fundus_panels(image: np.ndarray) -> list[np.ndarray]:
    """RGB photograph and (if present) the vessel map, each (H, W, 3) float in [0, 1]."""
    rgb = _unit(image[:3]).transpose(1, 2, 0)
    panels = [rgb]
    if image.shape[0] > 3:
        panels.append(np.repeat(_unit(image[3])[..., None], 3, axis=2))
    return panels


def mr_panels(image: np.ndarray) -> list[np.ndarray]:
    """A 2x2 mosaic of the four modalities and (if present) FLAIR with the label overlay."""
    modalities = [np.repeat(_unit(m)[..., None], 3, axis=2) for m in image[:4]]
    t1, t1c, t2, flair = modalities
    mosaic = np.concatenate([np.concatenate([t1, t2], axis=1),
                             np.concatenate([flair, t1c], axis=1)], axis=0)
    h, w = image.shape[1:]
    mosaic = cv2.resize(mosaic, (w, h), interpolation=cv2.INTER_AREA)
    panels = [mosaic]
    if image.shape[0] > 4:
        panels.append(label_overlay(image[3], image[4:7]))
    return panels


def label_overlay(background: np.ndarray, labels: np.ndarray, opacity: float = 0.55
                  ) -> np.ndarray:
    """A grey slice in [-1, 1] with label channels ((3, H, W) in [-1, 1]) painted on it."""
    out = np.repeat(_unit(background)[..., None], 3, axis=2)
    for channel, colour in zip(labels, LABEL_COLOURS, strict=True):
        weight = opacity * _unit(channel)[..., None]
        out = out * (1 - weight) + colour * weight
    return out


def channel_panels(image: np.ndarray) -> list[np.ndarray]:
    """Each channel as a grey panel: how a dataset without a picture of its own is shown."""
    return [np.repeat(_unit(channel)[..., None], 3, axis=2) for channel in image]


def sample_panels(image: np.ndarray, dataset: str) -> list[np.ndarray]:
    """The panels that show one sample of ``dataset`` (its spec's ``panels``)."""
    return hook(dataset_spec(dataset).panels)(image)


def sample_grid(images: np.ndarray, dataset: str, ncols: int = 4, size: int | None = None,
                gap: int = 2) -> np.ndarray:
    """A grid of samples, each its panels side by side, (H, W, 3) uint8; ``size`` resizes every
    panel (nearest-neighbour when enlarging, so pixels stay honest)."""
    if size is not None:  # enlarge first, so the 2x2 MR mosaic keeps every source pixel
        images = [_resize(img.transpose(1, 2, 0), size).reshape(size, size, -1)
                  .transpose(2, 0, 1) for img in images]
    tiles = [np.concatenate([_pad(p, gap) for p in sample_panels(img, dataset)], axis=1)
             for img in images]
    rows = []
    for start in range(0, len(tiles), ncols):
        row = tiles[start:start + ncols]
        row += [np.zeros_like(tiles[0])] * (ncols - len(row))
        rows.append(np.concatenate([_pad(t, gap) for t in row], axis=1))
    return unit_to_uint8(np.concatenate(rows, axis=0))


def progression_strip(images_by_resolution: Sequence[np.ndarray], dataset: str,
                      size: int = 128) -> np.ndarray:
    """The paper's Figure 1 strip: one latent's (C, r, r) image per resolution, enlarged to
    ``size``; columns are resolutions, rows its panels (photograph / vessels, mosaic / labels)."""
    columns = [np.concatenate([_pad(_resize(p, size), 2) for p in sample_panels(img, dataset)],
                              axis=0) for img in images_by_resolution]
    return unit_to_uint8(np.concatenate(columns, axis=1))


def unit_to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 RGB (or (H, W) grey) image as PNG; ValueError if OpenCV cannot."""
    bgr = image[..., ::-1] if image.ndim == 3 else image
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        raise ValueError(f"could not encode a {image.shape} {image.dtype} image as PNG")
    return encoded.tobytes()


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 RGB (or (H, W) grey) image as PNG, atomically."""
    path = Path(path)
    with atomic_file(path) as fh:
        fh.write(png_bytes(image))
    return path


def _resize(panel: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or panel.shape[0] == size:
        return panel
    interp = cv2.INTER_NEAREST if size > panel.shape[0] else cv2.INTER_AREA
    if panel.ndim == 3 and panel.shape[2] > 4:  # OpenCV resizes at most 4 channels at once
        return np.stack([_resize(panel[..., c], size) for c in range(panel.shape[2])], axis=2)
    return cv2.resize(panel.astype(np.float32), (size, size), interpolation=interp)


def _pad(panel: np.ndarray, gap: int) -> np.ndarray:
    return np.pad(panel, ((gap, gap), (gap, gap), (0, 0)), constant_values=1.0)


def save_figure(figure, run_dir: str | Path, name: str, profile: str, seed: int,
                dataset: str | None = None) -> Path:
    """Save a matplotlib or plotly figure or an (H, W, 3) uint8 array atomically as
    ``<run>/figures/<name>.png`` (``.html`` for plotly), beside ``<name>.json`` recording run,
    profile, seed, dataset, commit and build time: where the figure came from."""
    import json

    from pggan_core.atomic import write_text_atomic
    from pggan_core.provenance import provenance

    folder = Path(run_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(figure, np.ndarray):
        path = save_png(figure, folder / f"{name}.png")
    elif hasattr(figure, "to_html"):  # plotly: the page loads plotly.js from beside it
        path = folder / f"{name}.html"
        write_text_atomic(path, figure.to_html(include_plotlyjs="directory", full_html=True))
        if not (folder / "plotly.min.js").is_file():  # from the installed package: no CDN
            from plotly.offline import get_plotlyjs

            write_text_atomic(folder / "plotly.min.js", get_plotlyjs())
    else:
        path = folder / f"{name}.png"
        with atomic_file(path) as fh:
            figure.savefig(fh, format="png", dpi=150, bbox_inches="tight")
    facts = {"figure": path.name, "run": str(run_dir), "dataset": dataset,
             **provenance(profile, seed)}
    write_text_atomic(folder / f"{name}.json", json.dumps(facts, indent=2))
    return path


ARM_STYLES = {"real": ("#4c72b0", "o"), "real + classic": ("#55a868", "s"),
              "real + synthetic": ("#c44e52", "D"), "synthetic": ("#8172b2", None)}


def augmentation_figure(result: dict, metric_names: dict[str, str]):
    """The augmentation study: a panel per score (``result['metrics']``) on held-out real images
    against the number k of real labelled items (the last: all), per arm. Each seed's segmenter
    is a dot, the mean over seeds a marker with ± one sd, joined across k; the synthetic-only arm
    (no real labels) a dashed line with its ± sd band."""
    import matplotlib.pyplot as plt

    metrics = result["metrics"]
    counts = sorted({row["k"] for row in result["rows"] if row["arm"] != "synthetic"})
    positions = {k: i for i, k in enumerate(counts)}
    ncols = min(len(metrics), 2)
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 4.0 * nrows), squeeze=False)
    offsets = {"real": -0.12, "real + classic": 0.0, "real + synthetic": 0.12}
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        for arm, (colour, marker) in ARM_STYLES.items():
            rows = [r for r in result["rows"] if r["arm"] == arm]
            if arm == "synthetic":
                values = np.array([r[metric] for r in rows], float)
                mean, sd = np.mean(values), np.std(values, ddof=1) if len(values) > 1 else 0
                ax.axhline(mean, color=colour, ls="--", lw=1.5,
                           label=f"synthetic only (M = {result['settings']['n_synthetic']})")
                ax.axhspan(mean - sd, mean + sd, color=colour, alpha=0.12, lw=0)
                continue
            ks = sorted({r["k"] for r in rows})
            x = [positions[k] + offsets[arm] for k in ks]
            per_k = [np.array([r[metric] for r in rows if r["k"] == k], float) for k in ks]
            for xi, values in zip(x, per_k, strict=True):
                ax.plot([xi] * len(values), values, ".", color=colour, alpha=0.45, ms=5)
            means = [np.mean(v) for v in per_k]
            sds = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in per_k]
            ax.errorbar(x, means, yerr=sds, color=colour, marker=marker, ms=6, capsize=3,
                        lw=1.5, label=arm)
        ax.set_xticks(range(len(counts)))
        ax.set_xticklabels([str(k) for k in counts[:-1]] +
                           [f"all {counts[-1]}"])
        ax.set(xlabel=f"real labelled {result['real']['items']} (k)",
               ylabel=metric_names.get(metric, metric), title=metric_names.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
        low, high = ax.get_ylim()  # a score lives in [0, 1]; a spread must not leave it
        ax.set_ylim(max(low, 0.0), min(high, 1.0))
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def vessel_pair_panel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The U-Net's preprocessed grey input beside its binary vessel target."""
    grey = [np.repeat(np.clip(p, 0.0, 1.0)[..., None], 3, axis=2) for p in (x[0], y)]
    return np.concatenate([_pad(p, 1) for p in grey], axis=1)


def tumour_pair_panel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """FLAIR beside FLAIR with the target's tumour classes (1-3) in the BraTS colours."""
    onehot = np.stack([np.where(y == c, 1.0, -1.0) for c in (1, 2, 3)])
    return np.concatenate([_pad(np.repeat(_unit(x[3])[..., None], 3, 2), 1),
                           _pad(label_overlay(x[3], onehot), 1)], axis=1)
