"""The segmentation-channel ablation (the paper's Figure 3 as numbers): the U-Net's reading at
its own scale, the bootstrap verdict rule, and the keys of ``ablation.json``."""

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from pggan_book import readings
from pggan_core.config import load_config
from pggan_core.data.preprocess import fields_of_view
from pggan_core.datasets import dataset_spec
from pggan_core.evaluation import ablation
from pggan_core.evaluation.ablation import (
    AGAINST,
    PAPER,
    UNCLEAR,
    FundusStructure,
    bootstrap_verdict,
    verdict_from_interval,
    vessel_maps_at_unet_scale,
)
from pggan_core.measures import domain_stats
from pggan_core.runs.folder import OpenRun
from pggan_core.segmentation.vessels import segment_vessels
from pggan_core.training.run_info import RunInfo

UNET_SCALE = 128  # the demo U-Net's training resolution; the GAN's images are half that


class _CoreSegmenter:
    """Stands in for the U-Net: confident (0.9) on the dark core of a vessel only, as a
    segmenter is on a thin vessel, 0 elsewhere and outside the field of view it is given."""

    def __init__(self, darker_than: float = 0.2) -> None:
        self.darker_than = darker_than

    def segment(self, rgb: np.ndarray, fov: np.ndarray) -> np.ndarray:
        return np.where(fov, 0.9 * (rgb[..., 1] < self.darker_than), 0.0).astype(np.float32)

    def segment_batch(self, rgbs, fovs):
        return [self.segment(rgb, fov) for rgb, fov in zip(rgbs, fovs, strict=True)]


# A vessel tree at 64 px: a trunk with four branches (four junctions), end points (x, y) at
# sub-pixel positions so the lines fall between pixel centres, as real thin vessels do.
_TREE = [((10.3, 32.6), (54.2, 31.1)), ((32.4, 31.8), (14.5, 12.2)),
         ((32.4, 31.8), (50.1, 13.7)), ((20.6, 31.5), (12.3, 48.8)),
         ((44.1, 31.3), (52.6, 47.4))]


