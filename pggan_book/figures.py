"""The book's figures (matplotlib): the chapters' plots of data, training, Figures 3-5, the
memorisation report, and the README's phantom picture. The library's pictures of samples
(``pggan_core.viz.plots``: panels, grids, PNGs, ``save_figure``) are their building blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pggan_core.data import preprocess
from pggan_core.data.preprocess import tumour_slice
from pggan_core.datasets import dataset_spec
from pggan_core.viz.plots import (
    LABEL_COLOURS,
    _resize,
    label_overlay,
    sample_grid,
    sample_panels,
)


def show_panels(panels: Sequence[np.ndarray], titles: Sequence[str], ncols: int | None = None,
                width: float = 2.6, suptitle: str | None = None,
                grey_range: tuple[float, float] | None = None):
    """A figure of grey (H, W) or RGB (H, W, 3) images with titles, no axes; grey panels span
    their own range or ``grey_range`` (e.g. (0, 1) for probabilities: a faint map looks faint)."""
    import matplotlib.pyplot as plt

    ncols = ncols or len(panels)
    nrows = -(-len(panels) // ncols)
    height = width * max(p.shape[0] / p.shape[1] for p in panels)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, (height + 0.35) * nrows + 0.3),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, panel, title in zip(axes.flat, panels, titles, strict=False):
        low, high = grey_range or (panel.min(), panel.max())
        ax.imshow(panel, cmap="gray", vmin=low if panel.ndim == 2 else None,
                  vmax=high if panel.ndim == 2 else None, interpolation="nearest")
        ax.set_title(title, fontsize=min(12, max(9, 3 * width)))  # legible at any width
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def source_columns_figure(rows: Sequence[tuple[str, np.ndarray]], dataset: str, size: int,
                          width: float = 14):
    """A titled column per ``(title, images)`` of ``rows``, an input per row, so each input sits
    beside what was made from it (Figure 4's held-out images beside their regenerations)."""
    pictures = [sample_grid(images, dataset, ncols=1, size=size) for _, images in rows]
    return show_panels(pictures, [title for title, _ in rows], ncols=len(rows),
                       width=width / len(rows))


def show_picture(picture: np.ndarray, width: float = 14, title: str | None = None):
    """One picture (a grid or a strip) as a matplotlib figure ``width`` inches wide at its own
    aspect ratio, without axes; returns the figure (a notebook shows it)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, width * picture.shape[0] / picture.shape[1]))
    ax.imshow(picture)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return fig


def loss_curve_figure(loss: Sequence[float], ylabel: str, title: str):
    """A per-iteration loss with its running mean over a twentieth of the run."""
    import matplotlib.pyplot as plt

    loss = np.asarray(loss, dtype=np.float64)
    window = max(1, len(loss) // 20)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(loss, alpha=0.35, label="per batch")
    ax.plot(np.arange(window - 1, len(loss)), smooth, label=f"mean of {window}")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return fig


def fundus_pipeline_figure(fundus, data_cfg, vessel_map: np.ndarray | None = None):
    """The paper's ROP preprocessing of a FundusImage, step by step: photograph, grayscale, gamma,
    CLAHE, vessels (``vessel_map``, e.g. the U-Net's output; default its mask)."""
    gray = preprocess.to_gray(fundus.rgb)
    gamma = preprocess.gamma_correct(gray, data_cfg.gamma)
    equalised = preprocess.clahe(gamma, data_cfg.clahe_clip, data_cfg.clahe_tiles)
    vessels = fundus.vessels if vessel_map is None else vessel_map
    return show_panels(
        [fundus.rgb, gray, gamma, equalised, vessels.astype(np.float32)],
        ["photograph (RGB)", "grayscale", f"gamma {data_cfg.gamma}",
         f"CLAHE (clip {data_cfg.clahe_clip}, {data_cfg.clahe_tiles}x{data_cfg.clahe_tiles})",
         "vessel map"])


def mr_pipeline_figure(volume, zvol: np.ndarray, z: int, channels: np.ndarray):
    """One BraTS slice before and after preprocessing: the four raw modalities and labels above
    the slice z-scored per volume and clipped as the GAN sees it (``channels``, from
    ``brats_slice_channels``) and its label channels on FLAIR."""
    from pggan_core.data.types import MODALITIES

    raw = [volume.modalities[i, :, :, z].T[::-1] for i in range(4)]
    labels = volume.seg[:, :, z].T[::-1]
    label_rgb = np.zeros((*labels.shape, 3))
    for value, colour in zip((1, 2, 4), LABEL_COLOURS, strict=True):
        label_rgb[labels == value] = colour
    after = [channels[i] for i in range(4)] + [label_overlay(channels[3], channels[4:7])]
    return show_panels(
        [*raw, label_rgb, *after],
        [f"{m} raw" for m in MODALITIES] + ["labels 1 / 2 / 4"]
        + [f"{m} z-scored" for m in MODALITIES] + ["labels on FLAIR"],
        ncols=5, suptitle=f"{volume.meta.get('subject', '')}, axial slice z={z}")


def label_distribution_figure(manifest, dataset: str):
    """Bar charts of the per-image labels in a prepared dataset's manifest: those it has (a
    user's fundus folder knows the eye, not the plus-disease grade a phantom records)."""
    import matplotlib.pyplot as plt

    columns = [(c, order) for c, order in dataset_spec(dataset).label_columns
               if c in manifest and manifest[c].notna().any()]
    fig, axes = plt.subplots(1, max(len(columns), 1), figsize=(3.6 * max(len(columns), 1), 2.8),
                             squeeze=False)
    if not columns:
        axes[0, 0].text(0.5, 0.5, "no per-image labels recorded", ha="center", va="center")
        axes[0, 0].axis("off")
    for ax, (column, order) in zip(axes[0], columns, strict=True):
        if order == "hist":
            ax.hist(manifest[column], bins=20, color="#4c72b0")
        else:
            counts = manifest[column].value_counts()
            counts = counts.reindex(list(order), fill_value=0) if order else counts.sort_index()
            ax.bar([str(k) for k in counts.index], counts.values, color="#4c72b0")
        ax.set_title(column, fontsize=10)
        ax.set_ylabel("images")
    fig.tight_layout()
    return fig


def tsne_scatter(embedding: np.ndarray, labels, columns: Sequence[str],
                 what: str = "encoded latents"):
    """Figure 5: the t-SNE plane, a panel per label column titled "t-SNE of ``what``, by
    <column>"; up to 6 values get a colour each and a legend, as in the paper (eye: OD/OS), more
    (slice position) a colour scale."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(columns), figsize=(5.2 * len(columns), 4.6), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        values = labels[column]
        if values.nunique() <= 6:
            for value in sorted(values.unique()):
                ax.scatter(*embedding[(values == value).to_numpy()].T, s=14, label=str(value))
            ax.legend(title=column)
        else:
            points = ax.scatter(*embedding.T, s=14, c=values, cmap="viridis")
            fig.colorbar(points, ax=ax, label=column)
        ax.set(title=f"t-SNE of {what}, by {column}", xticks=[], yticks=[])
    return fig


def ablation_row_figure(images: np.ndarray, dataset: str, reader, title: str):
    """One row of Figure 3: ``images`` (N, C, R, R) in [-1, 1] at 192 px, each above the map its
    anatomy is read from where the reader has one (``reader.maps``: the vessel probability)."""
    import matplotlib.pyplot as plt

    maps = reader.maps(images)
    n_rows = 1 if maps is None else 2
    fig, axes = plt.subplots(n_rows, len(images), figsize=(2.6 * len(images), 2.7 * n_rows),
                             squeeze=False)
    for i, image in enumerate(images):
        axes[0, i].imshow(_resize(sample_panels(image, dataset)[0], 192))
        if maps is not None:
            axes[1, i].imshow(maps[i], cmap="gray", vmin=0, vmax=1)
    for ax in axes.ravel():
        ax.set(xticks=[], yticks=[])
    if maps is not None:
        axes[1, 0].set_ylabel("vessel U-Net", fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def memorisation_figure(report: dict, generated: np.ndarray, train: np.ndarray,
                        dataset: str):
    """The memorisation report: histograms of generated and held-out images' distance to their
    nearest training image (leave-one-out reference, threshold dotted) over the closest pairs and
    their differences (``generated``, ``train``: in ``report["closest"]``'s order)."""
    import matplotlib.pyplot as plt

    # 128 px, two pairs a row: an MR mosaic stays large enough to tell a copy from a look-alike
    size, gap = 128, 6
    pairs = []
    for g, t in zip(generated, train, strict=True):
        a, b = (_resize(sample_panels(x, dataset)[0], size) for x in (g, t))
        pairs.append(np.pad(np.concatenate([a, b, np.clip(0.5 + (a - b), 0, 1)], axis=1),
                            ((gap // 2, gap // 2), (gap, gap), (0, 0)), constant_values=1.0))
    pairs += [np.ones_like(pairs[0])] * (len(pairs) % 2)
    closest = np.concatenate([np.concatenate(pairs[i:i + 2], axis=1)
                              for i in range(0, len(pairs), 2)], axis=0)
    width, histograms = 12.0, 3.4  # inches
    picture_height = width * closest.shape[0] / closest.shape[1]
    fig = plt.figure(figsize=(width, histograms + picture_height + 0.4))
    grid = fig.add_gridspec(2, 2, height_ratios=[histograms, picture_height])
    for column, space in enumerate(("pixel", "invariant")):
        ax = fig.add_subplot(grid[0, column])
        values = [report["reference"][space], report["heldout"][space],
                  report["generated"][space]]
        bins = np.histogram_bin_edges(np.concatenate(values), 40)
        for data, label in zip(values, ("training, leave one out (reference)",
                                        "held-out real", "generated"), strict=True):
            ax.hist(data, bins, density=True, histtype="step", lw=1.5, label=label)
        ax.axvline(report["thresholds"][space], color="black", ls=":", lw=1.5)
        ax.set(title={"pixel": "pixel L2 to the nearest training image",
                      "invariant": "1 − correlation, up to shifts, mirror, brightness"}[space],
               yticks=[])
        ax.title.set_fontsize(10)
        if column == 0:
            ax.legend(fontsize=8)
    picture = fig.add_subplot(grid[1, :])
    picture.imshow(closest)
    picture.set(xticks=[], yticks=[], title="the closest pairs: generated, its nearest training "
                "image as stored (the match may be mirrored or shifted), difference (grey = none)")
    fig.tight_layout()
    return fig


def attribute_planes_figure(attributes: dict):
    """Figure 5's plane (encoded reals on the unit sphere) per attribute of ``latent_space.json``'s
    ``attributes``, coloured by its value, titled with its silhouette and 5-NN gain over chance."""
    import matplotlib.pyplot as plt

    plane = np.asarray(attributes["plane"])
    scores = {r["attribute"]: r for r in attributes["scores"] if r["view"] == "encoded reals"}
    names = list(attributes["values"])
    ncols = min(3, len(names))  # three planes a row: each wide enough to see its points
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.4 * nrows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names, strict=False):
        ax.scatter(plane[:, 0], plane[:, 1], c=attributes["values"][name], s=9,
                   cmap="viridis", linewidths=0)
        row = scores.get(name, {})
        silhouette, gain = row.get("silhouette"), row.get("knn_gain")
        ax.set_title(name + ("" if silhouette is None else
                             f"\nsilhouette {silhouette:.2f}, 5-NN {gain:+.2f}"), fontsize=11)
        ax.set(xticks=[], yticks=[])
    fig.tight_layout()
    return fig


def phantom_overview(n: int = 4, size: int = 192, seed: int = 0) -> np.ndarray:
    """The README's picture: ``n`` fundus phantoms (photograph + vessels) above ``n`` MR slices,
    each preprocessed as the training data. ``book/images/phantoms.png`` is the default, written
    with ``plots.save_png(phantom_overview(), "book/images/phantoms.png")``."""
    from pggan_core.data.brain_phantom import BrainPhantom
    from pggan_core.data.fundus_phantom import render_fundus
    from pggan_core.settings import DataConfig

    fundus = []
    for i in range(n):
        sample = render_fundus(seed + i, size)
        fundus.append(preprocess.fundus_channels(sample.rgb, sample.vessels))
    data, phantom, slices = DataConfig(), BrainPhantom(), []
    for i in range(n):
        slices.append(tumour_slice(phantom.subject(seed + i), data)[2])
    top = sample_grid(np.stack(fundus), "rop", ncols=n, size=size)
    bottom = sample_grid(np.stack(slices), "brats", ncols=n, size=size)
    return np.concatenate([top, bottom], axis=0)


def pipeline_figure(sample, data_cfg):
    """(figure, z-scored volume or None): the paper's preprocessing of a raw FundusImage
    (``fundus_pipeline_figure``) or BrainVolume (``mr_pipeline_figure``, most-tumour slice)."""
    if not hasattr(sample, "modalities"):
        return fundus_pipeline_figure(sample, data_cfg), None
    zvol, z, channels = tumour_slice(sample, data_cfg)
    return mr_pipeline_figure(sample, zvol, z, channels), zvol


def plain_log_ticks(axis, subs: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 5.0)) -> None:
    """Ticks of a log axis at ``subs`` times each power of ten, labelled as plain numbers
    ("20", "1.5", "100,000") rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=subs))
    axis.set_major_formatter(FuncFormatter(
        lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:.1f}".rstrip("0").rstrip(".")))
    axis.set_minor_formatter(NullFormatter())


def phase_curves_figure(curves: dict[str, Sequence[dict]]):
    """Phase-end SWD / real-vs-real floor at that resolution (``phase_metrics.jsonl``) against
    images seen: a line per run, points labelled resolution and phase (f = end of fade-in, s =
    end of stable)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    plotted = False
    for label, records in curves.items():
        # log axes: a phase that showed no images, or has no SWD, has no place on them
        points = [(r["images_seen"], r["swd_mean"] / r["swd_floor_mean"], r) for r in records
                  if r["images_seen"] > 0 and r["swd_mean"] and r["swd_floor_mean"]]
        if not points:
            continue
        plotted = True
        line, = ax.plot([p[0] for p in points], [p[1] for p in points], "-o", ms=4,
                        label=label)
        for x, y, r in points:
            ax.annotate(f"{r['resolution']}{r['phase'][0]}", (x, y), fontsize=7,
                        textcoords="offset points", xytext=(2, 4), color=line.get_color())
    ax.axhline(1.0, color="grey", lw=1)
    ax.set(xlabel="images seen by the critic", ylabel="SWD / real-vs-real floor")
    if plotted:
        ax.set(xscale="log", yscale="log")
        plain_log_ticks(ax.xaxis)
        plain_log_ticks(ax.yaxis)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no phase-end SWD recorded for these runs", ha="center",
                va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


def labelled_pairs_figure(rows: Sequence[tuple[str, np.ndarray, np.ndarray]],
                          pair_panel: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    """Segmenter training pairs as it sees them, a row per (title, inputs, targets), each drawn
    by the task's ``pair_panel`` (``vessel_pair_panel``, ``tumour_pair_panel``)."""
    panels, titles = [], []
    for title, inputs, targets in rows:
        for x, y in zip(inputs, targets, strict=True):
            panels.append(pair_panel(x, y))
            titles.append(title)
    return show_panels(panels, titles, ncols=len(rows[0][1]), width=3.2)
