"""Latent-space figures that must work in the static book (pggan_book/interactive.py)."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from pggan_book.interactive import (
    data_uri,
    direction_pictures,
    hover_text,
    image_slider_figure,
    interpolation_strip,
    latent_slider_stack,
    live_latent_sliders,
    thumbnail,
    tsne_figure,
)
from pggan_core.config import load_config
from pggan_core.training.networks import Generator


@pytest.fixture(scope="module")
def G() -> Generator:
    """An untrained generator: these figures need a fixed function of z, not a trained run."""
    torch.manual_seed(0)
    return Generator(load_config("smoke", "rop").model, 4, 8).eval().requires_grad_(False)


def decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    raw = np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8)
    return cv2.imdecode(raw, cv2.IMREAD_COLOR)[..., ::-1]


def test_data_uri_round_trips_a_picture():
    picture = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode(data_uri(picture)), picture)


def test_tsne_figure_colours_by_class_and_draws_thumbnails_under_points():
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(40, 2)).astype(np.float32)
    labels = pd.DataFrame({"index": np.arange(40), "laterality": ["OD", "OS"] * 20})
    thumbs = [np.full((8, 8, 3), i, np.uint8) for i in range(40)]
    fig = tsne_figure(embedding, labels["laterality"], hover_text(labels, ["index", "laterality"]),
                      thumbs)
    assert [t.name for t in fig.data] == ["OD", "OS"]
    assert sum(len(t.x) for t in fig.data) == 40
    assert fig.data[0].text[0] == "index 0<br>laterality OD"
    images = fig.layout.images
    assert 1 <= len(images) <= 64 and all(im.layer == "below" for im in images)
    # each thumbnail sits on the point whose picture it shows
    for im in images:
        shown = decode(im.source)[0, 0, 0]
        np.testing.assert_allclose([im.x, im.y], embedding[shown], rtol=1e-6)
    hide = fig.layout.updatemenus[0].buttons[1].args[0]
    assert len(hide) == len(images) and not any(hide.values())


def test_tsne_figure_uses_a_colour_scale_for_continuous_labels():
    embedding = np.random.default_rng(0).normal(size=(30, 2))
    position = pd.Series(np.linspace(0, 1, 30), name="slice_position")
    fig = tsne_figure(embedding, position, [""] * 30)
    assert len(fig.data) == 1 and fig.data[0].marker.colorbar.title.text == "slice_position"
    assert not fig.layout.images


def test_thumbnail_shows_the_photograph_or_the_labelled_flair():
    fundus = np.zeros((4, 8, 8), np.float32)
    assert thumbnail(fundus, "rop").shape == (8, 8, 3)
    mr = np.zeros((7, 8, 8), np.float32)
    mr[4] = 1.0  # label 1 everywhere: the overlay is red
    red = thumbnail(mr, "brats")[0, 0]
    assert red[0] > red[1] and red[0] > red[2]


def test_image_slider_has_one_frame_per_step():
    pictures = [np.full((6, 6, 3), v, np.uint8) for v in (0, 100, 200)]
    fig = image_slider_figure(pictures, ["low", "mid", "high"], prefix="slice ")
    assert [f.name for f in fig.frames] == ["low", "mid", "high"]
    steps = fig.layout.sliders[0].steps
    assert [list(s.args[0]) for s in steps] == [["low"], ["mid"], ["high"]]
    assert decode(fig.frames[2].data[0].source)[0, 0, 0] == 200


def test_interpolation_strip_lays_out_every_step(G):
    rng = np.random.default_rng(0)
    picture = interpolation_strip(G, rng.normal(size=32), rng.normal(size=32), 8, 1.0, "rop",
                                  steps=5, size=16)
    assert picture.dtype == np.uint8 and picture.ndim == 3
    assert picture.shape[1] > 4.5 * picture.shape[0]  # five two-panel tiles in one row


@pytest.mark.filterwarnings("ignore:Widget.widgets is deprecated")  # the registry of links
def test_slider_stack_links_each_slider_to_its_images(G):
    import ipywidgets as widgets
    from ipywidgets.widgets.widget_link import Link

    offsets = np.linspace(-2, 2, 5)
    base, direction = np.zeros(32, np.float32), np.eye(32, dtype=np.float32)[0]
    pictures = direction_pictures(G, base, direction, offsets, 8, 1.0, "rop", size=16)
    assert len(pictures) == 5 and not np.array_equal(pictures[0], pictures[-1])
    box = latent_slider_stack({"PC 1": pictures, "PC 2": pictures}, offsets)
    columns = box.children[0].children
    assert len(columns) == 2
    stack, slider = columns[0].children
    assert isinstance(stack, widgets.Stack) and len(stack.children) == 5
    assert slider.max == 4 and slider.value == stack.selected_index == 2
    links = [w for w in widgets.Widget.widgets.values() if isinstance(w, Link)]
    assert any(link.source == (slider, "value") and link.target == (stack, "selected_index")
               for link in links)


def test_live_sliders_regenerate_the_image(G):
    directions = np.eye(32, dtype=np.float32)[:2]
    box = live_latent_sliders(G, np.ones(32, np.float32), directions, np.ones(2), 8, 1.0,
                              "rop", size=16)
    image, first_slider = box.children[0], box.children[1]
    before = image.value
    first_slider.value = 2.0
    assert image.value != before
