"""The latent encoder, inversion and latent-space tools (pggan_core/latent/)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pggan_book.readings import score_reading, score_table
from pggan_core.config import load_config
from pggan_core.data.store import PreparedDataset
from pggan_core.errors import DataError, RunNotFoundError
from pggan_core.latent.encoder import (
    encode_run,
    latent_r2,
    load_encoder,
    load_latents,
    train_encoder,
)
from pggan_core.latent.probes import (
    draw_latents,
    fold_indices,
    label_silhouette,
    labels_of_generated,
    laterality_from_disc,
    probe_accuracy,
    tumour_from_label_channels,
)
from pggan_core.latent.space import (
    fold_groups,
    headline_scores,
    knn_accuracy,
    knn_correlation,
    knn_scores,
    path_by_value,
    probe_scores,
    score_latent_space,
    slerp,
    tsne_embedding,
    walk_path,
)
from pggan_core.runs.folder import require_generator, run_config
from pggan_core.training.networks import Encoder, Generator


@pytest.fixture(scope="module")
def encoded_run(tiny_run, tmp_path_factory) -> tuple[Path, dict]:
    """A copy of the shared tiny run (encoding writes into the run) and its encoding summary."""
    run = shutil.copytree(tiny_run, tmp_path_factory.mktemp("latent") / "run")
    return run, encode_run(run, progress=False)


@pytest.mark.slow
def test_encoder_inverts_a_generator_better_than_chance():
    # an untrained generator is still a fixed function of z: the encoder only has to invert it
    # a small latent keeps the test fast; the smoke profile's 32 learns the same way, slower
    config = load_config("smoke", "rop", {"model": {"latent_dim": 8},
                                          "encoder": {"iterations": 150, "batch_size": 8,
                                                      "lr": 3e-3}})
    torch.manual_seed(0)
    G = Generator(config.model, 4, 8).eval().requires_grad_(False)
    encoder, losses = train_encoder(G, config, 8, progress=False)
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    r2 = latent_r2(encoder, G, 8)
    assert r2 > 0.2, f"latent R² {r2:.3f} is no better than predicting the mean (0)"


def test_after_step_sees_every_update_and_leaves_the_training_as_it_was():
    # benchmarks/quality/encoder_sweep.py scores the encoder along the way through after_step; an
    # encoder scored (the RNG put back) ends where an unscored one does
    config = load_config("smoke", "rop", {"model": {"latent_dim": 8},
                                          "encoder": {"iterations": 6, "batch_size": 4}})
    torch.manual_seed(0)
    G = Generator(config.model, 4, 4).eval().requires_grad_(False)
    plain, plain_losses = train_encoder(G, config, 4, progress=False)
    seen = []

    def score(step, encoder):
        seen.append(step)
        rng = torch.get_rng_state()
        torch.randn(100)  # scoring draws random numbers too
        torch.set_rng_state(rng)

    scored, losses = train_encoder(G, config, 4, progress=False, after_step=score)
    assert seen == [1, 2, 3, 4, 5, 6]
    assert losses == plain_losses
    for a, b in zip(plain.state_dict().values(), scored.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_encode_run_writes_encoder_latents_and_figure(encoded_run):
    run, _ = encoded_run
    config = run_config("rop", "smoke")  # the shared run's: an encoder at its 16 px
    data = PreparedDataset(json.loads((run / "run.json").read_text())["data_dir"])
    train_rows = data.manifest[data.manifest["split"] == "train"]

    summary = json.loads((run / "encoder.json").read_text())
    assert summary["r2_multioutput"] == "uniform_average"
    iterations = config.encoder.iterations
    assert summary["iterations"] == iterations and len(summary["losses"]) == iterations
    assert summary["heldout_images"] == (data.manifest["split"] == "heldout").sum() >= 1
    assert summary["heldout_mse_encoder"] > 0 and summary["heldout_mse_refined"] > 0
    # Figure 4 at the layout's scale: generated images redrawn, label channels retrieved
    recovery = summary["generated_recovery"]
    assert recovery["n"] == 256 and recovery["recovery"] <= 1.0 and recovery["mse"] >= 0
    assert set(summary["coarse_label_retrieval"]) == {"encoder", "refined"}

    latents, labels = load_latents(run)
    assert latents.shape == (len(train_rows), config.model.latent_dim)
    assert latents.dtype == np.float32 and np.isfinite(latents).all()
    np.testing.assert_array_equal(labels["index"], train_rows["index"])
    np.testing.assert_array_equal(labels["laterality"], train_rows["laterality"])
    with np.load(run / "latents.npz", allow_pickle=False) as npz:
        assert {"latents", "index", "label_laterality", "label_split"} <= set(npz.files)

    state = torch.load(run / "encoder.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    encoder = load_encoder(run)
    resolution = config.schedule.max_resolution
    assert isinstance(encoder, Encoder) and encoder.resolution == summary["resolution"] == \
        resolution
    # the saved encoder gives the saved latents
    first = data.batch(train_rows["index"].to_numpy()[:2], resolution)
    np.testing.assert_allclose(encoder(torch.from_numpy(first)).numpy(), latents[:2], atol=1e-5)

    figures = run / "figures"
    assert (figures / "encoder_reconstructions.png").stat().st_size > 0
    with np.load(figures / "encoder_reconstructions.npz") as fig4:
        assert fig4["reals"].shape == fig4["from_encoder"].shape == fig4["from_refined"].shape
    assert "commit" in json.loads((figures / "encoder_reconstructions.json").read_text())


@pytest.mark.slow
def test_encode_run_reuses_a_matching_encoder_and_retrains_otherwise(encoded_run):
    run, encoded = encoded_run
    before = (run / "encoder.pt").read_bytes()
    again = encode_run(run, progress=False)
    assert again["reused"] and not encoded["reused"]
    assert again["r2"] == encoded["r2"] and (run / "encoder.pt").read_bytes() == before
    summary = encode_run(run, iterations=3, progress=False)  # other settings: trained anew
    assert summary["iterations"] == 3 and not summary["reused"]
    assert (run / "encoder.pt").read_bytes() != before


@pytest.mark.slow
def test_score_latent_space_writes_every_score_with_its_pixel_control(encoded_run, tmp_path):
    run = shutil.copytree(encoded_run[0], tmp_path / "run")
    result = score_latent_space(run, n_generated=64)
    assert json.loads((run / "latent_space.json").read_text()) == result
    for key in ("knn_laterality_accuracy", "knn_laterality_chance", "knn_laterality_pixels",
                "probe_laterality_accuracy", "probe_laterality_pixels",
                "tsne_laterality_silhouette", "tsne_laterality_silhouette_pixels",
                "probe_laterality_generated_z", "probe_laterality_generated_z_chance"):
        assert key in result
    assert result["generated_images"] == result["generated_z"]["generated_images"] == 64
    assert result["folds"].startswith("5-fold") and "px" in result["pixels"]
    assert 0.0 <= result["generated_z"]["label_rule_agreement_on_reals"] <= 1.0
    assert len(score_table(result, "rop")) == 4 and score_reading(result, "rop")
    # Figure 5's question: five attributes in three views, and which one leads
    attributes = result["attributes"]
    assert {(r["view"], r["attribute"]) for r in attributes["scores"]} >= {
        ("encoded reals", "laterality"), ("E(G(z))", "brightness"), ("z", "disc height")}
    assert len(attributes["plane"]) == len(attributes["values"]["laterality"])
    assert attributes["verdict"].startswith("Is laterality primary in the encoded reals?")
    assert result["laterality_primary"] == (
        attributes["primary"]["encoded reals"]["primary"] == "laterality")


def test_missing_run_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(RunNotFoundError, match=r"pggan train --out .*seg"):
        require_generator(tmp_path / "runs" / "rop" / "demo" / "seg")
    with pytest.raises(RunNotFoundError, match="pggan train --out myrun"):  # any folder name
        require_generator("myrun")
    with pytest.raises(RunNotFoundError, match="pggan encode --run"):
        load_latents(tmp_path)


def two_clusters(n: int = 200, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.array(["OD", "OS"])[np.arange(n) % 2]
    latents = rng.normal(size=(n, dim)) + np.where(labels == "OD", 4.0, -4.0)[:, None]
    return latents.astype(np.float32), labels


def test_knn_separates_clusters_and_not_random_labels():
    latents, labels = two_clusters()
    separated = knn_accuracy(latents, labels)
    assert separated["accuracy"] > 0.98 and separated["chance"] == 0.5
    assert separated["k"] == 5 and separated["folds"] == 5

    shuffled = np.random.default_rng(1).permutation(labels)
    noise = knn_accuracy(np.random.default_rng(2).normal(size=latents.shape), shuffled)
    assert 0.35 < noise["accuracy"] < 0.65

    with pytest.raises(DataError, match="two classes"):
        knn_accuracy(latents, np.full(len(latents), "OD"))


def test_knn_chance_is_the_majority_rate():
    latents, _ = two_clusters(n=40)
    labels = np.array(["a"] * 30 + ["b"] * 10)
    assert knn_accuracy(latents, labels)["chance"] == 0.75
    labels[0] = "c"  # a class of one image cannot be cross-validated: it is left out
    assert knn_accuracy(latents, labels)["n"] == 39


def test_knn_correlation_follows_a_smooth_label():
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(150, 8))
    position = latents[:, 0] + 0.1 * rng.normal(size=150)  # e.g. slice position
    assert knn_correlation(latents, position)["spearman"] > 0.8
    assert abs(knn_correlation(latents, rng.permutation(position))["spearman"]) < 0.3


def test_tsne_keeps_clusters_apart_and_handles_small_sets():
    latents, labels = two_clusters(n=60)
    embedding = tsne_embedding(latents, perplexity=30.0)
    assert embedding.shape == (60, 2)
    assert knn_accuracy(embedding, labels)["accuracy"] > 0.95
    assert tsne_embedding(latents[:6], perplexity=30.0).shape == (6, 2)  # perplexity clipped
    with pytest.raises(DataError, match="at least 4"):
        tsne_embedding(latents[:3])


def test_slerp_hits_endpoints_and_follows_the_great_circle():
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=128), rng.normal(size=128)
    path = slerp(z0, z1, np.linspace(0, 1, 5))
    assert path.shape == (5, 128)
    np.testing.assert_allclose(path[0], z0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(path[-1], z1, rtol=1e-5, atol=1e-5)
    angle = lambda a, b: np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    np.testing.assert_allclose(angle(z0, path[2]), angle(z0, z1) / 2, rtol=1e-4)
    # the midpoint keeps a typical length; the straight line's midpoint is ~30 % shorter
    assert np.linalg.norm(path[2]) > 0.95 * min(np.linalg.norm(z0), np.linalg.norm(z1))
    np.testing.assert_allclose(slerp(z0, 2 * z0, 0.5)[0], 1.5 * z0, rtol=1e-5)  # parallel


def test_path_by_value_walks_the_label_in_order():
    rng = np.random.default_rng(0)
    values = rng.uniform(size=50)
    latents = np.repeat(values[:, None], 4, axis=1)
    centres, path = path_by_value(latents, pd.Series(values), n_steps=5)
    assert path.shape == (5, 4) and np.all(np.diff(centres) > 0)
    np.testing.assert_allclose(path[:, 0], centres, rtol=1e-5)


def toy_labels(n: int = 40) -> tuple[np.ndarray, pd.DataFrame]:
    """Latents whose first coordinate is the eye and second the slice position."""
    rng = np.random.default_rng(3)
    eye = np.where(np.arange(n) % 2 == 0, "OD", "OS")
    position = rng.uniform(size=n)
    latents = rng.normal(scale=0.1, size=(n, 8))
    latents[:, 0] += np.where(eye == "OD", 3.0, -3.0)
    latents[:, 1] += 5 * position
    labels = pd.DataFrame({"laterality": eye, "plus_severity": ["normal"] * (n - 10) +
                           ["plus"] * 10, "slice_position": position,
                           "tumour_present": np.arange(n) % 3 == 0})
    return latents.astype(np.float32), labels


def _scores(dataset: str) -> tuple[dict, dict]:
    latents, labels = toy_labels()
    pixels = np.random.default_rng(4).normal(size=(len(latents), 64))  # carry no label
    groups = np.arange(len(latents)) // 4 if dataset == "brats" else None  # 10 "subjects"
    scores = {**knn_scores(dataset, latents, labels, pixels, groups),
              **probe_scores(dataset, latents, labels, pixels, groups)}
    return scores, headline_scores(dataset, scores)


def test_knn_scores_and_their_headline_for_the_fundus():
    scores, headline = _scores("rop")
    assert list(scores) == ["laterality (OD/OS)", "plus severity",
                            "laterality, on raw pixels (control)", "laterality, linear probe",
                            "laterality, linear probe on raw pixels (control)"]
    assert headline["knn_laterality_accuracy"] == scores["laterality (OD/OS)"]["accuracy"]
    assert headline["knn_laterality_accuracy"] > 0.95
    assert headline["knn_laterality_pixels"] < 0.8
    assert headline["probe_laterality_accuracy"] > 0.95 > 0.8 > \
        headline["probe_laterality_pixels"]
    assert scores["laterality (OD/OS)"]["split"] == "5-fold, stratified"


def test_knn_scores_and_their_headline_for_the_mri():
    scores, headline = _scores("brats")
    assert list(scores) == ["tumour present", "slice position",
                            "tumour present, on raw pixels (control)",
                            "slice position, on raw pixels (control)",
                            "tumour present, linear probe",
                            "tumour present, linear probe on raw pixels (control)"]
    assert headline["knn_slice_position_spearman"] == scores["slice position"]["spearman"]
    assert headline["knn_slice_position_spearman"] > 0.9
    assert abs(headline["knn_slice_position_spearman_pixels"]) < 0.5
    assert headline["knn_tumour_chance"] == scores["tumour present"]["chance"]
    assert {"knn_tumour_pixels", "probe_tumour_accuracy", "probe_tumour_pixels"} <= set(headline)
    assert all(row["split"] == "5-fold, grouped by subject" for row in scores.values())


def test_fold_groups_are_the_subjects_of_brats_slices_only():
    labels = pd.DataFrame({"subject": ["a", "a", "b"], "laterality": ["OD", "OS", "OD"]})
    np.testing.assert_array_equal(fold_groups("brats", labels), ["a", "a", "b"])
    assert fold_groups("rop", labels) is None
    assert fold_groups("brats", labels.drop(columns="subject")) is None


def slices_of_subjects(n_subjects: int = 20, per_subject: int = 8, seed: int = 0
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latents that say only which subject a slice is from, and a label drawn per subject: a
    slice's neighbours are its own subject's slices, which carry the same label."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_subjects), per_subject)
    centres = rng.normal(scale=5.0, size=(n_subjects, 8))
    latents = centres[groups] + rng.normal(scale=0.1, size=(len(groups), 8))
    labels = rng.permutation(np.arange(n_subjects) % 2 == 0)[groups]
    return latents, labels, groups


def test_grouped_folds_never_put_one_subject_in_training_and_test():
    _, labels, groups = slices_of_subjects()
    for stratify, values in ((True, labels), (False, np.linspace(0, 1, len(labels)))):
        splits, split = fold_indices(values, groups, stratify=stratify)
        assert split == "5-fold, grouped by subject" and len(splits) == 5
        for train, test in splits:
            assert not set(groups[train]) & set(groups[test])
        tested = np.sort(np.concatenate([test for _, test in splits]))
        np.testing.assert_array_equal(tested, np.arange(len(labels)))  # each slice once
    again, _ = fold_indices(labels, groups)  # deterministic: latents and pixels share folds
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(again, splits_of(labels, groups),
                                                          strict=True))
    few, split = fold_indices(labels[:16], groups[:16])  # two subjects: two folds
    assert len(few) == 2 and split == "2-fold, grouped by subject"
    _, alone = fold_indices(labels[:8].astype(int) + np.arange(8) % 2, groups[:8])
    assert "ungrouped: only one subject" in alone
    with pytest.raises(DataError, match="every class in 2\\+ subjects"):
        fold_indices(groups == 0, groups)  # one subject alone shows the class


def splits_of(labels: np.ndarray, groups: np.ndarray) -> list:
    return fold_indices(labels, groups)[0]


def test_grouped_folds_stop_neighbouring_slices_leaking_the_label():
    latents, labels, groups = slices_of_subjects()
    # ungrouped, a slice's nearest neighbours are its own subject's: the label leaks
    assert knn_accuracy(latents, labels)["accuracy"] > 0.95
    grouped = knn_accuracy(latents, labels, groups=groups)
    assert grouped["accuracy"] < 0.75 and grouped["split"] == "5-fold, grouped by subject"
    assert probe_accuracy(latents, labels, groups=groups)["accuracy"] < 0.8


def test_probe_finds_a_linear_label_and_is_at_chance_on_noise():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 40))
    side = features[:, 0] + 0.5 * features[:, 1]  # a direction that is no single feature
    features, side = features[np.abs(side) > 0.3], side[np.abs(side) > 0.3]  # a margin
    labels = np.where(side > 0, "OD", "OS")
    found = probe_accuracy(features * rng.uniform(0.1, 10, 40), labels)  # scale-free
    assert found["accuracy"] >= 0.95 and found["folds"] == 5 and found["n"] == len(labels)
    noise = probe_accuracy(rng.normal(size=(300, 40)), rng.permutation(np.arange(300) % 2))
    assert 0.35 < noise["accuracy"] < 0.65 and noise["chance"] == 0.5
    with pytest.raises(DataError, match="two classes"):
        probe_accuracy(features, np.full(len(features), "OD"))


def test_silhouette_is_high_for_separated_clusters_and_near_zero_for_random_labels():
    rng = np.random.default_rng(0)
    labels = np.arange(100) % 2
    plane = rng.normal(size=(100, 2)) + np.where(labels == 0, 10.0, -10.0)[:, None]
    assert label_silhouette(plane, labels) > 0.8
    assert abs(label_silhouette(plane, rng.permutation(labels))) < 0.1
    latents, eyes = two_clusters(n=60)  # and in the t-SNE plane Figure 5 shows
    assert label_silhouette(tsne_embedding(latents, perplexity=30.0), eyes) > 0.5
    with pytest.raises(DataError, match="silhouette"):
        label_silhouette(plane, np.zeros(100))


def test_laterality_from_disc_names_the_eye_of_phantom_photographs():
    from pggan_core.data.fundus_phantom import render_fundus

    fundi = [render_fundus(seed, size=64) for seed in range(24)]
    images = np.stack([np.moveaxis(f.rgb, -1, 0) * 2 - 1 for f in fundi])  # as prepared
    truth = np.array([f.labels["laterality"] for f in fundi])
    assert {"OD", "OS"} <= set(truth)
    assert np.mean(laterality_from_disc(images) == truth) >= 0.95
    mirrored = laterality_from_disc(images[..., ::-1])  # the other eye's layout
    assert np.mean(mirrored != truth) >= 0.95


def test_tumour_from_label_channels_ignores_a_few_stray_pixels():
    channels = np.full((3, 3, 64, 64), -1.0, np.float32)
    channels[1, 0, 0, :2] = 1.0  # two stray pixels
    channels[2, 2, 30:33, 30:33] = 0.8  # a 3 x 3 enhancing tumour
    np.testing.assert_array_equal(tumour_from_label_channels(channels), [False, False, True])


def test_generated_labels_come_from_the_latents_sample_images_draws():
    from pggan_core.generate import images_from_latents, sample_images

    config = load_config("smoke", "brats", {"model": {"latent_dim": 8}})
    torch.manual_seed(0)
    G = Generator(config.model, 7, 8).eval().requires_grad_(False)
    z = draw_latents(5, 8, seed=3)
    np.testing.assert_array_equal(np.clip(images_from_latents(G, z, 8), -1, 1),
                                  sample_images(G, 5, 8, 8, seed=3))
    labels = labels_of_generated(G, z, 8, 1.0, "brats", label_resolution=4)
    assert labels.shape == (5,) and labels.dtype == bool


def test_score_table_and_reading_say_when_pixels_beat_latents():
    result = {"knn_laterality_accuracy": 0.77, "knn_laterality_chance": 0.55,
              "knn_laterality_pixels": 0.99, "probe_laterality_accuracy": 0.87,
              "probe_laterality_pixels": 1.0, "tsne_laterality_silhouette": 0.01,
              "tsne_laterality_silhouette_pixels": 0.36, "probe_laterality_generated_z": 0.96,
              "probe_laterality_generated_z_chance": 0.55, "generated_images": 512}
    table = score_table(result, "rop")
    assert list(table.columns) == ["latents", "raw pixels", "chance"]
    assert table.loc["k-NN accuracy (laterality)"].tolist() == [0.77, 0.99, 0.55]
    reading = score_reading(result, "rop")
    assert "raw pixels carry laterality better than the latents" in reading
    assert "accuracy 0.96 (chance 0.55): it is linearly encoded" in reading
    better = {**result, "knn_laterality_pixels": 0.6, "probe_laterality_pixels": 0.7,
              "probe_laterality_generated_z": 0.56}
    assert "latents carry laterality better" in score_reading(better, "rop")
    assert "barely" in score_reading(better, "rop")
    mri = {key.replace("laterality", "tumour"): value for key, value in result.items()}
    mri |= {"knn_slice_position_spearman": 0.87, "knn_slice_position_spearman_pixels": 0.94}
    assert "Slice position follows raw-pixel neighbours better (Spearman 0.87 on latents vs " \
        "0.94 on pixels)" in score_reading(mri, "brats")
    assert len(score_table(mri, "brats")) == 5


def test_walk_path_per_dataset():
    latents, labels = toy_labels()
    path, steps = walk_path("rop", latents, labels, n_steps=6)
    assert path.shape == (6, 8) and steps[0] == "0.00" and steps[-1] == "1.00"
    right_eye = latents[(labels["laterality"] == "OD").to_numpy()].mean(axis=0)
    np.testing.assert_allclose(path[0], right_eye, rtol=1e-5, atol=1e-5)
    assert path[-1][0] < 0 < path[0][0]  # from the right eye's side to the left's
    path, steps = walk_path("brats", latents, labels, n_steps=5)
    assert path.shape == (5, 8)
    assert np.all(np.diff([float(s) for s in steps]) > 0)  # bottom to top
    assert np.all(np.diff(path[:, 1]) > 0)  # the slice-position coordinate rises with it


def test_inversion_verdict_names_whose_limit_a_low_r2_is():
    from pggan_book.readings import inversion_verdict

    base = {"steps": 300, "samples": 32}
    encoder_limit = inversion_verdict({**base, "r2_encoder": 0.2, "r2_optimised": 0.8,
                                       "image_mse_encoder": 0.02, "image_mse_optimised": 1e-4})
    assert "encoder, at R² 0.20, is what falls short" in encoder_limit
    generator_limit = inversion_verdict({**base, "r2_encoder": 0.13, "r2_optimised": 0.30,
                                         "image_mse_encoder": 0.019,
                                         "image_mse_optimised": 2.2e-4})
    assert "estimates their mean" in generator_limit and "neither bounds" in generator_limit
    assert "0.0190 -> 0.0002" in generator_limit
    unclear = inversion_verdict({**base, "r2_encoder": 0.1, "r2_optimised": 0.1,
                                 "image_mse_encoder": 0.02, "image_mse_optimised": 0.01})
    assert "inconclusive at 300 steps" in unclear


def test_the_primary_attribute_leads_by_silhouette_and_knn_gain():
    from pggan_book.readings import attribute_table
    from pggan_core.latent.attributes import (
        VIEWS,
        attribute_scores,
        attribute_verdict,
        primary_attribute,
    )

    rng = np.random.default_rng(0)
    side = np.repeat([0.0, 1.0], 60)  # two clusters along the first axis
    tone = rng.random(120)  # carried weakly along the second
    latents = rng.normal(size=(120, 8))
    latents[:, 0] += 6 * side
    latents[:, 1] += 1.5 * tone
    attributes = {"laterality": side, "brightness": tone, "noise": rng.random(120)}
    table, planes = attribute_scores({view: (latents, attributes) for view in VIEWS},
                                     perplexity=20)
    assert planes[VIEWS[0]].shape == (120, 2)
    reals = table[table["view"] == VIEWS[0]].set_index("attribute")
    assert reals.loc["laterality", "knn"] > 0.85 and abs(reals.loc["noise", "knn_gain"]) < 0.2
    assert primary_attribute(table, VIEWS[0]) == {
        "view": VIEWS[0], "by_silhouette": "laterality", "by_knn_gain": "laterality",
        "primary": "laterality"}
    assert "primary in the encoded reals? yes" in attribute_verdict(table, "laterality")
    # the same latents with the eyes swapped at random: brightness leads, and is named
    shuffled = dict(attributes, laterality=rng.permutation(side))
    table, _ = attribute_scores({VIEWS[0]: (latents, shuffled)}, perplexity=20)
    assert "no: brightness is primary here" in attribute_verdict(table, "laterality") or \
        "no attribute is primary here" in attribute_verdict(table, "laterality")
    shown = attribute_table({"scores": table.to_dict("records")})
    assert list(shown.index) == [(VIEWS[0], "laterality"), (VIEWS[0], "brightness"),
                                 (VIEWS[0], "noise")]
    assert list(shown.columns) == ["silhouette", "5-NN − chance", "probe"]


def test_fundus_attributes_read_the_eye_the_light_and_the_vessels():
    from pggan_core.data.fundus_phantom import render_fundus
    from pggan_core.data.preprocess import fundus_channels
    from pggan_core.data.store import box_downsample
    from pggan_core.latent.attributes import fundus_attributes, mri_attributes, two_groups

    images, eyes = [], []
    for seed in range(4):
        fundus = render_fundus(seed, 128)
        image = fundus_channels(fundus.rgb, fundus.vessels)
        images.append(box_downsample(image))
        eyes.append(fundus.labels["laterality"])
    images = np.stack(images)
    read = fundus_attributes(images)
    assert list(read) == ["laterality", "brightness", "colour balance", "disc height",
                          "vessel density"]
    assert [("OD" if x else "OS") for x in read["laterality"]] == eyes
    brighter = fundus_attributes(np.clip(images + 0.2 * (images > -0.9), -1, 1))
    assert (brighter["brightness"] > read["brightness"]).all()
    assert ((read["vessel density"] > 0.01) & (read["vessel density"] < 0.5)).all()
    assert read["disc height"].min() > 0.1 and read["disc height"].max() < 0.9
    # a continuous attribute is split at its median; a two-valued one kept as it is
    assert two_groups(np.array([0.1, 0.2, 0.3, 0.4])).tolist() == [0, 0, 1, 1]
    assert two_groups(np.array([1.0, 0.0, 1.0])).tolist() == [1, 0, 1]
    # MRI: the head's area and the label channels
    slices = -np.ones((2, 7, 32, 32), np.float32)
    slices[:, :4, 8:24, 8:24] = 0.0
    slices[1, 5, 12:16, 12:16] = 1.0
    mri = mri_attributes(slices)
    assert mri["tumour presence"].tolist() == [0.0, 1.0]
    assert mri["brain area"] == pytest.approx([0.25, 0.25])
    assert mri["tumour size"][1] == pytest.approx(16 / 1024)
