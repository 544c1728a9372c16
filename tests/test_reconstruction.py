"""Figure 4 as numbers (pggan_core/latent/reconstruction.py): retrieval, detail correlation and
the unrelated pairs they are read against."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from pggan_book.readings import reconstruction_verdict
from pggan_core.config import load_config
from pggan_core.generate import latent_usage
from pggan_core.latent.encoder import encode_run
from pggan_core.latent.reconstruction import (
    ReconstructionScores,
    detail_cores,
    detail_maps,
    fixed_derangement,
    reconstruction_scores,
    region_mse_to_inputs,
)
from pggan_core.training.networks import Generator

SIDE = 32


def fundus_like(n: int, seed: int) -> np.ndarray:
    """``n`` fundus-shaped images (n, 4, SIDE, SIDE) in [-1, 1]: a bright disc of independent
    noise on a black surround, so the field of view is the disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIDE, :SIDE] - (SIDE - 1) / 2
    disc = np.hypot(yy, xx) < SIDE * 0.45
    images = np.full((n, 4, SIDE, SIDE), -1.0, np.float32)
    images[:, :, disc] = rng.uniform(-0.2, 0.8, (n, 4, int(disc.sum())))
    return images


def mri_like(n: int, seed: int) -> np.ndarray:
    """``n`` MR-slice-shaped images (n, 7, SIDE, SIDE): noise inside a square "brain", -1
    outside."""
    rng = np.random.default_rng(seed)
    images = np.full((n, 7, SIDE, SIDE), -1.0, np.float32)
    images[:, :, 6:26, 6:26] = rng.normal(0.0, 0.3, (n, 7, 20, 20))
    return images


@pytest.fixture(scope="module")
def rop_data():
    return load_config("smoke", "rop").data


@pytest.fixture(scope="module")
def brats_data():
    return load_config("smoke", "brats").data


def test_reconstructions_equal_to_their_inputs_are_all_retrieved_and_fully_correlated(
        rop_data, brats_data):
    for data_cfg, images in ((rop_data, fundus_like(12, 0)), (brats_data, mri_like(12, 0))):
        scores = reconstruction_scores(images, images.copy(), data_cfg)
        assert scores["retrieval"] == 1.0
        assert scores["detail_correlation"] == pytest.approx(1.0, abs=1e-6)
        # independent noise images share no detail: the baseline sits near 0
        assert abs(scores["detail_correlation_unrelated"]) < 0.1


def test_unrelated_reconstructions_are_retrieved_at_chance_and_share_no_detail(rop_data):
    n, trials = 20, 10
    retrieval, correlation = [], []
    for trial in range(trials):
        scores = reconstruction_scores(fundus_like(n, trial), fundus_like(n, 100 + trial),
                                       rop_data)
        retrieval.append(scores["retrieval"])
        correlation.append(scores["detail_correlation"])
    # chance is 1/n = 0.05; 200 independent draws put the mean within about ±0.05 of it
    assert abs(np.mean(retrieval) - 1 / n) < 0.05
    assert abs(np.mean(correlation)) < 0.05


def test_retrieval_picks_the_own_input_when_a_reconstruction_is_a_noisy_copy(rop_data):
    inputs = fundus_like(10, 1)
    noisy = inputs + np.random.default_rng(2).normal(0, 0.1, inputs.shape).astype(np.float32)
    scores = reconstruction_scores(inputs, noisy, rop_data)
    assert scores["retrieval"] == 1.0
    assert 0.3 < scores["detail_correlation"] < 1.0


def test_region_mse_matches_a_direct_masked_mean():
    inputs, reconstructions = fundus_like(5, 3)[:, :3], fundus_like(5, 4)[:, :3]
    regions = np.random.default_rng(5).random((5, SIDE, SIDE)) < 0.5
    masked = (inputs * regions[:, None]).reshape(5, -1)
    fast = region_mse_to_inputs(reconstructions, masked,
                                regions.reshape(5, -1).astype(np.float32),
                                (masked.astype(np.float64) ** 2).sum(axis=1))
    direct = np.array([[((r - x) ** 2)[:, region].mean()
                        for x, region in zip(inputs, regions, strict=True)]
                       for r in reconstructions])
    np.testing.assert_allclose(fast, direct, rtol=1e-5)


def test_the_derangement_has_no_fixed_point_and_is_fixed():
    for n in (2, 3, 7, 60, 200):
        permutation = fixed_derangement(n)
        assert sorted(permutation) == list(range(n))
        assert not np.any(permutation == np.arange(n)), n
        np.testing.assert_array_equal(permutation, fixed_derangement(n))
    with pytest.raises(ValueError):
        fixed_derangement(1)


def test_detail_is_scored_two_sigmas_inside_the_region_edge_and_the_image_border():
    region = np.ones((1, 20, 20), bool)
    core = detail_cores(region, sigma=2.0)
    # the image border is an edge: pixel k lies k + 1 px from outside, so > 4 px keeps 4..15
    assert core.sum() == 12 * 12 and core[0, 4:16, 4:16].all()


def test_detail_ignores_the_rim_of_the_region():
    # a flat disc on a black surround has no detail: the surround must not leak in as an edge
    flat = np.full((1, SIDE, SIDE), -1.0, np.float32)
    yy, xx = np.mgrid[:SIDE, :SIDE] - (SIDE - 1) / 2
    disc = (np.hypot(yy, xx) < SIDE * 0.4)[None]
    flat[disc] = 0.5
    np.testing.assert_allclose(detail_maps(flat, disc, 3.0), 0.0, atol=1e-5)


