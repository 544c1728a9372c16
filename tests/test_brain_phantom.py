"""The BraTS-like glioma phantom: geometry, labels, determinism, MR contrast, NIfTI export."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from pggan_core.data.brain_phantom import (
    BRATS_SHAPE,
    BrainPhantom,
    plan_subject,
    write_brats_case,
)
from pggan_core.data.types import MODALITIES, BrainVolume

HGG_SEED = 0


@pytest.fixture(scope="module")
def phantom() -> BrainPhantom:
    return BrainPhantom()


@pytest.fixture(scope="module")
def volume(phantom: BrainPhantom) -> BrainVolume:
    """One whole subject with its true tissue fractions, shared by the tests below."""
    return phantom.subject(HGG_SEED, tissue=True)


def _first_seed(phantom: BrainPhantom, grade: str) -> int:
    """The first seed of a grade; planning is cheap, rendering is not."""
    return next(s for s in range(100) if plan_subject(s, phantom.templates).tumour.grade == grade)


def test_geometry_types_and_meta(volume: BrainVolume) -> None:
    assert volume.modalities.shape == (len(MODALITIES), *BRATS_SHAPE)
    assert volume.modalities.dtype == np.float32
    assert volume.seg.shape == BRATS_SHAPE and volume.seg.dtype == np.uint8
    assert volume.brain_mask.shape == BRATS_SHAPE and volume.brain_mask.dtype == bool
    assert volume.meta["subject"] == "phantom-00000"
    assert volume.meta["grade"] == "HGG"
    assert volume.meta["z_range"] == (0, BRATS_SHAPE[2])
    assert volume.source_file == f"phantom:{HGG_SEED}"
    # An adult brain is 1.1-1.7 l; the whole brain fits inside the grid (empty border).
    assert 1.0e6 < volume.brain_mask.sum() < 2.2e6
    assert not volume.brain_mask[[0, -1]].any() and not volume.brain_mask[:, [0, -1]].any()
    x, y, z = (int(round(v)) for v in volume.meta["tumour_centre"])
    assert volume.seg[x, y, z] in (1, 4)


def test_skull_stripped_raw_intensities(volume: BrainVolume) -> None:
    brain = volume.brain_mask
    for m in range(len(MODALITIES)):
        image = volume.modalities[m]
        assert np.all(image[~brain] == 0), "background must be exactly 0 (skull-stripped)"
        assert np.all(image[brain] > 0)
        assert image[brain].mean() > 50, "raw scanner-like scale, not z-scored"


def test_labels_are_brats_2017_and_inside_the_brain(volume: BrainVolume) -> None:
    assert set(np.unique(volume.seg)) == {0, 1, 2, 4}
    assert not (volume.seg > 0)[~volume.brain_mask].any()
    # An HGG: necrotic core inside the enhancing rim, oedema the largest compartment.
    counts = {label: int((volume.seg == label).sum()) for label in (1, 2, 4)}
    assert counts[2] > counts[4] > 0 and counts[1] > 0


def test_some_brain_slices_are_tumour_free(volume: BrainVolume) -> None:
    brain_slices = volume.brain_mask.sum(axis=(0, 1)) > 1000
    tumour_slices = (volume.seg > 0).any(axis=(0, 1))
    assert (brain_slices & ~tumour_slices).sum() >= 20
    assert tumour_slices.sum() >= 20


def test_contrast_matches_mr_physics(volume: BrainVolume) -> None:
    csf, gm, wm = volume.meta["tissue"]
    normal = volume.seg == 0
    regions = {
        "CSF": (csf > 0.95) & normal,
        "WM": (wm > 0.95) & normal,
        "oedema": volume.seg == 2,
        "enhancing": volume.seg == 4,
    }
    for name, region in regions.items():
        assert region.sum() > 500, name
    mean = {(m, name): float(volume.modalities[i][region].mean())
            for i, m in enumerate(MODALITIES) for name, region in regions.items()}
    assert mean["T1c", "enhancing"] > 1.2 * mean["T1c", "WM"]
    assert mean["T1", "enhancing"] < mean["T1", "WM"]  # it is gadolinium that makes it bright
    assert mean["FLAIR", "oedema"] > 1.3 * mean["FLAIR", "WM"]
    assert mean["FLAIR", "CSF"] < 0.3 * mean["FLAIR", "WM"]
    assert mean["T2", "CSF"] > 2.0 * mean["T2", "WM"]
    assert mean["T2", "oedema"] > 1.5 * mean["T2", "WM"]
    assert 0.25 < mean["T1", "CSF"] / mean["T1", "WM"] < 0.5


def test_deterministic_by_seed_and_z_range_is_a_cut_of_the_whole(
        phantom: BrainPhantom, volume: BrainVolume) -> None:
    z = int(round(volume.meta["tumour_centre"][2]))
    part = phantom.subject(HGG_SEED, z_range=(z - 2, z + 3))
    assert part.modalities.shape == (4, 240, 240, 5)
    assert part.meta["z_range"] == (z - 2, z + 3)
    np.testing.assert_allclose(part.modalities, volume.modalities[..., z - 2:z + 3], rtol=1e-5)
    np.testing.assert_array_equal(part.seg, volume.seg[..., z - 2:z + 3])
    np.testing.assert_array_equal(part.brain_mask, volume.brain_mask[..., z - 2:z + 3])
    again = phantom.subject(HGG_SEED, z_range=(z - 2, z + 3))
    np.testing.assert_array_equal(again.modalities, part.modalities)
    other = phantom.subject(HGG_SEED + 1, z_range=(z - 2, z + 3))
    assert not np.array_equal(other.brain_mask, part.brain_mask)


def test_lgg_is_mostly_non_enhancing(phantom: BrainPhantom) -> None:
    seed = _first_seed(phantom, "LGG")
    z = int(round(plan_subject(seed, phantom.templates).tumour.centre[2]))
    lgg = phantom.subject(seed, z_range=(z - 3, z + 4))
    assert lgg.meta["grade"] == "LGG"
    core = np.isin(lgg.seg, (1, 4))
    assert core.sum() > 500
    assert (lgg.seg == 4).sum() < 0.1 * core.sum()


def test_bad_z_range_is_refused(phantom: BrainPhantom) -> None:
    with pytest.raises(ValueError, match="z_range"):
        phantom.subject(0, z_range=(100, 100))
    with pytest.raises(ValueError, match="z_range"):
        phantom.subject(0, z_range=(0, 156))


@pytest.mark.parametrize(("naming", "names", "enhancing_label"), [
    ("2017", ("t1", "t1ce", "t2", "flair"), 4),
    ("2023", ("t1n", "t1c", "t2w", "t2f"), 3),
])
def test_write_brats_case_round_trips(phantom: BrainPhantom, tmp_path, naming, names,
                                      enhancing_label) -> None:
    z = int(round(plan_subject(HGG_SEED, phantom.templates).tumour.centre[2]))
    part = phantom.subject(HGG_SEED, z_range=(z, z + 2))
    case_id = "Brats17_PHANTOM_000_1" if naming == "2017" else "BraTS-GLI-00000-000"
    sep = "_" if naming == "2017" else "-"
    case = write_brats_case(part, tmp_path, case_id, naming=naming)
    assert case == tmp_path / case_id
    assert sorted(p.name for p in case.iterdir()) == sorted(
        f"{case_id}{sep}{n}.nii.gz" for n in (*names, "seg"))
    for i, name in enumerate(names):
        img = nib.load(case / f"{case_id}{sep}{name}.nii.gz")
        np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), part.modalities[i])
        np.testing.assert_allclose(img.affine, part.meta["affine"])
        assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    seg = np.asarray(nib.load(case / f"{case_id}{sep}seg.nii.gz").dataobj)
    expected = np.where(part.seg == 4, enhancing_label, part.seg)
    np.testing.assert_array_equal(seg, expected)
    assert (seg == enhancing_label).any()
