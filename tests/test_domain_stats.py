"""Fundus vessel-tree and MRI tumour statistics on hand-drawn shapes with known answers."""

import cv2
import numpy as np
import pytest

from pggan_core.errors import DataError
from pggan_core.measures.domain_stats import (
    compare_distributions,
    fundus_stats,
    junctions,
    mri_stats,
)

SIZE = 128


def draw(*shapes: tuple) -> np.ndarray:
    """A bool vessel map with 3-px-wide polylines."""
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    for points in shapes:
        cv2.polylines(canvas, [np.asarray(points, np.int32)], False, 1, 3)
    return canvas.astype(bool)


def y_shape() -> np.ndarray:
    return draw([(64, 120), (64, 64), (20, 15)], [(64, 64), (108, 15)])


def sinusoid(amplitude: float) -> np.ndarray:
    xs = np.arange(10, 118)
    return draw(np.stack([xs, 64 + amplitude * np.sin(xs / 8)], axis=1))


def test_branch_points_of_a_y_and_of_lines():
    maps = np.stack([y_shape(), draw([(10, 64), (118, 64)]), sinusoid(20)])
    stats = fundus_stats(maps)
    np.testing.assert_array_equal(stats["branch_points"], [1, 0, 0])


def test_branch_points_are_per_full_frame_of_fov():
    # A Y in the top half: inside a FOV of half the frame it is 2 junctions per full frame.
    small_y = draw([(64, 60), (64, 32), (30, 5)], [(64, 32), (98, 5)])
    top_half = np.zeros((SIZE, SIZE), bool)
    top_half[: SIZE // 2] = True
    assert fundus_stats(small_y[None])["branch_points"][0] == 1
    assert fundus_stats(small_y[None], top_half)["branch_points"][0] == 2


def test_junctions_ignore_staircase_corners():
    # A 4-connected L-bend: two pixels by the corner have 3 neighbours but only 2 branches.
    skeleton = np.zeros((9, 9), bool)
    skeleton[1:5, 4] = True
    skeleton[4, 5:8] = True
    assert skeleton[2:5, 3:6].sum() - 1 == 3  # pixel (3, 4) has 3 neighbours
    assert junctions(skeleton).sum() == 0
    cross = np.zeros((9, 9), bool)
    cross[4, :] = cross[:, 4] = True
    assert junctions(cross).sum() == 1


def test_tortuosity_straight_lines_near_one_and_sinusoids_above():
    maps = np.stack([draw([(10, 64), (118, 64)]), draw([(10, 10), (118, 118)]),
                     draw([(10, 30), (118, 75)]), sinusoid(6), sinusoid(20)])
    tortuosity = fundus_stats(maps)["tortuosity"]
    assert tortuosity[0] == pytest.approx(1.0, abs=0.01)
    assert tortuosity[1] == pytest.approx(1.0, abs=0.01)
    assert 1.0 <= tortuosity[2] < 1.1  # oblique: the 8-step path overestimates a little
    assert 1.1 < tortuosity[3] < tortuosity[4]


def test_vessel_density_and_inputs_in_minus_one_to_one():
    line = draw([(10, 64), (118, 64)])
    channel = np.where(line, 0.9, -0.9)[None].astype(np.float32)
    fov = np.zeros((SIZE, SIZE), bool)
    fov[32:96] = True
    stats = fundus_stats(channel, fov)
    assert stats["vessel_density"][0] == pytest.approx(line[32:96].sum() / fov.sum())
    empty = fundus_stats(np.zeros((1, SIZE, SIZE), bool))
    assert empty["vessel_density"][0] == 0 and np.isnan(empty["tortuosity"][0])


def disc(radius: float, centre: tuple[float, float] = (64, 64)) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return np.hypot(yy - centre[0], xx - centre[1]) <= radius


def test_tumour_area_and_composition_of_known_discs():
    brain = disc(50)
    whole = disc(20)
    core = disc(8)
    labels = np.full((2, 3, SIZE, SIZE), -1.0, np.float32)
    labels[0, 0][core] = 1.0  # NCR in the core
    labels[0, 1][whole & ~core] = 1.0  # oedema around it
    stats = mri_stats(labels, brain)
    assert stats["tumour_area"][0] == pytest.approx(whole.sum() / brain.sum())
    assert stats["tumour_area"][0] == pytest.approx((20 / 50) ** 2, rel=0.03)
    assert stats["ncr_fraction"][0] == pytest.approx(core.sum() / whole.sum())
    assert stats["ed_fraction"][0] == pytest.approx(1 - core.sum() / whole.sum())
    assert stats["et_fraction"][0] == 0
    np.testing.assert_array_equal(stats["tumour_present"], [1.0, 0.0])
    assert stats["tumour_area"][1] == 0 and np.isnan(stats["ncr_fraction"][1])


def test_tumour_outside_the_brain_and_stray_pixels_do_not_count():
    labels = np.zeros((1, 3, SIZE, SIZE), bool)
    labels[0, 2][disc(5, (10, 10))] = True  # outside the brain
    labels[0, 2, 64, 64] = True  # one stray pixel inside
    stats = mri_stats(labels, disc(50))
    assert stats["tumour_area"][0] == pytest.approx(1 / disc(50).sum())
    assert stats["tumour_present"][0] == 0.0
    with pytest.raises(DataError, match="3 label channels"):
        mri_stats(np.zeros((1, 7, SIZE, SIZE)), disc(50))


def test_compare_distributions():
    real = {"a": np.array([0.0, 1.0, np.nan]), "b": np.array([1.0, 1.0])}
    fake = {"a": np.array([1.0, 2.0]), "b": np.array([1.0, 1.0, 1.0])}
    table = compare_distributions(real, fake)
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "n_real"] == 2 and table.loc["a", "real_mean"] == 0.5
    assert table.loc["a", "fake_std"] == 0.5
    assert table.loc["a", "wasserstein"] == pytest.approx(1.0)
    assert table.loc["b", "wasserstein"] == 0.0
    with pytest.raises(DataError, match="one side only"):
        compare_distributions(real, {"a": fake["a"]})
