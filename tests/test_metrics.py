"""SWD, MS-SSIM, vessel-agreement AUC and nearest-neighbour distance on small synthetic images."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from pggan_core.errors import DataError
from pggan_core.evaluation.vessel_agreement import (
    VESSEL_LABEL_THRESHOLD,
    per_image_vessel_auc,
    vessel_agreement_auc,
)
from pggan_core.measures.ms_ssim import ms_ssim, ms_ssim_diversity, ms_ssim_num_scales
from pggan_core.measures.neighbours import nearest_neighbour_distances, nearest_neighbours
from pggan_core.measures.swd import _pyr_up, laplacian_pyramid, sliced_wasserstein, swd_floor


def smooth_images(n: int, channels: int, size: int, seed: int = 0) -> np.ndarray:
    """Blobby images in [-1, 1]: smooth structure at several scales, like a downsampled photo."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, channels, size, size))
    return np.tanh(3 * ndimage.gaussian_filter(noise, (0, 0, 2, 2))).astype(np.float32)


def add_noise(images: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (images + sigma * rng.standard_normal(images.shape)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# SWD


def test_laplacian_pyramid_reconstructs_the_image():
    images = smooth_images(2, 3, 32)
    levels = laplacian_pyramid(images, 3)
    assert [lvl.shape[2:] for lvl in levels] == [(32, 32), (16, 16), (8, 8)]
    rebuilt = levels[-1]
    for band in levels[-2::-1]:
        rebuilt = _pyr_up(rebuilt) + band
    np.testing.assert_allclose(rebuilt, images, atol=1e-5)


def test_swd_levels_keys_and_determinism():
    real, fake = smooth_images(8, 3, 64), smooth_images(8, 3, 64, seed=5)
    result = sliced_wasserstein(real, fake, seed=3, n_projections=128)
    assert list(result) == ["swd_64", "swd_32", "swd_16", "swd_mean"]
    assert result["swd_mean"] == pytest.approx(np.mean([result[k] for k in list(result)[:3]]))
    assert sliced_wasserstein(real, fake, seed=3, n_projections=128) == result
    assert sliced_wasserstein(real, fake, seed=4, n_projections=128) != result


def test_swd_grows_with_the_perturbation_and_identical_sets_sit_at_the_noise_floor():
    real = smooth_images(16, 3, 32)

    def swd(fake: np.ndarray, n_descriptors: int = 128) -> float:
        return sliced_wasserstein(real, fake, n_descriptors=n_descriptors,
                                  n_projections=128)["swd_mean"]

    same = swd(real)
    noisy = [swd(add_noise(real, sigma)) for sigma in (0.1, 0.2, 0.4)]
    assert same < noisy[0] < noisy[1] < noisy[2]
    assert noisy[2] > 1.5 * same
    # Identical sets differ only by the random patch positions: more patches, lower floor (-> 0).
    assert swd(real, n_descriptors=256) < 0.5 * swd(real, n_descriptors=16)


def test_swd_ignores_a_global_shift_like_nvidia():
    # Each set is normalised per channel on its own, so a constant offset of all fakes is invisible.
    real = smooth_images(8, 3, 32)
    assert sliced_wasserstein(real, real + 0.3, n_projections=128) == pytest.approx(
        sliced_wasserstein(real, real, n_projections=128), rel=1e-4)


@pytest.mark.parametrize("channels", [3, 4, 7])
def test_swd_any_channel_count_and_unequal_set_sizes(channels):
    real = smooth_images(12, channels, 32)
    fake = add_noise(smooth_images(8, channels, 32, seed=2), 0.3)
    result = sliced_wasserstein(real, fake, n_projections=128)
    assert set(result) == {"swd_32", "swd_16", "swd_mean"}
    assert all(np.isfinite(v) and v > 0 for v in result.values())


def test_swd_constant_channel_stays_finite():
    real = smooth_images(8, 4, 32)
    real[:, 3] = -1.0  # an empty label map
    assert np.isfinite(sliced_wasserstein(real, real)["swd_mean"])


def test_swd_floor_is_swd_between_two_real_halves():
    real = smooth_images(8, 3, 32)
    assert swd_floor(real[:4], real[4:]) == sliced_wasserstein(real[:4], real[4:])


def test_swd_rejects_bad_shapes():
    with pytest.raises(DataError, match="cannot be reduced"):
        sliced_wasserstein(smooth_images(4, 3, 8), smooth_images(4, 3, 8))
    with pytest.raises(DataError, match="same channels"):
        sliced_wasserstein(smooth_images(4, 3, 32), smooth_images(4, 4, 32))


# ----------------------------------------------------------------------------------------------
# MS-SSIM


def test_ms_ssim_matches_pytorch_msssim():
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    a = smooth_images(2, 3, 193)  # odd: every scale exercises the padded 2x2 pooling
    b = np.clip(add_noise(a, 0.2), -1, 1)
    ours = ms_ssim(a, b)
    theirs = pytorch_msssim.ms_ssim(torch.from_numpy(a + 1), torch.from_numpy(b + 1),
                                    data_range=2.0, size_average=False).numpy()
    assert ms_ssim_num_scales(193) == 5
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert np.all(ours < 0.99)


def test_ms_ssim_of_an_image_with_itself_is_one_at_any_size():
    for size, scales in ((16, 1), (64, 3), (128, 4)):
        assert ms_ssim_num_scales(size) == scales
        images = smooth_images(2, 4, size)
        np.testing.assert_allclose(ms_ssim(images, images), 1.0, atol=1e-6)


def test_ms_ssim_drops_with_noise():
    a = smooth_images(4, 3, 64)
    scores = [ms_ssim(a, np.clip(add_noise(a, s), -1, 1)).mean() for s in (0.05, 0.2, 0.8)]
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_ms_ssim_diversity():
    one = smooth_images(1, 3, 64)
    assert ms_ssim_diversity(np.repeat(one, 6, axis=0), n_pairs=10) == pytest.approx(1.0)
    noise = np.random.default_rng(0).uniform(-1, 1, (8, 3, 64, 64)).astype(np.float32)
    assert ms_ssim_diversity(noise, n_pairs=10) < 0.1
    assert ms_ssim_diversity(noise, 10, seed=1) == ms_ssim_diversity(noise, 10, seed=1)
    with pytest.raises(DataError):
        ms_ssim_diversity(noise[:1], n_pairs=4)


def test_ms_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(DataError, match="smaller than"):
        ms_ssim(smooth_images(2, 3, 8), smooth_images(2, 3, 8))


# ----------------------------------------------------------------------------------------------
# Vessel agreement AUC


def vessel_maps(n: int = 4, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Reference vessel channels in [-1, 1] and a circular FOV."""
    rng = np.random.default_rng(0)
    channel = np.where(rng.random((n, size, size)) < 0.15, 1.0, -1.0).astype(np.float32)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return channel, np.hypot(yy, xx) < 0.47 * size


def test_auc_of_a_perfect_vessel_map_is_one_and_of_a_random_one_a_half():
    channel, fov = vessel_maps()
    segmentation = (channel + 1) / 2 * 0.8 + 0.1  # the U-Net sees exactly the drawn vessels
    assert vessel_agreement_auc(channel, segmentation, fov) == 1.0
    np.testing.assert_allclose(per_image_vessel_auc(channel, segmentation, fov), 1.0)
    random = np.random.default_rng(1).standard_normal(channel.shape)
    assert vessel_agreement_auc(random, segmentation, fov) == pytest.approx(0.5, abs=0.05)
    assert vessel_agreement_auc(-channel, segmentation) == 0.0


def test_auc_is_the_papers_direction_not_its_swap():
    """Label = the U-Net's segmentation binarised at 0.5, score = the GAN's continuous channel.

    Six pixels where the two directions disagree: the paper's is 7/8; scoring the U-Net's
    probability against the binarised GAN channel instead would give 1.0.
    """
    gan_channel = np.array([0.9, 0.8, 0.3, 0.2, 0.1, -0.5], np.float32).reshape(1, 1, 6)
    unet_probability = np.array([0.9, 0.4, 0.6, 0.1, 0.45, 0.05], np.float32).reshape(1, 1, 6)
    assert VESSEL_LABEL_THRESHOLD == 0.5
    assert vessel_agreement_auc(gan_channel, unet_probability) == pytest.approx(7 / 8)
    swapped = roc_auc_score((gan_channel > 0).ravel(), unet_probability.ravel())
    assert swapped == 1.0 != vessel_agreement_auc(gan_channel, unet_probability)


def test_auc_counts_only_pixels_inside_the_fov():
    channel, fov = vessel_maps()
    score = channel.copy()
    score[:, ~fov] = -score[:, ~fov]  # wrong outside the FOV only
    segmentation = (channel + 1) / 2
    assert vessel_agreement_auc(score, segmentation, fov) == 1.0
    assert vessel_agreement_auc(score, segmentation) < 1.0


def test_auc_errors_and_single_class_images():
    channel, fov = vessel_maps(n=2)
    segmentation = (channel + 1) / 2
    segmentation[1] = 0.0  # the U-Net finds no vessel in the second image
    assert np.isnan(per_image_vessel_auc(channel, segmentation, fov)[1])
    with pytest.raises(DataError, match="one class"):
        vessel_agreement_auc(channel, np.zeros_like(channel), fov)
    with pytest.raises(DataError, match=r"\(N, H, W\)"):
        vessel_agreement_auc(channel[:, None], segmentation[:, None])


# ----------------------------------------------------------------------------------------------
# Nearest neighbours


def test_nearest_neighbours_find_copies_and_match_brute_force():
    train = smooth_images(10, 3, 16)
    query = np.concatenate([train[[7]], smooth_images(5, 3, 16, seed=9)])
    dist, idx = nearest_neighbours(query, train, batch=4)
    assert dist[0] == 0.0 and idx[0] == 7
    brute = np.linalg.norm(query[:, None].reshape(6, 1, -1).astype(np.float64)
                           - train.reshape(1, 10, -1), axis=2)
    np.testing.assert_allclose(dist, brute.min(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(idx, brute.argmin(axis=1))
    np.testing.assert_array_equal(nearest_neighbour_distances(query, train), dist)
