"""Figures for exploring the latent space, built to work in the static book as well as live.

What renders where (checked in the built HTML, with no kernel running):

- ``tsne_figure``: a plotly scatter (Figure 5). A plotly hover label cannot show an image, so
  the images are drawn *into* the plot instead: thumbnails of the real images as layout images
  at their t-SNE position (one per cell of a grid, so they do not pile up), under the points,
  with a button to hide them. Hovering a point names its image and labels. Pure plotly.js.
- ``image_slider_figure``: a plotly figure whose slider steps through precomputed images
  (frames); used for the BraTS slice traversal. Pure plotly.js.
- ``latent_slider_stack``: ipywidgets sliders, each ``jslink``-ed to a ``Stack`` of
  precomputed images, so moving a slider changes the image in the browser without a kernel.
- ``live_latent_sliders``: free sliders that regenerate the image with the generator; needs a
  running kernel (in the static book it shows its first image and the sliders do nothing).

The notebooks save every figure under the run's ``figures/`` with ``plots.save_figure``: PNG,
plotly HTML that loads ``plotly.min.js`` from the same folder (no CDN), and a provenance JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from torch import nn

from pggan_core.datasets import dataset_spec
from pggan_core.generate import images_from_latents
from pggan_core.latent.space import slerp
from pggan_core.viz import plots

CATEGORY_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
THUMBNAIL_GRID = 8  # at most 8 x 8 thumbnails over the t-SNE plane


# ---------------------------------------------------------------------------------------------
# pictures of samples


def sample_picture(image: np.ndarray, dataset: str, size: int | None = None) -> np.ndarray:
    """One sample as its panels side by side (photograph | vessels, or mosaic | labels)."""
    return plots.sample_grid(image[None], dataset, ncols=1, size=size, gap=1)


def thumbnail(image: np.ndarray, dataset: str) -> np.ndarray:
    """The one panel that best identifies a sample at thumbnail size, (H, W, 3) uint8.

    Fundus: the photograph (laterality shows as the side of the optic disc). MR: FLAIR with the
    tumour labels when the run has them (slice level and tumour both show), else the mosaic.
    """
    panels = plots.sample_panels(image, dataset)
    return plots.unit_to_uint8(panels[dataset_spec(dataset).thumbnail_panel])


def data_uri(picture: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI: an image a static HTML page carries inline."""
    return "data:image/png;base64," + base64.b64encode(plots.png_bytes(picture)).decode("ascii")


def strip(G: nn.Module, latents: np.ndarray, resolution: int, alpha: float, dataset: str,
          size: int = 96) -> np.ndarray:
    """Generate ``latents`` and lay the samples out in one row, (H, W, 3) uint8."""
    images = images_from_latents(G, latents, resolution, alpha)
    return plots.sample_grid(images, dataset, ncols=len(images), size=size)


def interpolation_strip(G: nn.Module, z0: np.ndarray, z1: np.ndarray, resolution: int,
                        alpha: float, dataset: str, steps: int = 8, size: int = 96
                        ) -> np.ndarray:
    """``steps`` images along the great circle (``slerp``) from ``z0`` to ``z1``."""
    return strip(G, slerp(z0, z1, np.linspace(0.0, 1.0, steps)), resolution, alpha, dataset,
                 size)


# ---------------------------------------------------------------------------------------------
# the t-SNE scatter (Figure 5)


