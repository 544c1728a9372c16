"""Preprocessing for fundus photographs and BraTS volumes (pggan_core.data.preprocess)."""

from __future__ import annotations

import numpy as np
import pytest

from pggan_core.data.preprocess import (
    brats_slice_channels,
    clahe,
    fov_mask,
    fundus_channels,
    gamma_correct,
    select_slices,
    to_gray,
    vessel_input,
    zscore_volume,
)
from pggan_core.errors import DataError
from pggan_core.settings import DataConfig


def disc_photo(size: int = 64, radius: float = 0.4) -> np.ndarray:
    """A reddish disc on black with a dark horizontal 'vessel' through the centre."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    inside = np.hypot(yy - 0.5, xx - 0.5) < radius
    rgb = np.zeros((size, size, 3), np.float32)
    rgb[inside] = (0.8, 0.4, 0.15)
    rgb[size // 2 - 1:size // 2 + 1][inside[size // 2 - 1:size // 2 + 1]] = (0.4, 0.1, 0.05)
    return rgb


def test_to_gray_uses_luma_weights_and_accepts_uint8():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 1] = (255, 255, 255)
    gray = to_gray(rgb)
    assert gray.dtype == np.float32
    assert gray[0, 0] == pytest.approx(0.299)
    assert gray[1, 1] == pytest.approx(1.0)
    assert np.allclose(to_gray(rgb.astype(np.float32) / 255), gray)


def test_gamma_brightens_midtones_and_keeps_ends():
    gray = np.array([[0.0, 0.25, 0.5, 1.0]], np.float32)
    out = gamma_correct(gray, 1.2)
    assert out[0, 0] == 0.0 and out[0, 3] == pytest.approx(1.0)
    assert out[0, 2] == pytest.approx(0.5 ** (1 / 1.2))
    assert (out[0, 1:3] > gray[0, 1:3]).all()
    assert np.allclose(gamma_correct(gray, 1.0), gray)


def test_clahe_spreads_a_low_contrast_image():
    rng = np.random.default_rng(0)
    gray = (0.45 + 0.05 * rng.random((64, 64))).astype(np.float32)
    out = clahe(gray, clip=2.0, tiles=8)
    assert out.shape == gray.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.std() > 2 * gray.std()
    # the ranking of pixels inside a tile is kept (a monotone mapping per tile, blended)
    assert np.corrcoef(out.ravel(), gray.ravel())[0, 1] > 0.5


def test_fov_mask_thresholds_red_and_erodes():
    rgb = disc_photo(64, radius=0.4)
    fov = fov_mask(rgb, erosion_px=0)
    assert fov.dtype == bool
    assert fov[32, 32] and not fov[0, 0]
    assert fov.sum() == pytest.approx(np.pi * (0.4 * 64) ** 2, rel=0.05)
    eroded = fov_mask(rgb, erosion_px=3)
    assert (eroded <= fov).all() and eroded.sum() < fov.sum()
    radius_eroded = np.sqrt(eroded.sum() / np.pi)
    assert radius_eroded == pytest.approx(0.4 * 64 - 3, abs=1.0)


def test_vessel_input_is_zero_outside_fov_and_keeps_vessels_dark():
    rgb = disc_photo(64)
    fov = fov_mask(rgb, 0)
    x = vessel_input(rgb, fov, DataConfig())
    assert x.shape == (64, 64) and x.dtype == np.float32
    assert (x[~fov] == 0).all()
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert x[32, 32] < x[24, 32]  # the vessel row stays darker than the background above it


def test_fundus_channels_maps_to_minus_one_one():
    rgb = disc_photo(32)
    vessels = np.zeros((32, 32), bool)
    vessels[16] = True
    ch = fundus_channels(rgb, vessels)
    assert ch.shape == (4, 32, 32) and ch.dtype == np.float32
    assert ch.min() >= -1 and ch.max() <= 1
    assert np.allclose(ch[:3], rgb.transpose(2, 0, 1) * 2 - 1)
    assert (ch[3, 16] == 1).all() and (ch[3, 0] == -1).all()
    with pytest.raises(ValueError):
        fundus_channels(rgb, vessels[:8])


def brain_case(shape=(40, 44, 30), seed=0):
    """A ball-shaped brain in the middle slices, a tumour in a few of them."""
    rng = np.random.default_rng(seed)
    x, y, z = np.indices(shape)
    c = np.array(shape) / 2
    brain = ((x - c[0]) / 16) ** 2 + ((y - c[1]) / 18) ** 2 + ((z - c[2]) / 12) ** 2 < 1
    mods = np.stack([rng.normal(100 + 50 * i, 10 + i, shape) for i in range(4)])
    mods = (mods * brain).astype(np.float32)
    seg = np.zeros(shape, np.uint8)
    seg[18:22, 20:24, 14:18] = 2
    seg[19:21, 21:23, 15:17] = 4
    seg[20, 22, 16] = 1
    return mods, seg, brain


def test_zscore_volume_is_standard_over_brain_and_zero_outside():
    mods, _, brain = brain_case()
    z = zscore_volume(mods, brain, "case1")
    assert z.dtype == np.float32 and z.shape == mods.shape
    for i in range(4):
        assert z[i][brain].mean() == pytest.approx(0, abs=1e-4)
        assert z[i][brain].std() == pytest.approx(1, abs=1e-3)
        assert (z[i][~brain] == 0).all()


def test_zscore_volume_rejects_constant_nan_and_empty():
    mods, _, brain = brain_case()
    constant = mods.copy()
    constant[2][brain] = 7.0
    with pytest.raises(DataError, match="case7.*modality 2.*constant"):
        zscore_volume(constant, brain, "case7")
    nan = mods.copy()
    nan[0][brain.nonzero()[0][0], brain.nonzero()[1][0], brain.nonzero()[2][0]] = np.nan
    with pytest.raises(DataError, match="case8.*NaN"):
        zscore_volume(nan, brain, "case8")
    with pytest.raises(DataError, match="case9.*empty"):
        zscore_volume(mods, np.zeros_like(brain), "case9")


def test_select_slices_skips_empty_slices_and_keeps_tumour_and_healthy():
    _, seg, brain = brain_case()
    area = brain.reshape(-1, brain.shape[2]).mean(axis=0)
    rng = np.random.default_rng(0)
    chosen = select_slices(brain, seg, min_brain_fraction=0.05, n=8, rng=rng)
    assert len(chosen) == 8 and chosen == sorted(set(chosen))
    assert all(area[z] >= 0.05 for z in chosen)
    tumour = [(seg[:, :, z] > 0).any() for z in chosen]
    assert any(tumour) and not all(tumour)
    assert max(chosen) - min(chosen) >= 8  # spread over z, not bunched
    valid = np.flatnonzero(area >= 0.05)
    assert select_slices(brain, seg, 0.05, n=100, rng=rng) == list(valid)
    assert select_slices(np.zeros_like(brain), seg, 0.05, n=4, rng=rng) == []
    again = select_slices(brain, seg, 0.05, n=8, rng=np.random.default_rng(0))
    assert again == chosen


def test_brats_slice_channels_shapes_ranges_and_one_hot():
    mods, seg, brain = brain_case()
    z = zscore_volume(mods, brain, "case1")
    ch = brats_slice_channels(z, seg, brain, z=16, pad_to=64, z_clip=4.0)
    assert ch.shape == (7, 64, 64) and ch.dtype == np.float32
    assert ch.min() >= -1 and ch.max() <= 1
    assert set(np.unique(ch[4:])) == {-1.0, 1.0}
    # every label pixel shows up in exactly its own channel, once, after the same transform
    for k, label in enumerate((1, 2, 4)):
        assert (ch[4 + k] == 1).sum() == (seg[:, :, 16] == label).sum()
    assert ((ch[4:] == 1).sum(axis=0) <= 1).all()
    # background (outside brain, and the padding) is -1 in every modality
    assert (ch[:4, 0, :] == -1).all() and (ch[:4, :, 0] == -1).all()
    brain_pixels = (ch[0] != -1).sum()
    assert brain_pixels == pytest.approx(brain[:, :, 16].sum(), rel=0.01)
    # anterior (high y) at the top: the row index falls as y rises
    marker = np.zeros_like(seg)
    marker[5, 40, 16] = 1
    m = brats_slice_channels(z, marker, brain, 16, pad_to=64, z_clip=4.0)[4]
    row, col = np.argwhere(m == 1)[0]
    assert row == (64 - 44) // 2 + (44 - 1 - 40) and col == (64 - 40) // 2 + 5


def test_brats_slice_channels_crops_when_larger_than_pad():
    mods, seg, brain = brain_case()
    z = zscore_volume(mods, brain, "case1")
    ch = brats_slice_channels(z, seg, brain, z=16, pad_to=32, z_clip=4.0)
    assert ch.shape == (7, 32, 32)
