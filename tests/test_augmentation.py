"""The augmentation study: pairs made alike from real and synthetic images, the classic
baseline, the protocol (arms, nested k, same budget), the scores, and the study end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from pggan_book import augmentation_report as report
from pggan_core.augmentation.classic import (
    classic_augment,
    classic_augmenter,
    jitter_intensity,
    rotate,
)
from pggan_core.augmentation.study import (
    ARMS,
    RESULT_FILE,
    Job,
    StudyData,
    augmentation_study,
    chosen_items,
    claim_values,
    study_jobs,
    summarise,
    synthetic_pairs,
    training_pairs,
)
from pggan_core.cli import main
from pggan_core.config import load_config, same_config
from pggan_core.data.fundus_phantom import render_fundus
from pggan_core.data.preprocess import fundus_channels
from pggan_core.data.store import box_downsample
from pggan_core.errors import ConfigError
from pggan_core.runs.folder import run_config
from pggan_core.segmentation.pairs import (
    LabelledSet,
    fundus_pairs,
    tumour_classes,
    tumour_pairs,
)
from pggan_core.segmentation.segmenters import score_segmenter, train_segmenter
from pggan_core.segmentation.tasks import dice, segmentation_task, tumour_loss


def _fundus(n: int = 2, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Phantom photographs (n, 4, size, size) in [-1, 1] and their vessel fractions."""
    images = np.stack([box_downsample(box_downsample(fundus_channels(
        (f := render_fundus(seed, 4 * size)).rgb, f.vessels.astype(np.float32))))
        for seed in range(n)])
    return images, (images[:, 3] + 1.0) / 2.0


# ---------------------------------------------------------------------------- pairs


def test_a_synthetic_fundus_pair_is_made_exactly_as_a_real_one():
    images, truth = _fundus()
    cfg = load_config("smoke", "rop")
    real = fundus_pairs(images, truth, cfg.data, cfg.vessels.train_resolution)
    fake = synthetic_pairs("rop", images, cfg)  # the vessel channel read as the GAN's
    assert np.array_equal(real.x, fake.x) and np.array_equal(real.y, fake.y)
    assert real.x.shape == (2, 1, 64, 64) and real.y.shape == (2, 64, 64)


def test_fundus_targets_are_binary_inside_the_field_of_view_and_inputs_zero_outside():
    images, truth = _fundus()
    pairs = fundus_pairs(images, truth, load_config("smoke", "rop").data, 128)
    assert set(np.unique(pairs.y)) == {0.0, 1.0}
    assert not pairs.y[~pairs.fov].any() and not pairs.x[:, 0][~pairs.fov].any()
    assert 0.01 < pairs.y[pairs.fov].mean() < 0.3  # a vessel tree, not noise or nothing


def test_tumour_classes_take_the_label_above_one_half_and_the_highest_of_several():
    channels = -np.ones((1, 3, 2, 2), np.float32)
    channels[0, 0, 0, 0] = 0.2   # NCR 0.6: class 1
    channels[0, 1, 0, 1] = -0.2  # ED 0.4: below one half, background
    channels[0, 1, 1, 0], channels[0, 2, 1, 0] = 0.4, 0.8  # ED 0.7, ET 0.9: ET (3) wins
    assert tumour_classes(channels)[0].tolist() == [[1, 0], [3, 0]]


def test_tumour_pairs_refuse_slices_without_label_channels():
    with pytest.raises(Exception, match="7, R, R"):
        tumour_pairs(np.zeros((2, 4, 8, 8), np.float32))


# ---------------------------------------------------------------------------- classic


def test_rotating_by_zero_degrees_changes_nothing_and_targets_keep_their_classes():
    x, y = torch.rand(3, 2, 16, 16), torch.randint(0, 4, (3, 16, 16))
    same_x, same_y = rotate(x, y, torch.zeros(3))
    assert torch.allclose(same_x, x, atol=1e-5) and torch.equal(same_y, y)
    _, turned = rotate(x, y, torch.full((3,), 12.0))
    assert set(turned.unique().tolist()) <= set(range(4))


def test_intensity_jitter_leaves_the_background_and_stays_in_range():
    x = torch.rand(4, 4, 8, 8) * 2 - 1
    x[:, :, :2] = -1.0  # background
    out = jitter_intensity(x, 0.3, -1.0, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :, :2], x[:, :, :2])
    assert out.min() >= -1.0 and out.max() <= 1.0 and not torch.equal(out, x)


