"""``pggan evaluate`` / ``generate`` on a tiny trained run."""

import json

import numpy as np
import pytest

from pggan_book.readings import ablation_table, ablation_verdicts
from pggan_core.cli import main
from pggan_core.config import load_config
from pggan_core.evaluation.ablation import compare_ablation
from pggan_core.evaluation.evaluate import ensure_evaluated, evaluate_run, metrics_table
from pggan_core.runs.folder import run_config
from pggan_core.training.trainer import train


@pytest.mark.slow
def test_evaluate_writes_every_metric(tiny_run_copy):
    run = tiny_run_copy  # evaluation writes metrics.json into the run
    result = evaluate_run(run, progress=False)
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["swd_mean"] == pytest.approx(result["swd_mean"])
    assert result["resolution"] == 16 and result["dataset"] == "rop"
    for key in ("swd_mean", "swd_floor_mean", "nn_distance_generated_median",
                "nn_distance_heldout_median"):
        assert np.isfinite(result[key]) and result[key] >= 0
    for key in ("ms_ssim_generated", "ms_ssim_real"):
        assert 0.0 <= result[key] <= 1.0
    stats = {row["statistic"] for row in result["domain_stats"]}
    assert {"vessel_density", "branch_points", "tortuosity"} <= stats
    assert "vessel_agreement_auc" in result  # None at 16 px: see the test below
    assert "metric" in metrics_table(result).columns
    # a second call reuses metrics.json instead of recomputing
    before = (run / "metrics.json").stat().st_mtime_ns
    assert ensure_evaluated(run, progress=False)["swd_mean"] == result["swd_mean"]
    assert (run / "metrics.json").stat().st_mtime_ns == before


@pytest.mark.slow
def test_ablation_compares_both_runs_on_image_channels(tiny_run_copy, tiny_data, tmp_path):
    seg = tiny_run_copy  # the comparison writes ablation.json into the run with segmentation
    # its counterpart without segmentation channels, trained here: no other test needs one
    noseg = train(run_config("rop", "smoke"), tiny_data, tmp_path / "noseg",
                  with_segmentation=False, progress=False)
    result = compare_ablation(seg, noseg)
    table = ablation_table(result)
    assert "SWD x1e3 to real (image channels)" in table.index
    verdicts = ablation_verdicts(result)
    assert verdicts[0].startswith("SWD to the real images") and len(verdicts) == len(table)
    closer = "with" if result["runs"]["with segmentation"]["swd_mean"] < \
        result["runs"]["without segmentation"]["swd_mean"] else "without"
    assert f"the model {closer} segmentation channels is closer" in verdicts[0]
    assert "vessel density" in table.index
    assert np.isfinite(float(table.loc["vessel density", "real (mean)"]))
    assert (seg / "ablation.json").is_file()


@pytest.mark.slow
def test_cli_generate_and_missing_run(tiny_run, tmp_path, capsys):
    assert main(["generate", "--run", str(tiny_run), "--n", "5", "--format", "npy", "--out",
                 str(tmp_path / "gen")]) == 0
    images = np.load(tmp_path / "gen" / "generated.npy")
    assert images.shape == (5, 4, 16, 16) and images.min() >= -1 and images.max() <= 1
    assert (tmp_path / "gen" / "grid.png").is_file()
    assert main(["evaluate", "--run", str(tmp_path / "nope")]) == 2
    assert "pggan train" in capsys.readouterr().err


class _StripeSegmenter:
    """Stands in for the U-Net: 'finds' a vessel wherever the green channel is dark, and only
    inside the field of view it is given (as ``VesselSegmenter.segment``)."""

    def segment(self, rgb, fov):
        return np.where(fov, (rgb[..., 1] < 0.25).astype(np.float32), 0.0)


def _bright_fundus(n: int = 2, size: int = 32) -> np.ndarray:
    images = np.full((n, 4, size, size), 0.6, np.float32)  # bright fundus filling the frame
    images[:, 3] = -1.0  # no vessel anywhere
    return images


def test_vessel_auc_is_undefined_without_vessels_and_1_for_a_perfect_generator():
    from pggan_core.evaluation.vessel_agreement import vessel_agreement

    data_cfg = load_config("demo", "rop").data
    images = _bright_fundus()
    assert vessel_agreement(_StripeSegmenter(), images, images[:, 3], data_cfg, 64) is None
    images[:, 1, 10:14, :] = -0.9  # a dark horizontal vessel in green...
    images[:, 3, 10:14, :] = 1.0  # ...and in the generator's own vessel channel
    assert vessel_agreement(_StripeSegmenter(), images, images[:, 3], data_cfg,
                            64) == pytest.approx(1.0)
    # the same vessel drawn a few rows off in the vessel channel is not agreement
    assert vessel_agreement(_StripeSegmenter(), images, np.roll(images[:, 3], 8, axis=1),
                            data_cfg, 64) < 0.6


