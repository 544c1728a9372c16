"""The in-domain encoder beside the paper's (pggan_core/latent/indomain.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pggan_core.config import load_config
from pggan_core.latent.encoder import (
    INDOMAIN_LATENTS_FILE,
    encode_run,
    load_latents,
    refine_latents,
)
from pggan_core.latent.indomain import (
    INVERSION_FILE,
    VARIANTS,
    WEIGHTS_FILE,
    invert_run,
    train_indomain_encoder,
)
from pggan_core.latent.space import score_latent_space
from pggan_core.training.networks import Encoder, Generator


def _tiny(latent_dim: int = 8, resolution: int = 8, seed: int = 0):
    config = load_config("smoke", "rop", {"model": {"latent_dim": latent_dim},
                                          "inversion": {"iterations": 60, "batch_size": 8,
                                                        "lr": 3e-3}})
    torch.manual_seed(seed)
    G = Generator(config.model, 4, resolution).eval().requires_grad_(False)
    encoder = Encoder(config.model, 4, resolution).eval().requires_grad_(False)
    return config, G, encoder


def test_refinement_without_the_domain_term_is_the_plain_refinement():
    # domain_weight 0 leaves the pixel error alone: the same Adam steps as refine_latents
    config, G, encoder = _tiny()
    z = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    images = np.tanh(np.random.default_rng(1).standard_normal((5, 4, 8, 8))).astype(np.float32)
    plain = refine_latents(G, z, images, 8, 1.0, steps=4, lr=0.05)
    ours = refine_latents(G, z, images, 8, 1.0, steps=4, lr=0.05, encoder=encoder,
                          domain_weight=0.0)
    np.testing.assert_allclose(ours, plain, rtol=1e-5, atol=1e-6)
    assert refine_latents(G, z[:0], images[:0], 8, 1.0, steps=4).shape == (0, 8)


def test_the_domain_term_pulls_latents_towards_what_the_encoder_reads():
    config, G, encoder = _tiny()
    z = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    images = np.tanh(np.random.default_rng(1).standard_normal((4, 4, 8, 8))).astype(np.float32)

    def domain_error(latents: np.ndarray) -> float:
        with torch.no_grad():
            t = torch.from_numpy(latents)
            return float(((encoder(G(t, 8, 1.0)) - t) ** 2).mean())

    free = refine_latents(G, z, images, 8, 1.0, 30, 0.05, encoder, 0.0)
    held = refine_latents(G, z, images, 8, 1.0, 30, 0.05, encoder, 10.0)
    assert domain_error(held) < domain_error(free)


def test_training_on_reals_lowers_their_reconstruction_error():
    config, G, start = _tiny()
    reals = np.asarray(G(torch.randn(32, 8, generator=torch.Generator().manual_seed(5)), 8,
                         1.0))  # images the generator can draw, so the error can fall
    encoder, losses = train_indomain_encoder(G, start, reals, config, 8, progress=False)
    assert len(losses["reconstruction"]) == len(losses["latent"]) == 60
    assert np.mean(losses["reconstruction"][-10:]) < np.mean(losses["reconstruction"][:10])
    # the start is copied, not changed; the result is frozen for inference
    assert all(not p.requires_grad for p in encoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(encoder.state_dict().values(),
                                                     start.state_dict().values(), strict=True))


@pytest.mark.slow
def test_invert_run_writes_its_files_and_reuses_its_encoder(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    encode_run(run, progress=False)
    result = invert_run(run, progress=False)
    assert json.loads((run / INVERSION_FILE).read_text()) == result
    assert (run / WEIGHTS_FILE).is_file() and not result["reused"]
    for variant in VARIANTS:
        assert result["reconstruction_retrieval"][variant] is not None
    latents, labels = load_latents(run, INDOMAIN_LATENTS_FILE)
    assert len(latents) == result["train_images_encoded"] == len(labels)
    assert np.isfinite(latents).all()
    figure = np.load(run / "figures" / "indomain_reconstructions.npz")
    assert figure["reals"].shape == figure["indomain"].shape == figure["indomain_refined"].shape

    again = invert_run(run, progress=False)
    assert again["reused"] and again["r2"] == pytest.approx(result["r2"])
    # a new paper encoder (what it starts from) makes the in-domain one stale
    encode_run(run, iterations=3, progress=False)
    assert not invert_run(run, progress=False)["reused"]

    scores = score_latent_space(run, n_generated=32, encoder="indomain")
    assert json.loads((run / "latent_space_indomain.json").read_text()) == scores
    assert INDOMAIN_LATENTS_FILE in scores["derivation"]["inputs"]


def test_a_missing_indomain_latents_file_names_the_command(tmp_path: Path):
    from pggan_core.errors import RunNotFoundError

    with pytest.raises(RunNotFoundError, match="pggan invert"):
        load_latents(tmp_path, INDOMAIN_LATENTS_FILE)


def test_the_reading_says_when_too_few_images_were_measured():
    from pggan_book.readings import indomain_reading

    empty = {"encoder": None, "refined": None, "indomain": None, "indomain_refined": None}
    paper = {"reconstruction_retrieval": empty, "reconstruction_detail_correlation": empty}
    ours = {**paper, "reconstruction_detail_correlation_unrelated": empty}
    assert indomain_reading(paper, ours).startswith("Too few held-out images")
