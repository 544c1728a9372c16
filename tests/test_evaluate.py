"""``pggan evaluate`` / ``generate`` on a tiny trained run."""

import json

import numpy as np
import pytest

from pggan_core.cli import main
from pggan_core.config import load_config
from pggan_core.evaluate import (
    ablation_table,
    compare_ablation,
    ensure_evaluated,
    evaluate_run,
    metrics_table,
)
from pggan_core.train import train


@pytest.fixture(autouse=True)
def _scratch_home(tiny_home, monkeypatch):
    monkeypatch.setenv("PGGAN_HOME", str(tiny_home))


def test_evaluate_writes_every_metric(tiny_rop_run):
    result = evaluate_run(tiny_rop_run, progress=False)
    saved = json.loads((tiny_rop_run / "metrics.json").read_text())
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
    before = (tiny_rop_run / "metrics.json").stat().st_mtime_ns
    assert ensure_evaluated(tiny_rop_run, progress=False)["swd_mean"] == result["swd_mean"]
    assert (tiny_rop_run / "metrics.json").stat().st_mtime_ns == before


def test_ablation_compares_both_runs_on_image_channels(tiny_rop_run, tiny_home):
    info = json.loads((tiny_rop_run / "run.json").read_text())
    config = load_config("smoke", "rop", {"data": {"n_images": 12, "resolution": 32,
                                                   "heldout_fraction": 0.25}})
    noseg = train(config, info["data_dir"], tiny_home / "runs" / "rop-noseg",
                  with_segmentation=False, progress=False)
    table = ablation_table(compare_ablation(tiny_rop_run, noseg))
    assert "SWD x1e3 to real (image channels)" in table.index
    assert "vessel_density" in table.index
    assert np.isfinite(table.loc["vessel_density", "real (mean)"])
    assert (tiny_rop_run / "ablation.json").is_file()


def test_cli_generate_and_missing_run(tiny_rop_run, tmp_path, capsys):
    assert main(["generate", "--run", str(tiny_rop_run), "--n", "5", "--out",
                 str(tmp_path / "gen")]) == 0
    images = np.load(tmp_path / "gen" / "generated.npy")
    assert images.shape == (5, 4, 16, 16) and images.min() >= -1 and images.max() <= 1
    assert (tmp_path / "gen" / "grid.png").is_file()
    assert main(["evaluate", "--run", str(tmp_path / "nope")]) == 2
    assert "pggan train" in capsys.readouterr().err


class _StripeSegmenter:
    """Stands in for the U-Net: 'finds' a vessel wherever the green channel is dark."""

    def segment(self, rgb):
        return (rgb[..., 1] < 0.25).astype(np.float32)


def test_vessel_auc_is_undefined_without_vessels_and_1_for_a_perfect_segmenter():
    from pggan_core.evaluate import _vessel_auc

    images = np.full((2, 4, 32, 32), 0.6, np.float32)  # bright fundus filling the frame
    images[:, 3] = -1.0  # no vessel anywhere
    assert _vessel_auc(_StripeSegmenter(), images, 64) is None
    images[:, 1, 10:14, :] = -0.9  # a dark horizontal vessel in green...
    images[:, 3, 10:14, :] = 1.0  # ...and in the generator's own vessel channel
    assert _vessel_auc(_StripeSegmenter(), images, 64) == pytest.approx(1.0)