def test_the_refined_variant_and_a_single_image_are_reported_as_none(rop_data):
    scorer = ReconstructionScores(fundus_like(1, 5), rop_data)
    scorer.add("encoder", 0, fundus_like(1, 5))
    summary = scorer.summary()
    assert summary["reconstruction_retrieval"] == {"encoder": 1.0, "refined": None}
    assert summary["reconstruction_retrieval_chance"] == 1.0
    assert summary["reconstruction_detail_correlation_unrelated"]["encoder"] is None
    assert summary["reconstruction_detail_sigma_px"] == pytest.approx(SIDE / 21)
    assert summary["reconstruction_detail_images"] == 1


def test_a_region_too_small_for_a_core_leaves_the_image_out_of_the_detail_mean(brats_data):
    images = mri_like(3, 6)
    images[0, :, :, :] = -1.0
    images[0, :, 10:13, 10:13] = 0.5  # a 3 px "brain": nothing lies two sigmas inside it
    scorer = ReconstructionScores(images, brats_data)
    scorer.add("encoder", 0, images)
    summary = scorer.summary()
    assert summary["reconstruction_detail_images"] == 2
    assert summary["reconstruction_detail_correlation"]["encoder"] == pytest.approx(1.0)


def test_the_verdict_reads_retrieval_against_chance_and_detail_against_unrelated_pairs():
    summary = {"reconstruction_retrieval": {"encoder": 0.23, "refined": 0.43},
               "reconstruction_retrieval_chance": 1 / 60,
               "reconstruction_detail_correlation": {"encoder": 0.09, "refined": 0.13},
               "reconstruction_detail_correlation_unrelated": {"encoder": 0.04, "refined": 0.02}}
    verdict = reconstruction_verdict(summary)
    assert "23%" in verdict and "chance 2%" in verdict and "43% after refinement" in verdict
    assert "part of what tells the images apart" in verdict and "a trace of" in verdict
    summary["reconstruction_retrieval"] = {"encoder": 0.02, "refined": None}
    summary["reconstruction_detail_correlation"]["encoder"] = 0.045
    verdict = reconstruction_verdict(summary)
    assert "no better than chance" in verdict and "refinement" not in verdict
    assert "none of the fine detail" in verdict


def test_latent_usage_counts_the_directions_a_generator_moves_along():
    config = load_config("smoke", "rop", {"model": {"latent_dim": 8}})
    torch.manual_seed(0)
    G = Generator(config.model, 4, 8).eval().requires_grad_(False)
    usage = latent_usage(G, 8, latent_dim=8, n=2, seed=0)
    assert usage["latent_dim"] == 8 and len(usage["spectrum"]) == 8
    assert usage["spectrum"][0] == 1.0
    assert all(a >= b for a, b in zip(usage["spectrum"], usage["spectrum"][1:], strict=False))
    # pixel norm makes the image blind to z's length: at most latent_dim - 1 directions
    assert 1.0 <= usage["participation_ratio"] <= 8
    assert usage["spectrum"][-1] < 0.05


@pytest.mark.slow
def test_encode_run_writes_the_measures_for_both_reconstructions(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    encode_run(run, iterations=3, progress=False)
    summary = json.loads((run / "encoder.json").read_text())
    n = summary["heldout_images"]
    assert summary["reconstruction_retrieval_chance"] == pytest.approx(1 / n)
    for key in ("reconstruction_retrieval", "reconstruction_detail_correlation",
                "reconstruction_detail_correlation_unrelated"):
        assert set(summary[key]) == {"encoder", "refined"}, key
    assert 0.0 <= summary["reconstruction_retrieval"]["refined"] <= 1.0
    assert -1.0 <= summary["reconstruction_detail_correlation"]["encoder"] <= 1.0
    usage = summary["latent_spectrum"]
    assert usage["latent_dim"] == len(usage["spectrum"])
    assert 1.0 <= usage["participation_ratio"] <= usage["latent_dim"]


def test_coarse_label_retrieval_finds_the_own_layout_among_the_same_class():
    from pggan_core.latent.reconstruction import coarse_label_maps, coarse_label_retrieval

    rng = np.random.default_rng(0)
    inputs = -np.ones((12, 4, 32, 32), np.float32)
    for i, image in enumerate(inputs):  # a vessel-like bar at a place of its own
        image[3, 4 + 2 * i:6 + 2 * i, 2:30] = 1.0
    noisy = inputs + rng.normal(0, 0.3, inputs.shape).astype(np.float32)
    classes = np.array(["OD", "OS"] * 6)
    maps = coarse_label_maps(inputs, 3)
    assert maps.shape == (12, 32, 32)
    found = coarse_label_retrieval(maps, coarse_label_maps(noisy, 3), classes)
    assert found["own_first"] == 1.0 and found["chance"] == pytest.approx(1 / 6)
    shuffled = coarse_label_retrieval(maps, coarse_label_maps(noisy[::-1], 3), classes)
    assert shuffled["own_first"] < 0.5
    # no label channel (an image-only run): nothing to say
    assert coarse_label_retrieval(coarse_label_maps(inputs[:, :3], 3),
                                  coarse_label_maps(noisy[:, :3], 3), classes)["n"] == 0