def test_classic_augmentation_is_reproducible_from_its_generator():
    x, y = torch.rand(4, 1, 16, 16), (torch.rand(4, 16, 16) > 0.8).float()
    a = classic_augment(x, y, 15, 0.1, 0.0, torch.Generator().manual_seed(3))
    b = classic_augment(x, y, 15, 0.1, 0.0, torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


# ---------------------------------------------------------------------------- protocol


def test_every_arm_runs_at_every_k_and_the_synthetic_arm_once_per_seed():
    jobs = study_jobs((2, 5, 50), n_items=20, seeds=3)
    assert {(j.arm, j.k) for j in jobs if j.seed == 0} == {
        (arm, k) for arm in ARMS[:3] for k in (2, 5, 20)} | {("synthetic", 0)}
    assert len(jobs) == 3 * (3 * 3 + 1) and {j.seed for j in jobs} == {0, 1, 2}


def test_the_k_items_of_a_seed_are_nested_and_differ_between_seeds():
    items = np.repeat(np.arange(30), 4)  # 30 subjects of 4 slices
    two, five = chosen_items(items, 2, seed=1), chosen_items(items, 5, seed=1)
    assert set(two) <= set(five) and len(set(five)) == 5
    assert set(chosen_items(items, 5, seed=2)) != set(five)


def _toy_data(n_real: int = 6, m: int = 3) -> StudyData:
    def pairs(n: int, value: float) -> LabelledSet:
        return LabelledSet(np.full((n, 4, 8, 8), value, np.float32),
                           np.zeros((n, 8, 8), np.int64))

    return StudyData("brats", pairs(2 * n_real, 0.5), np.repeat(np.arange(n_real), 2),
                     pairs(2, 0.5), (pairs(m, -0.5), pairs(m, -0.25)))


def test_each_arm_learns_from_its_own_pairs():
    data = _toy_data()
    real = training_pairs(data, Job("real", 2, 1))
    assert len(real) == 4 and (real.x == 0.5).all()  # 2 subjects of 2 slices
    both = training_pairs(data, Job("real + synthetic", 2, 1))
    assert len(both) == 4 + 3 and (both.x[4:] == -0.25).all()  # seed 1's synthetic pairs
    assert len(training_pairs(data, Job("synthetic", 0, 0))) == 3
    assert len(training_pairs(data, Job("real + classic", 2, 1))) == 4


def test_the_segmenter_budget_is_the_same_in_every_arm(monkeypatch):
    from pggan_core.segmentation import segmenters

    budgets = {}

    def recording_fit(net, draw_batch, loss_fn, iterations, lr, label, progress=True):
        x, y = draw_batch()
        budgets[arm] = (iterations, lr, tuple(x.shape), tuple(y.shape),
                        sum(p.numel() for p in net.parameters()))
        return []

    monkeypatch.setattr(segmenters, "fit_unet", recording_fit)
    cfg, data = run_config("brats", "smoke"), _toy_data()
    for arm in ARMS:
        pairs = training_pairs(data, Job(arm, 2 if arm != "synthetic" else 0, 0))
        augment = classic_augmenter("brats", cfg, 0) if arm == "real + classic" else None
        train_segmenter("brats", pairs, cfg, seed=0, augment=augment)
    assert len(set(budgets.values())) == 1, budgets
    assert budgets["real"][:3] == (2, 1e-3, (4, 4, 8, 8))


# ---------------------------------------------------------------------------- scores


def test_dice_is_one_for_a_perfect_and_zero_for_a_disjoint_prediction():
    truth = np.zeros((4, 4), bool)
    truth[:2] = True
    assert dice(truth, truth) == 1.0 and dice(~truth, truth) == 0.0
    assert np.isnan(dice(np.zeros_like(truth), np.zeros_like(truth)))


def test_tumour_loss_is_lower_for_the_right_answer():
    labels = torch.randint(0, 4, (2, 8, 8))
    right = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float() * 10
    assert tumour_loss(right, labels) < tumour_loss(torch.zeros(2, 4, 8, 8), labels)


class _Oracle(torch.nn.Module):
    """Answers with the test set's own targets: every score must be perfect."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.logits[self.seen:self.seen + len(x)]
        self.seen += len(x)
        return out


def test_a_segmenter_that_answers_the_truth_scores_perfectly():
    images, truth = _fundus()
    test = fundus_pairs(images, truth, load_config("smoke", "rop").data, 64)
    oracle = _Oracle(torch.from_numpy(test.y[:, None] * 20 - 10))
    assert score_segmenter("rop", oracle, test) == {"dice": 1.0, "auc": 1.0}
    labels = torch.randint(0, 4, (3, 8, 8))
    slices = LabelledSet(np.zeros((3, 4, 8, 8), np.float32), labels.numpy())
    oracle = _Oracle(torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float())
    metrics = segmentation_task("brats").metrics
    assert score_segmenter("brats", oracle, slices) == dict.fromkeys(metrics, 1.0)


def _rows() -> list[dict]:
    """Scores of a toy study where synthetic pairs add 0.1 at k = 2, in every seed."""
    rows = []
    for seed in range(3):
        for k, base in ((2, 0.5), (8, 0.8)):
            rows += [{"arm": "real", "k": k, "seed": seed, "dice": base + 0.01 * seed},
                     {"arm": "real + classic", "k": k, "seed": seed,
                      "dice": base + 0.02 * (seed - 1)},
                     {"arm": "real + synthetic", "k": k, "seed": seed,
                      "dice": base + 0.01 * seed + (0.1 if k == 2 else 0.0)}]
        rows.append({"arm": "synthetic", "k": 0, "seed": seed, "dice": 0.4})
    return rows


def _result() -> dict:
    rows = _rows()
    result = {"metrics": ["dice"], "rows": rows, "summary": summarise(rows, ("dice",)),
              "settings": {"n_synthetic": 16, "iterations": 5, "rotation_degrees": 15.0,
                           "intensity_jitter": 0.1},
              "real": {"items": "photographs"}, "gan": {"trained_on": "everything"}}
    return result | claim_values(result)


def test_the_summary_gives_mean_and_spread_over_seeds():
    entry = next(e for e in _result()["summary"] if e["arm"] == "real" and e["k"] == 2)
    assert entry["n_seeds"] == 3 and entry["dice_mean"] == pytest.approx(0.51)
    assert entry["dice_sd"] == pytest.approx(0.01)


def test_the_verdicts_say_better_only_when_every_seed_agrees():
    lines = report.study_verdicts(_result())
    adding = [line for line in lines if line.startswith("Adding 16 synthetic pairs to k = 2")]
    assert adding and adding[0].endswith("better.") and "+0.100" in adding[0]
    assert any(line.startswith("Adding 16 synthetic pairs to all 8") and
               line.endswith("no consistent difference.") for line in lines)
    classic = next(line for line in lines if line.startswith("Classic augmentation of k = 2"))
    assert classic.endswith("no consistent difference.")  # -0.02, 0, +0.02


def test_the_claim_values_quote_the_fewest_and_all_labels():
    result = _result()
    assert result["augmentation_real_synthetic_scarce"] == "0.610 ± 0.010 (k = 2)"
    assert result["augmentation_real_all"] == "0.810 ± 0.010 (all 8 photographs)"
    assert result["augmentation_synthetic_only"] == "0.400 ± 0.000 (M = 16)"


def test_the_claims_table_reads_the_augmentation_rows(tmp_path, monkeypatch):
    from pggan_book.results_table import claims_table
    from pggan_core.runs import folder
    from pggan_core.training import checkpoint

    monkeypatch.setattr(folder, "stale_result", lambda *args: None)  # tests/test_derived.py
    monkeypatch.setattr(folder, "run_generator", lambda run: ("", None))
    monkeypatch.setattr(checkpoint, "has_generator", lambda run: True)
    run = tmp_path / "runs" / "rop" / "smoke" / "seg"
    run.mkdir(parents=True)
    (run / RESULT_FILE).write_text(json.dumps(_result()))
    row = claims_table("smoke", ("rop",), root=tmp_path).iloc[-1]
    assert "real + synthetic 0.610 ± 0.010 (k = 2)" in row["ROP"]
    assert row["reproduced?"] == "yes"  # +0.1 in every seed, beyond the spread

# ---------------------------------------------------------------------------- config, CLI


def test_the_study_settings_do_not_change_what_a_trained_run_is():
    cfg = load_config("demo", "rop")
    other = load_config("demo", "rop", {"augment": {"iterations": 7, "seeds": 5}})
    assert same_config(cfg.run_dict(), other) and "augment" not in cfg.run_dict()
    assert other.augment.iterations == 7


def test_label_counts_must_be_a_list_of_integers():
    assert load_config("demo", "rop", {"augment": {"label_counts": [3]}}
                       ).augment.label_counts == (3,)
    with pytest.raises(ConfigError, match="augment.label_counts"):
        load_config("demo", "rop", {"augment": {"label_counts": 3}})


@pytest.mark.parametrize("args, message", [
    (["--set", "train.lr=0.1"], "augment section only"),
    (["--overlay", "authors"], "cannot apply --overlay"),
])
def test_the_command_refuses_settings_of_the_trained_run(args, message, capsys):
    assert main(["augment-study", "--dataset", "rop", "--profile", "smoke", *args]) == 2
    assert message in capsys.readouterr().err


def test_the_command_names_the_missing_run(capsys):
    assert main(["augment-study", "--dataset", "rop", "--profile", "smoke"]) == 2
    assert "03_train.md" in capsys.readouterr().err


@pytest.mark.parametrize("ships", [True, False])
def test_the_command_installs_the_shipped_run_it_studies(ships, monkeypatch, capsys):
    """A fresh clone holds no run: the study installs the one its profile ships (as the book
    and `pggan ablation-seeds` do) and, where none is shipped, names the command that trains."""
    from pggan_core.augmentation import study
    from pggan_core.runs import reuse, shipped

    calls = []
    monkeypatch.setattr(shipped, "ships", lambda profile, dataset, variant, config: ships
                        and (profile, dataset, variant) == ("smoke", "rop", "seg"))
    monkeypatch.setattr(reuse, "ensure_run",
                        lambda dataset, profile, **kw: calls.append(("install", dataset, profile)))

    def study_stops_here(dataset, profile, **kw):
        calls.append(("study", dataset, profile))
        raise ConfigError("stopped after the wiring")

    monkeypatch.setattr(study, "run_augmentation_study", study_stops_here)
    assert main(["augment-study", "--dataset", "rop", "--profile", "smoke"]) == 2
    assert calls == [("install", "rop", "smoke")] * ships + [("study", "rop", "smoke")]
    assert main(["augment-study", "--dataset", "rop", "--profile", "smoke",
                 "--source", "somewhere"]) == 2  # the user's own data: nothing shipped for it
    assert calls.count(("install", "rop", "smoke")) == ships and calls[-1][0] == "study"


# ---------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_the_study_trains_every_arm_and_writes_its_results(tiny_run_copy):
    cfg = run_config("rop", "smoke", augment={"label_counts": [1, 3]})
    result = augmentation_study(tiny_run_copy, cfg, lanes=1, progress=False)
    saved = json.loads((tiny_run_copy / RESULT_FILE).read_text())
    assert saved == json.loads(json.dumps(result))
    n_items = saved["real"]["n_train_items"]
    assert {(r["arm"], r["k"]) for r in saved["rows"]} == {
        (arm, k) for arm in ARMS[:3] for k in (1, 3, n_items)} | {("synthetic", 0)}
    assert len(saved["rows"]) == 3 * 10
    # the tiny GAN draws 16 px photographs, where no vessel covers half a pixel: the targets
    # are empty, Dice is 0 or undefined and there is no AUC (real and synthetic alike)
    assert all(np.isnan(r["auc"]) or 0.0 <= r["auc"] <= 1.0 for r in saved["rows"])
    assert all(np.isnan(r["dice"]) or 0.0 <= r["dice"] <= 1.0 for r in saved["rows"])
    assert saved["real"]["n_test_images"] >= 1 and "never saw" in saved["real"]["test"]
    assert saved["gan"]["trained_on"].endswith(
        "with the vessel channel from the phantom's exact vessels")
    assert saved["augmentation_real_scarce"].endswith("(k = 1)")
    assert yaml.safe_load((tiny_run_copy / "config.yaml").read_text()).get("augment") is None


@pytest.mark.slow
def test_a_study_of_another_generator_is_set_aside_not_shown(tiny_run_copy):
    from pggan_book.augmentation_report import current_study
    from pggan_core.augmentation.study import STALE_FILE

    cfg = run_config("rop", "smoke", augment={"label_counts": [1], "seeds": 2})
    augmentation_study(tiny_run_copy, cfg, lanes=1, progress=False)
    result, origin = current_study(tiny_run_copy)
    assert result is not None and "not by this build" in origin
    saved = json.loads((tiny_run_copy / RESULT_FILE).read_text())
    code = {name: "0" * 16 for name in saved["derivation"]["code"]}
    for change, reason in ((("generator_sha256", "0" * 64), "generator weights differ"),
                           (("code", code), "code that computes it changed")):
        changed = {**saved, "derivation": dict([*saved["derivation"].items(), change])}
        (tiny_run_copy / RESULT_FILE).write_text(json.dumps(changed))
        result, origin = current_study(tiny_run_copy)
        assert result is None and reason in origin
        assert (tiny_run_copy / STALE_FILE).is_file()
        assert not (tiny_run_copy / RESULT_FILE).exists()