def hover_text(labels: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """One hover line per point: ``column value`` pairs joined by <br>, for the columns the
    labels have (a user's folder records fewer labels than a phantom)."""
    present = [c for c in columns if c in labels]
    return ["<br>".join(f"{c} {_fmt(row[c])}" for c in present)
            for _, row in labels[present].iterrows()]


def tsne_figure(embedding: np.ndarray, colour: pd.Series, hover: Sequence[str],
                thumbnails: Sequence[np.ndarray] | None = None, title: str = "") -> go.Figure:
    """The t-SNE plane as a plotly scatter coloured by ``colour`` (categorical or continuous).

    ``thumbnails`` (one (H, W, 3) uint8 image per point) are drawn under the points, one per
    grid cell: the point nearest the cell's centre shows its image.
    """
    fig = go.Figure()
    hover = np.asarray(hover, dtype=object)
    marker = {"size": 7, "line": {"width": 0.5, "color": "white"}}
    if _is_categorical(colour):
        for i, value in enumerate(sorted(colour.unique(), key=str)):
            mask = (colour == value).to_numpy()
            fig.add_trace(go.Scatter(
                x=embedding[mask, 0], y=embedding[mask, 1], mode="markers", name=_fmt(value),
                text=hover[mask], hovertemplate="%{text}<extra></extra>",
                marker={**marker, "color": CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)]}))
    else:
        fig.add_trace(go.Scatter(
            x=embedding[:, 0], y=embedding[:, 1], mode="markers", name=str(colour.name),
            text=hover, hovertemplate="%{text}<extra></extra>",
            marker={**marker, "color": colour.to_numpy(dtype=float), "colorscale": "Viridis",
                    "colorbar": {"title": str(colour.name)}}))
    fig.update_layout(title=title, xaxis_title="t-SNE 1", yaxis_title="t-SNE 2", height=600,
                      width=760, template="plotly_white", legend_title=str(colour.name))
    if thumbnails is not None:
        _add_thumbnails(fig, embedding, thumbnails)
    return fig


def _add_thumbnails(fig: go.Figure, embedding: np.ndarray,
                    thumbnails: Sequence[np.ndarray]) -> None:
    low, high = embedding.min(axis=0), embedding.max(axis=0)
    cell = (high - low) / THUMBNAIL_GRID + 1e-9
    cells = np.minimum(((embedding - low) / cell).astype(int), THUMBNAIL_GRID - 1)
    images = []
    for key in {tuple(c) for c in cells}:
        members = np.flatnonzero((cells == key).all(axis=1))
        centre = low + (np.array(key) + 0.5) * cell
        best = members[np.argmin(((embedding[members] - centre) ** 2).sum(axis=1))]
        images.append({"source": data_uri(thumbnails[best]), "xref": "x", "yref": "y",
                       "x": float(embedding[best, 0]), "y": float(embedding[best, 1]),
                       "sizex": float(cell[0]), "sizey": float(cell[1]), "xanchor": "center",
                       "yanchor": "middle", "sizing": "contain", "layer": "below",
                       "opacity": 0.85})
    fig.update_layout(images=images, updatemenus=[{
        "type": "buttons", "direction": "right", "x": 0.0, "y": 1.08, "xanchor": "left",
        "buttons": [_toggle("show images", True, len(images)),
                    _toggle("points only", False, len(images))]}])


def _toggle(label: str, visible: bool, n: int) -> dict[str, Any]:
    return {"label": label, "method": "relayout",
            "args": [{f"images[{i}].visible": visible for i in range(n)}]}


def _is_categorical(values: pd.Series) -> bool:
    return values.dtype == object or values.dtype == bool or values.nunique() <= 6


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float | np.floating) else str(value)


# ---------------------------------------------------------------------------------------------
# sliders over precomputed images (no kernel needed)