def _thin_vessel_fundus(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A bright fundus disc (1, 4, size, size) in [-1, 1] with 1-px anti-aliased dark vessels
    in green, and the vessels' true mask (1, size, size)."""
    shift = 4  # cv2.line's fractional bits: end points at 1/16 px
    canvas = np.zeros((size, size), np.uint8)
    for (x0, y0), (x1, y1) in _TREE:
        cv2.line(canvas, (round(x0 * 2**shift), round(y0 * 2**shift)),
                 (round(x1 * 2**shift), round(y1 * 2**shift)), 255, 1, cv2.LINE_AA, shift)
    darkness = canvas / 255.0
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disc = np.hypot(yy, xx) < 0.46 * size
    image = np.full((1, 4, size, size), -1.0, np.float32)
    for channel, value in enumerate((0.7, 0.6 - 0.5 * darkness, 0.3)):
        image[0, channel] = np.where(disc, 2 * np.asarray(value) - 1, -1.0)
    return image, (darkness > 0.3)[None]


def test_own_scale_reading_keeps_the_thin_vessels_that_a_reduced_map_loses():
    data_cfg = load_config("demo", "rop").data
    images, truth = _thin_vessel_fundus()
    fov = fields_of_view(images, data_cfg)
    segmenter = _CoreSegmenter()
    # the U-Net's map reduced to the images' 64 px before thresholding (the old reading):
    # averaging the 1-px core with the background beside it falls below 0.5
    reduced = domain_stats.fundus_stats(segment_vessels(segmenter, images, UNET_SCALE, fov) > 0.5,
                                        fov)
    # thresholded where the U-Net drew it, at its own 128 px
    probs, big_fov = vessel_maps_at_unet_scale(segmenter, images, data_cfg, UNET_SCALE)
    own = domain_stats.fundus_stats(probs > 0.5, big_fov)
    true = domain_stats.fundus_stats(truth, fov)
    assert true["branch_points"][0] > 0
    assert own["branch_points"][0] == pytest.approx(true["branch_points"][0])
    assert reduced["branch_points"][0] < 0.5 * own["branch_points"][0]
    assert reduced["vessel_density"][0] < own["vessel_density"][0]

    # the reading the book uses (the fundus spec's ``structure``) reports the own-scale one
    assert dataset_spec("rop").structure == "pggan_core.evaluation.ablation:FundusStructure"
    book = FundusStructure.reading(images, data_cfg, segmenter, UNET_SCALE)
    for name in ("vessel_density", "branch_points", "tortuosity"):
        np.testing.assert_allclose(book[name], own[name])
    assert book["vessel_density_soft"][0] == pytest.approx(probs[big_fov].mean())


def test_vessel_maps_of_real_and_generated_come_at_the_same_scale():
    data_cfg = load_config("demo", "rop").data
    images, _ = _thin_vessel_fundus()
    probs, big_fov = vessel_maps_at_unet_scale(_CoreSegmenter(), images, data_cfg, UNET_SCALE)
    assert probs.shape == big_fov.shape == (1, UNET_SCALE, UNET_SCALE)
    assert (probs[~big_fov] == 0).all()


@pytest.mark.parametrize(("low", "high", "verdict"), [
    (0.1, 0.4, PAPER), (-0.4, -0.1, AGAINST), (-0.1, 0.2, UNCLEAR), (0.0, 0.3, UNCLEAR),
    (float("nan"), float("nan"), UNCLEAR)])
def test_verdict_follows_the_interval(low, high, verdict):
    assert verdict_from_interval(low, high) == verdict


def test_bootstrap_verdict_clear_better_clear_worse_and_overlap():
    rng = np.random.default_rng(0)
    real = rng.normal(1.0, 0.1, 200)
    as_real = rng.normal(1.0, 0.1, 200)
    half = rng.normal(0.5, 0.05, 200)
    better = bootstrap_verdict(real, as_real, half)  # the model with the channel is as real
    assert better["verdict"] == PAPER and better["interval"][0] > 0
    assert better["noseg_ratio"] == pytest.approx(0.5, abs=0.02)
    assert better["difference"] == pytest.approx(
        better["noseg_distance"] - better["seg_distance"])
    worse = bootstrap_verdict(real, half, as_real)
    assert worse["verdict"] == AGAINST and worse["interval"][1] < 0
    # 10% under and 10% over real, on few noisy images: the intervals overlap
    few = rng.normal(1.0, 0.3, 20)
    overlap = bootstrap_verdict(few, rng.normal(0.9, 0.3, 20), rng.normal(1.1, 0.3, 20))
    assert overlap["verdict"] == UNCLEAR
    assert overlap["interval"][0] < 0 < overlap["interval"][1]


def test_bootstrap_verdict_is_seeded_and_ranks_a_model_that_finds_nothing_last():
    rng = np.random.default_rng(1)
    real, seg = rng.normal(1.0, 0.1, 50), rng.normal(0.8, 0.1, 50)
    nothing = np.zeros(50)  # no vessel in any image: infinitely far in |log ratio|
    record = bootstrap_verdict(real, seg, nothing, n_resamples=200, seed=3)
    assert record["verdict"] == PAPER and record["noseg_distance"] == np.inf
    assert record == bootstrap_verdict(real, seg, nothing, n_resamples=200, seed=3)
    # NaN (tortuosity of an image without a vessel segment) is left out, not propagated
    seg_with_nan = np.where(np.arange(50) % 5 == 0, np.nan, seg)
    assert np.isfinite(bootstrap_verdict(real, seg_with_nan, real)["seg"])


# ---------------------------------------------------------------------------------------------
# ablation.json, on stand-ins for the prepared dataset and both generators (no training)


class _FakeDataset:
    """Stands in for ``PreparedDataset``: ``n`` training images of ``channels`` channels."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def split_indices(self, split: str) -> np.ndarray:
        return np.arange(len(self.images))

    def batch(self, indices, resolution: int) -> np.ndarray:
        return self.images[np.asarray(indices)]


def _fundus_set(n: int, size: int, seed: int) -> np.ndarray:
    """``n`` thin-vessel fundus images (n, 4, size, size), jittered in brightness."""
    image, truth = _thin_vessel_fundus(size)
    rng = np.random.default_rng(seed)
    out = np.repeat(image, n, axis=0)
    out[:, 3] = np.where(truth, 1.0, -1.0)
    out[:, :3] = np.clip(out[:, :3] + rng.normal(0, 0.02, (n, 3, 1, 1)), -1, 1)
    return out.astype(np.float32)


def _brain_set(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.full((n, 7, size, size), -1.0, np.float32)
    out[:, :4, 8:56, 8:56] = rng.uniform(-0.5, 0.8, (n, 4, 48, 48))
    return out


@pytest.mark.parametrize("dataset", ["rop", "brats"])
def test_ablation_json_has_the_keys_the_page_reads(dataset, tmp_path, monkeypatch):
    config = load_config("smoke", dataset)
    config = dataclasses.replace(
        config, eval=dataclasses.replace(config.eval, n_generated=8, n_auc_images=4,
                                         swd_descriptors=8, swd_projections=16))
    size = 64
    make = _fundus_set if dataset == "rop" else _brain_set
    real = make(16, size, 0)
    fakes = {"seg": make(8, size, 1), "noseg": make(8, size, 2)[:, :3 if dataset == "rop" else 4]}
    runs = {}
    for name in fakes:
        runs[name] = tmp_path / name
        runs[name].mkdir()
    # stand-in generators: a module each (its weights are fingerprinted), drawing ``fakes``
    modules = {name: torch.nn.Linear(1, 1) for name in fakes}
    generators = {str(runs[name]): (modules[name], {"config": config, "resolution": size})
                  for name in fakes}
    drawn_by = {module: fakes[name] for name, module in modules.items()}

    def open_stand_in(path):
        info = RunInfo(dataset=dataset, data_dir=str(tmp_path), with_segmentation=True,
                       channels=[], total_steps=0, step=0, images_seen=0, train_seconds=0.0)
        return OpenRun(Path(path), info, *generators[str(path)], _FakeDataset(real))

    monkeypatch.setattr(ablation, "open_run", open_stand_in)
    monkeypatch.setattr(ablation, "load_generator", lambda path: generators[str(path)])
    monkeypatch.setattr(ablation, "sample_images", lambda G, n, *args: drawn_by[G][:n])
    monkeypatch.setattr(ablation, "ensure_vessel_unet", lambda *a, **k: _CoreSegmenter(0.45))

    result = ablation.compare_ablation(runs["seg"], runs["noseg"], n_resamples=50,
                                       swd_repeats=3)
    saved = json.loads((runs["seg"] / "ablation.json").read_text())
    assert saved["conclusion"] == result["conclusion"]
    assert saved["derivation"]["kind"] == "ablation"
    for key in ("dataset", "resolution", "n", "n_structure", "seed", "image_channels",
                "distance", "vessel_reading", "bootstrap", "swd_floor_image_channels_mean",
                "swd_floor_all_channels_mean", "runs", "verdicts", "conclusion",
                "derivation", "noseg_generator_sha256"):
        assert key in saved
    for run in saved["runs"].values():
        for key in ("run", "n_channels", "swd_mean", "swd_image_channels_mean",
                    "swd_all_channels_mean", "structure"):
            assert key in run
    assert saved["runs"]["with segmentation"]["n_channels"] == (4 if dataset == "rop" else 7)
    measures = [record["measure"] for record in saved["verdicts"]]
    assert measures[0] == "swd_image_channels"
    expected = (["vessel_density_soft", "vessel_density", "branch_points", "tortuosity",
                 "radial_alignment", "vessel_reach", "disc_uniqueness"]
                if dataset == "rop" else
                ["flair_hyperintense_fraction", "t1c_enhancing_fraction", "lesion_nesting",
                 "lesion_components"])
    assert measures[1:] == expected
    for record in saved["verdicts"]:
        for key in ("seg", "noseg", "real", "seg_ratio", "noseg_ratio", "interval"):
            assert key in record
        assert len(record["interval"]) == 2 and record["verdict"] in (PAPER, AGAINST, UNCLEAR)
    if dataset == "rop":
        assert saved["vessel_reading"]["threshold"] == 0.5
        assert saved["vessel_reading"]["scale_px"] == config.vessels.train_resolution
    else:
        assert saved["vessel_reading"] is None

    # the page: one table row and one sentence per verdict, and the conclusion follows them
    table = readings.ablation_table(result)
    assert list(table["verdict"]) == [record["verdict"] for record in result["verdicts"]]
    assert len(readings.ablation_verdicts(result)) == len(table)
    assert readings.swd_table(result).shape == (2, 3)
    assert "threshold" in readings.ablation_method(result) or dataset == "brats"


def test_a_record_that_holds_is_reused_and_any_change_measures_again(tmp_path, monkeypatch):
    """ensure_ablation returns ablation.json as it is only when it was drawn with this seed and
    the default resampling, from the image-only run's generator as it is now, and its
    derivation holds; otherwise compare_ablation measures again."""
    noseg = torch.nn.Linear(1, 1)
    record = {"seed": 0, "conclusion": "saved",
              "bootstrap": {"n_resamples": ablation.N_BOOTSTRAP,
                            "swd_repeats": ablation.SWD_REPEATS},
              "noseg_generator_sha256": ablation.weights_fingerprint(noseg),
              "derivation": {"kind": "ablation"}}
    (tmp_path / "ablation.json").write_text(json.dumps(record))
    stale = {"reason": None}
    monkeypatch.setattr(ablation, "load_generator", lambda path: (noseg, {}))
    monkeypatch.setattr(ablation, "stale_result", lambda *args: stale["reason"])
    monkeypatch.setattr(ablation, "compare_ablation",
                        lambda *args, **kwargs: {"conclusion": "measured again"})

    assert ablation.ensure_ablation(tmp_path, tmp_path / "noseg")["conclusion"] == "saved"
    assert ablation.ensure_ablation(tmp_path, tmp_path / "noseg", seed=1)["conclusion"] \
        == "measured again"
    stale["reason"] = "the code that computes it changed"
    assert ablation.ensure_ablation(tmp_path, tmp_path / "noseg")["conclusion"] \
        == "measured again"
    stale["reason"] = None
    with torch.no_grad():
        noseg.weight.add_(1.0)  # the image-only run was trained again
    assert ablation.ensure_ablation(tmp_path, tmp_path / "noseg")["conclusion"] \
        == "measured again"


def test_seed_verdicts_take_the_spread_between_trainings():
    def result(*differences):
        return {"verdicts": [{"measure": f"m{i}", "label": f"m{i}", "difference": d,
                              "seg_ratio": 1.0, "noseg_ratio": 1.0 + d, "verdict": PAPER}
                             for i, d in enumerate(differences)]}

    # m0: every seed a little in the paper's direction; m1: one seed far off the others
    seeds = [result(0.10, 0.30), result(0.12, -0.40), result(0.11, 0.50)]
    m0, m1 = ablation.seed_verdicts(seeds)
    assert m0["verdict"] == PAPER and m0["interval"][0] > 0 and m0["seeds"] == 3
    assert m1["verdict"] == UNCLEAR  # each seed said "paper's direction" on its own images
    assert m1["per_seed_verdicts"] == [PAPER] * 3 and m1["differences"] == [0.30, -0.40, 0.50]
    (single,) = ablation.seed_verdicts([result(0.1)])
    assert single["verdict"] == UNCLEAR  # one training: no spread between trainings to judge
    table = ablation.seeds_table({"seeds": [0, 1, 2], "verdicts": [m0, m1]})
    assert list(table.columns) == ["seed 0", "seed 1", "seed 2", "interval (without − with)",
                                   "verdict"]


def test_conclusion_follows_the_verdicts():
    def result(*verdicts):
        return {"verdicts": [{"measure": f"m{i}", "verdict": v} for i, v in enumerate(verdicts)]}

    assert "as the paper says" in ablation.ablation_conclusion(result(PAPER, UNCLEAR))
    assert "against the paper" in ablation.ablation_conclusion(result(AGAINST, UNCLEAR))
    assert "disagree" in ablation.ablation_conclusion(result(PAPER, AGAINST))
    assert "neither supports" in ablation.ablation_conclusion(result(UNCLEAR, UNCLEAR))


def test_swd_verdict_finds_a_checkerboard_in_the_image_channels():
    rng = np.random.default_rng(0)

    def smooth(n):
        return np.tanh(ndimage.gaussian_filter(rng.normal(0, 3, (n, 3, 32, 32)),
                                               (0, 0, 2, 2))).astype(np.float32)

    real, floor_real, clean = smooth(16), smooth(16), smooth(16)
    checkerboard = np.indices((32, 32)).sum(axis=0) % 2 * 0.6 - 0.3
    artefacts = np.clip(smooth(16) + checkerboard, -1, 1).astype(np.float32)
    settings = {"n_descriptors": 16, "n_projections": 32}
    record = ablation.swd_verdict(real, clean, artefacts, floor_real, settings, repeats=3)
    assert record["verdict"] == PAPER and record["noseg"] > record["seg"]
    assert len(record["repeat_differences"]) == 3
    assert record["interval"][0] < record["difference"] < record["interval"][1]
    swapped = ablation.swd_verdict(real, artefacts, clean, floor_real, settings, repeats=3)
    assert swapped["verdict"] == AGAINST
