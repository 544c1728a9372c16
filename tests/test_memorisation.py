"""The memorisation report (``measures.memorisation``): planted copies are found, images the
generator never saw are not."""

import numpy as np
import pytest

from pggan_book import readings
from pggan_core.data.fundus_phantom import render_fundus
from pggan_core.data.preprocess import fundus_channels
from pggan_core.data.store import box_downsample
from pggan_core.measures import memorisation as m


@pytest.fixture(scope="module")
def generated_size() -> np.ndarray:
    """160 phantom fundus photographs at 64 px (image channels), as a demo run draws them."""
    images = []
    for seed in range(160):
        fundus = render_fundus(seed, 128)
        images.append(box_downsample(fundus_channels(fundus.rgb, fundus.vessels)[:3]))
    return np.stack(images)


@pytest.fixture(scope="module")
def photographs(generated_size) -> np.ndarray:
    """The same at the compared size (32 px)."""
    return m.at_resolution(generated_size, 3)


def test_planted_copies_are_found_and_unseen_images_are_not(generated_size, photographs):
    train, unseen = photographs[:120], photographs[120:]
    report = m.memorisation_report(unseen, train, unseen)
    thresholds = report["thresholds"]
    assert set(thresholds) == {"pixel", "invariant"}
    planted = m.planted_check(generated_size[:24], train, thresholds)
    assert planted["n"] == 24 and set(planted["found"]) == set(m.PLANTED)
    assert min(planted["found"].values()) >= 0.95, planted["found"]
    # photographs the generator never saw: rarely flagged (the threshold, the 0.5 % quantile of
    # 120 leave-one-out distances in each space, is about their minimum here: a few percent;
    # the demo's 540 training images set it at 1 % in all)
    flagged = report["generated_flagged"]
    assert flagged["n"] == 40 and flagged["flagged"] <= 4
    low, high = flagged["interval"]
    assert 0.0 <= low <= flagged["share"] <= high <= 1.0
    # the closest pairs are listed closest first
    pairs = m.closest_pairs(report, 5)
    assert [p["invariant"] for p in pairs] == sorted(p["invariant"] for p in pairs)


def test_an_exact_copy_is_at_distance_zero_and_names_its_original(photographs):
    train = photographs[:50]
    copies = m.planted_copies(train[[3, 7]], "mirrored")
    distance, index = m.invariant_distances(copies, train)
    assert distance == pytest.approx([0, 0], abs=1e-6) and index.tolist() == [3, 7]
    shifted = m.planted_copies(train[[5]], "shifted 2 px")
    assert m.invariant_distances(shifted, train)[1].tolist() == [5]


def test_a_slice_is_never_matched_with_its_own_subject(photographs):
    # two "subjects" of near-identical neighbouring slices: leave-one-out must look past them
    train = np.concatenate([photographs[:10], photographs[:10] + 0.01])
    groups = np.array([f"s{i}" for i in range(10)] * 2)
    report = m.memorisation_report(photographs[10:14], train, photographs[14:18], groups)
    assert min(report["reference"]["pixel"]) > 0.5  # not the 0.01-brighter twin
    assert m.share_with_interval(np.array([], bool))["share"] is None


def test_unseen_real_images_are_judged_by_thresholds_they_did_not_set():
    # 100 subjects of 4 slices each, alike within a subject: left out in turn, a subject's
    # slices must be judged against the other subjects alone
    rng = np.random.default_rng(0)
    subjects = rng.normal(0, 1, (100, 1, 3, 16, 16)).astype(np.float32)
    train = (subjects + rng.normal(0, 0.5, (100, 4, 3, 16, 16))).reshape(400, 3, 16, 16)
    train = train.astype(np.float32)
    groups = np.repeat([f"s{i}" for i in range(100)], 4)
    report = m.memorisation_report(train[:8], train, train[:8], groups)
    unseen = report["unseen_flagged"]
    assert unseen["n"] == 400 and unseen["folds"] == m.CV_FOLDS
    # about 1 % expected (two spaces at 0.5 % each): 3 of 400 here
    assert unseen["share"] <= 0.02 and unseen["interval"][0] <= 0.01 <= unseen["interval"][1]
    # the generated images here are training slices: every one is flagged, as a copy
    assert report["generated_flagged"]["share"] == 1.0


def test_the_flagged_lines_say_what_was_not_measured():
    report = {"generated_flagged": m.share_with_interval(np.array([True, False, False, False])),
              "heldout_flagged": m.share_with_interval(np.array([], bool)),
              "unseen_flagged": {**m.share_with_interval(np.zeros(0, bool)), "folds": 5},
              "flagged_subjects": {"s1": 1}, "training_subjects": 2}
    lines = readings.flagged_lines(report)
    assert "1 of    4 flagged (25.0%" in lines[0]
    assert "not measured" in lines[1] and "not measured" in lines[2]
    assert "re-identified by a flagged slice: 1 of 2" in lines[3]