def test_one_field_of_view_from_segmentation_to_the_auc():
    """The map the AUC counts is segmented in exactly the field of view the AUC uses: no
    second erosion inside ``segment`` zeroes the rim pixels the AUC still counts."""
    from pggan_core.data.preprocess import field_of_view, fields_of_view
    from pggan_core.segmentation.vessels import segment_vessels

    data_cfg = load_config("demo", "rop").data
    size = 64
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    images = np.full((1, 4, size, size), -1.0, np.float32)
    images[:, :3, np.hypot(yy, xx) < 0.45 * size] = 0.5
    images[:, 1] = np.where(images[:, 0] > 0, -0.9, -1.0)  # dark green: "vessel" everywhere
    fov = fields_of_view(images, data_cfg)
    rgb = (images[0, :3].transpose(1, 2, 0) + 1) / 2
    np.testing.assert_array_equal(fov[0], field_of_view(rgb, data_cfg))
    assert 0 < fov.sum() < (np.hypot(yy, xx) < 0.45 * size).sum()  # eroded by 1 px at 64
    segmentation = segment_vessels(_StripeSegmenter(), images, 128, fov)
    assert (segmentation[fov] == 1.0).all() and (segmentation[~fov] == 0.0).all()


@pytest.mark.slow
def test_reference_auc_uses_ground_truth_masks_or_says_there_are_none(tiny_run_copy):
    result = ensure_evaluated(tiny_run_copy, progress=False)
    record = result["vessel_agreement"]
    assert record["direction"].startswith("score predicts label")
    assert record["threshold"] == 0.5
    assert "ground-truth vessel masks (phantom)" in record["reference"]


# ---------------------------------------------------------------------------- metric registry


def mean_grey_level(samples) -> dict:
    """A toy metric, registered by the test below as a user would."""
    return {"mean_grey_level": float(samples.fake[:, 0].mean())}


@pytest.fixture
def registry_as_it_was():
    """Whatever a test registers is gone afterwards."""
    from pggan_core.evaluation import registry

    metrics = dict(registry.METRICS)
    yield
    registry.METRICS.clear()
    registry.METRICS.update(metrics)


@pytest.mark.slow
def test_a_registered_metric_reaches_metrics_json_and_the_results_table(
        tiny_home, tmp_path, registry_as_it_was):
    import shutil
    from pathlib import Path

    from pggan_book.results_table import claims_table, rules_table
    from pggan_core.evaluation.registry import Metric, MetricClaim, register_metric
    from pggan_core.runs.folder import RunSpec

    home = Path(shutil.copytree(tiny_home, tmp_path / "home"))
    run = RunSpec("rop", "smoke").folder(home)
    info = json.loads((run / "run.json").read_text())
    info["data_dir"] = str(home / Path(info["data_dir"]).relative_to(tiny_home))
    (run / "run.json").write_text(json.dumps(info))
    before = evaluate_run(run, progress=False)
    assert "mean_grey_level" not in before

    register_metric(Metric(
        "mean_grey_level", mean_grey_level, rows=(("mean grey level, generated",
                                                   "mean_grey_level"),),
        claim=MetricClaim("Generated photographs are not black (mean grey level)",
                          "not in the paper", "—", "mean_grey_level",
                          lambda value: "yes" if value > -0.99 else "no",
                          "yes: mean grey level above -0.99; else no")))
    # metrics.json computed before the metric existed no longer holds: computed again
    result = ensure_evaluated(run, progress=False)
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["mean_grey_level"] == pytest.approx(result["mean_grey_level"])
    assert "mean_grey_level" in saved["metrics"]
    assert any(name.endswith(":mean_grey_level") for name in saved["derivation"]["code"])
    assert saved["swd_mean"] == before["swd_mean"]  # the others unchanged
    assert "mean grey level, generated" in set(metrics_table(result)["metric"])

    table = claims_table("smoke", ("rop",), root=home)
    row = table[table["claim"].str.startswith("Generated photographs are not black")].iloc[0]
    assert row["ROP"] == f"{result['mean_grey_level']:.3f}" and row["reproduced?"] == "yes"
    assert "Generated photographs are not black" in set(rules_table()["claim"])
