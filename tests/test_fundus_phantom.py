"""The built-in ROP fundus phantom: determinism, shapes, anatomy, labels and class balance."""

import cv2
import numpy as np
import pytest

from pggan_core.data.fundus_phantom import (
    SCORE_RANGES,
    render_fundus,
    sample_fundus_labels,
)
from pggan_core.data.types import FundusImage
from pggan_core.errors import ConfigError


def test_same_seed_gives_the_same_image_and_labels():
    a, b = render_fundus(7, 64), render_fundus(7, 64)
    assert np.array_equal(a.rgb, b.rgb)
    assert np.array_equal(a.vessels, b.vessels)
    assert a.labels == b.labels


def test_different_seeds_give_different_images():
    a, b = render_fundus(1, 64), render_fundus(2, 64)
    assert np.abs(a.rgb - b.rgb).mean() > 0.01
    assert (a.vessels != b.vessels).mean() > 0.02


@pytest.mark.parametrize("size", [64, 128, 256, 512])
def test_shapes_dtypes_ranges_and_masks(size):
    image = render_fundus(5, size)
    assert isinstance(image, FundusImage)
    assert image.rgb.shape == (size, size, 3) and image.rgb.dtype == np.float32
    assert image.vessels.shape == image.fov.shape == (size, size)
    assert image.vessels.dtype == image.fov.dtype == bool
    assert image.rgb.min() >= 0.0 and image.rgb.max() <= 1.0
    assert not (image.vessels & ~image.fov).any()
    assert (image.rgb[~image.fov] < 0.02).all()  # black outside the field of view
    fov_fraction = image.fov.mean()
    assert abs(fov_fraction - np.pi * 0.47**2) < 0.02
    assert image.rgb[image.fov].mean() > 0.15  # the fundus itself is lit
    assert image.source_file == "phantom:5"
    labels = image.labels
    assert labels["laterality"] in ("OD", "OS")
    assert labels["plus_severity"] in ("normal", "pre-plus", "plus")
    assert 0.0 <= labels["plus_score"] <= 1.0
    assert 1.0 <= labels["tortuosity"] < 2.0
    assert 0.0 < labels["disc_x"] < 1.0 and 0.0 < labels["disc_y"] < 1.0
    assert labels["vessel_fraction"] == pytest.approx(image.vessels.sum() / image.fov.sum())


def test_geometry_does_not_depend_on_size():
    small, large = render_fundus(11, 64), render_fundus(11, 256)
    for key in ("laterality", "plus_score", "tortuosity", "vein_width", "disc_x", "disc_y"):
        assert small.labels[key] == large.labels[key]
    # every vessel pixel at 64 px lies on (or next to) a vessel of the 256 px mask, shrunk
    shrunk = cv2.resize(large.vessels.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
    near_large = cv2.dilate((shrunk > 0.25).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert near_large[small.vessels].mean() > 0.95


def test_laterality_puts_the_disc_on_the_correct_side():
    """OD: disc on the image's right; OS: on the left. Checked on the pixels too, with the
    brightest-blob heuristic that the real-data loaders use."""
    seen = set()
    for seed in range(8):
        image = render_fundus(seed, 128)
        laterality, disc_x = image.labels["laterality"], image.labels["disc_x"]
        seen.add(laterality)
        assert (disc_x > 0.5) == (laterality == "OD")
        grey = cv2.GaussianBlur(image.rgb.mean(axis=2), (0, 0), 128 / 40)
        brightest_x = np.unravel_index(np.argmax(grey), grey.shape)[1] / 128
        assert (brightest_x > 0.5) == (laterality == "OD")
        assert abs(brightest_x - disc_x) < 0.05
    assert seen == {"OD", "OS"}


def test_plus_disease_makes_vessels_more_tortuous_and_dilated():
    seeds = range(4)
    normal = [render_fundus(s, 128, severity="normal") for s in seeds]
    plus = [render_fundus(s, 128, severity="plus") for s in seeds]

    def mean(images, key):
        return np.mean([image.labels[key] for image in images])

    assert all(image.labels["plus_severity"] == "plus" for image in plus)
    assert mean(plus, "tortuosity") > mean(normal, "tortuosity") + 0.05
    assert mean(plus, "vein_width") > 1.3 * mean(normal, "vein_width")

    def posterior_vessel_fraction(image):
        """Vessel pixels within about 2.5 disc diameters of the disc, where plus is graded."""
        size = image.rgb.shape[0]
        yy, xx = np.mgrid[:size, :size] / size
        near_disc = np.hypot(xx - image.labels["disc_x"], yy - image.labels["disc_y"]) < 0.2
        return image.vessels[near_disc & image.fov].mean()

    assert np.mean([posterior_vessel_fraction(i) for i in plus]) > 1.2 * np.mean(
        [posterior_vessel_fraction(i) for i in normal]
    )


def test_vessel_fraction_is_drive_like_at_512():
    fractions = [
        render_fundus(s, 512, severity="normal").labels["vessel_fraction"] for s in range(3)
    ]
    assert 0.08 < np.mean(fractions) < 0.17


def test_class_balance_follows_irop():
    labels = [sample_fundus_labels(seed) for seed in range(600)]
    counts = {c: sum(label["plus_severity"] == c for label in labels) / 600 for c in SCORE_RANGES}
    assert abs(counts["normal"] - 0.82) < 0.05
    assert abs(counts["pre-plus"] - 0.15) < 0.045
    assert 0.005 < counts["plus"] < 0.06
    for label in labels:
        low, high = SCORE_RANGES[label["plus_severity"]]
        assert low <= label["plus_score"] <= high
    assert 0.4 < np.mean([label["laterality"] == "OD" for label in labels]) < 0.6


def test_render_uses_the_sampled_labels():
    for seed in (0, 3):
        drawn = sample_fundus_labels(seed)
        rendered = render_fundus(seed, 64).labels
        assert {key: rendered[key] for key in drawn} == drawn
    forced = sample_fundus_labels(0, severity="pre-plus")
    assert forced["plus_severity"] == "pre-plus"
    assert forced["laterality"] == sample_fundus_labels(0)["laterality"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": 0, "severity": "severe"}, "unknown severity"),
        ({"seed": 0, "size": 16}, "size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_one_line_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message) as error:
        render_fundus(**kwargs)
    assert "\n" not in str(error.value)