def image_slider_figure(pictures: Sequence[np.ndarray], labels: Sequence[str], title: str = "",
                        prefix: str = "") -> go.Figure:
    """A plotly figure with a slider that steps through ``pictures`` ((H, W, 3) uint8).

    Each step is a frame holding one PNG (as a data URI); plotly.js swaps them in the browser.
    """
    names = [str(label) for label in labels]
    frames = [go.Frame(name=name, data=[go.Image(source=data_uri(p))])
              for name, p in zip(names, pictures, strict=True)]
    steps = [{"label": name, "method": "animate",
              "args": [[name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                                "transition": {"duration": 0}}]} for name in names]
    height, width = pictures[0].shape[:2]
    fig = go.Figure(data=frames[0].data, frames=frames)
    fig.update_layout(
        title=title, sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": prefix},
                               "pad": {"t": 30}}],
        width=min(900, width + 80), height=min(900, height + 220), template="plotly_white",
        margin={"l": 20, "r": 20, "t": 60, "b": 20})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def direction_pictures(G: nn.Module, base: np.ndarray, direction: np.ndarray,
                       offsets: np.ndarray, resolution: int, alpha: float, dataset: str,
                       size: int = 128) -> list[np.ndarray]:
    """Pictures of ``base + t * direction`` for every ``t`` in ``offsets``."""
    latents = base[None] + offsets[:, None] * direction[None]
    return [sample_picture(image, dataset, size)
            for image in images_from_latents(G, latents.astype(np.float32), resolution, alpha)]


def latent_slider_stack(pictures_by_direction: dict[str, list[np.ndarray]],
                        offsets: Sequence[float]):
    """ipywidgets: per direction a slider ``jslink``-ed to a Stack of its precomputed images.

    Runs in the browser alone: the link is JavaScript, so the static book's sliders work.
    """
    import ipywidgets as widgets

    columns = []
    middle = len(offsets) // 2
    for name, pictures in pictures_by_direction.items():
        stack = widgets.Stack([widgets.Image(value=plots.png_bytes(p), format="png")
                               for p in pictures], selected_index=middle)
        slider = widgets.IntSlider(value=middle, min=0, max=len(offsets) - 1,
                                   description=name, readout=False)
        widgets.jslink((slider, "value"), (stack, "selected_index"))
        columns.append(widgets.VBox([stack, slider]))
    caption = widgets.HTML(f"slider steps: {', '.join(f'{o:+.1f}' for o in offsets)} "
                           "standard deviations from the mean latent")
    return widgets.VBox([widgets.HBox(columns), caption])


def live_latent_sliders(G: nn.Module, base: np.ndarray, directions: np.ndarray,
                        scales: np.ndarray, resolution: int, alpha: float, dataset: str,
                        size: int = 192):
    """ipywidgets sliders over ``directions`` that regenerate the image (needs a kernel).

    Slider j moves the latent by ``value * scales[j] * directions[j]`` from ``base``.
    """
    import ipywidgets as widgets

    sliders = [widgets.FloatSlider(value=0.0, min=-3.0, max=3.0, step=0.25,
                                   description=f"PC {j + 1}") for j in range(len(directions))]
    image = widgets.Image(format="png")

    def redraw(_change: Any = None) -> None:
        offset = sum(s.value * scale * d for s, scale, d in
                     zip(sliders, scales, directions, strict=True))
        picture = sample_picture(images_from_latents(G, (base + offset)[None].astype(np.float32),
                                          resolution, alpha)[0], dataset, size)
        image.value = plots.png_bytes(picture)

    for slider in sliders:
        slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([image, *sliders])


def training_curves_figure(log: pd.DataFrame, title: str) -> go.Figure:
    """The trainer's ``metrics.jsonl`` (as a DataFrame) against images seen: the critic's
    Wasserstein estimate and both losses above, the fade-in alpha (hover: resolution) below."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.05)
    for name in ("wasserstein", "d_loss", "g_loss"):
        fig.add_trace(go.Scatter(x=log.images_seen, y=log[name], name=name, mode="lines"),
                      row=1, col=1)
    fig.add_trace(go.Scatter(x=log.images_seen, y=log.alpha, name="α (fade-in)",
                             text=log.resolution.astype(str) + " px", mode="lines"),
                  row=2, col=1)
    fig.update_xaxes(title_text="images seen", row=2, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="α", range=[-0.05, 1.05], row=2, col=1)
    fig.update_layout(height=520, title=title)
    return fig
