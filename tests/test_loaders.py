"""Real-data loaders on tiny files written in each public layout (DRIVE, STARE, CHASE_DB1, HRF,
FIVES, plain folder; BraTS 2017 to 2023 naming), plus every bad-input error."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import skimage
from PIL import Image

from pggan_core.data.loaders import (
    find_brats_cases,
    find_fundus_images,
    laterality_from_disc,
    load_brats_case,
    load_fundus,
)
from pggan_core.errors import DataError

H, W = 36, 40  # fundus test images are 40 wide, 36 high
VOLUME_SHAPE = (16, 16, 8)

# ----------------------------------------------------------------------------------------------
# Writers


def write_image(path: Path, pixels: np.ndarray) -> Path:
    """Write RGB (or grey) pixels in the format the suffix names (.gif via PIL, .gz gzipped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        Image.fromarray(pixels).save(path)
        return path
    inner_suffix = Path(path.name.removesuffix(".gz")).suffix
    if inner_suffix == ".ppm" and pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)  # like STARE's labels: grey in P6
    bgr = pixels[:, :, ::-1] if pixels.ndim == 3 else pixels
    ok, encoded = cv2.imencode(inner_suffix, np.ascontiguousarray(bgr))
    assert ok
    data = encoded.tobytes()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def fundus_rgb(seed: int) -> np.ndarray:
    """A uint8 RGB image with a bright (red > 20) interior and a black border."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(60, 200, size=(H, W, 3), dtype=np.uint8)
    rgb[:3], rgb[-3:] = 0, 0
    return rgb


def vessel_mask(seed: int) -> np.ndarray:
    """A uint8 0/255 mask: a few random horizontal and vertical stripes."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((H, W), np.uint8)
    mask[rng.integers(0, H, 3)] = 255
    mask[:, rng.integers(0, W, 3)] = 255
    return mask


def fov_disc() -> np.ndarray:
    """A uint8 0/255 disc that differs from the red > 20 rule (the image interior is all red)."""
    yy, xx = np.mgrid[:H, :W]
    return np.where((yy - H / 2) ** 2 + (xx - W / 2) ** 2 < 15**2, 255, 0).astype(np.uint8)


def expected_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """What the loader should make of a full-size mask: pad square, INTER_AREA, > 0.5."""
    side = max(mask.shape)
    top, left = (side - mask.shape[0]) // 2, (side - mask.shape[1]) // 2
    padded = np.zeros((side, side), np.float32)
    padded[top:top + mask.shape[0], left:left + mask.shape[1]] = mask > 127
    return cv2.resize(padded, (size, size), interpolation=cv2.INTER_AREA) > 0.5


def write_volume(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def brats_arrays(seed: int, labels: tuple[int, ...] = (1, 2, 4)) -> dict[str, np.ndarray]:
    """Four positive modality volumes inside a central brain box, zero outside, and a seg."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name in ("t1", "t1ce", "t2", "flair"):
        volume = np.zeros(VOLUME_SHAPE, np.float32)
        volume[3:13, 2:14, 1:7] = rng.uniform(10, 1000, size=(10, 12, 6))
        arrays[name] = volume
    seg = np.zeros(VOLUME_SHAPE, np.uint8)
    for i, label in enumerate(labels):
        seg[5 + i, 5:9, 2:5] = label
    arrays["seg"] = seg
    return arrays


def write_case(case_dir: Path, arrays: dict[str, np.ndarray], suffixes: dict[str, str],
               sep: str = "_") -> Path:
    """Write one case; ``suffixes`` maps t1/t1ce/t2/flair/seg to the file suffix to use."""
    for name, data in arrays.items():
        write_volume(case_dir / f"{case_dir.name}{sep}{suffixes[name]}.nii.gz", data)
    return case_dir


OLD_SUFFIXES = {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"}
GLI_SUFFIXES = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"}


def assert_one_line_naming(excinfo: pytest.ExceptionInfo, path: Path) -> None:
    message = str(excinfo.value)
    assert str(path) in message
    assert "\n" not in message
    assert ";" in message  # every message gives a fix after the semicolon


# ----------------------------------------------------------------------------------------------
# Fundus layouts


def test_drive_pairs_first_observer_and_fov_mask(tmp_path: Path) -> None:
    for split, number in (("training", 21), ("test", 1)):
        base = tmp_path / split
        write_image(base / "images" / f"{number:02d}_{split}.tif", fundus_rgb(number))
        write_image(base / "1st_manual" / f"{number:02d}_manual1.gif", vessel_mask(number))
        write_image(base / "mask" / f"{number:02d}_{split}_mask.gif", fov_disc())
    write_image(tmp_path / "test" / "2nd_manual" / "01_manual2.gif", vessel_mask(99))

    records = find_fundus_images(tmp_path)
    assert [r.image_path.name for r in records] == ["01_test.tif", "21_training.tif"]
    first = records[0]
    assert first.vessel_path == tmp_path / "test" / "1st_manual" / "01_manual1.gif"
    assert first.fov_path == tmp_path / "test" / "mask" / "01_test_mask.gif"
    assert records[1].vessel_path.name == "21_manual1.gif"
    assert {r.layout for r in records} == {"DRIVE"}
    assert {r.laterality_from_name for r in records} == {None}

    image = load_fundus(first, 20)
    assert image.rgb.shape == (20, 20, 3) and image.rgb.dtype == np.float32
    assert image.vessels.dtype == bool and image.fov.dtype == bool
    np.testing.assert_array_equal(image.vessels, expected_mask(vessel_mask(1), 20))
    np.testing.assert_array_equal(image.fov, expected_mask(fov_disc(), 20))  # file, not red rule
    assert image.labels["layout"] == "DRIVE"
    assert image.labels["laterality_source"] == "heuristic"
    assert image.labels["laterality"] in ("OD", "OS")
    assert image.source_file == str(first.image_path)


def test_stare_reads_ppm_and_ppm_gz_with_ah_as_reference(tmp_path: Path) -> None:
    rgb1, rgb2 = fundus_rgb(1), fundus_rgb(2)
    write_image(tmp_path / "stare-images" / "im0001.ppm.gz", rgb1)
    write_image(tmp_path / "stare-images" / "im0002.ppm", rgb2)
    write_image(tmp_path / "labels-ah" / "im0001.ah.ppm.gz", vessel_mask(1))
    write_image(tmp_path / "labels-vk" / "im0001.vk.ppm.gz", vessel_mask(2))

    records = find_fundus_images(tmp_path)
    assert [r.image_path.name for r in records] == ["im0001.ppm.gz", "im0002.ppm"]
    assert records[0].vessel_path == tmp_path / "labels-ah" / "im0001.ah.ppm.gz"
    assert records[1].vessel_path is None and records[1].fov_path is None
    assert {r.layout for r in records} == {"STARE"}

    # Size 40 keeps the 40-wide image unscaled: PPM is lossless, so values must be exact.
    image = load_fundus(records[0], W)
    np.testing.assert_allclose(image.rgb[2:38], rgb1 / 255, atol=1e-6)
    assert np.all(image.rgb[:2] == 0) and np.all(image.rgb[38:] == 0)
    np.testing.assert_array_equal(image.vessels, expected_mask(vessel_mask(1), W))
    # No FOV file: red > 20/255, so the black border rows are outside.
    np.testing.assert_array_equal(image.fov, image.rgb[:, :, 0] > 20 / 255)
    assert load_fundus(records[1], W).vessels is None


def test_chase_db1_takes_laterality_from_the_name(tmp_path: Path) -> None:
    for name in ("Image_01L", "Image_01R"):
        write_image(tmp_path / f"{name}.jpg", fundus_rgb(3))
        write_image(tmp_path / f"{name}_1stHO.png", vessel_mask(3))
        write_image(tmp_path / f"{name}_2ndHO.png", vessel_mask(4))

    records = find_fundus_images(tmp_path)
    assert [r.image_path.name for r in records] == ["Image_01L.jpg", "Image_01R.jpg"]
    assert [r.vessel_path.name for r in records] == ["Image_01L_1stHO.png", "Image_01R_1stHO.png"]
    assert [r.laterality_from_name for r in records] == ["OS", "OD"]
    assert {r.layout for r in records} == {"CHASE_DB1"}
    image = load_fundus(records[1], 16)
    assert image.labels == {"laterality": "OD", "laterality_source": "filename",
                            "layout": "CHASE_DB1"}
    np.testing.assert_array_equal(image.vessels, expected_mask(vessel_mask(3), 16))


def test_hrf_pairs_manual1_and_mask_folders(tmp_path: Path) -> None:
    for name in ("01_h", "01_dr"):
        write_image(tmp_path / "images" / f"{name}.{'JPG' if name == '01_dr' else 'jpg'}",
                    fundus_rgb(5))
        write_image(tmp_path / "manual1" / f"{name}.tif", vessel_mask(5))
        write_image(tmp_path / "mask" / f"{name}_mask.tif", fov_disc())

    records = find_fundus_images(tmp_path)
    assert [r.image_path.name for r in records] == ["01_dr.JPG", "01_h.jpg"]
    assert [r.vessel_path.name for r in records] == ["01_dr.tif", "01_h.tif"]
    assert [r.fov_path.name for r in records] == ["01_dr_mask.tif", "01_h_mask.tif"]
    assert {r.layout for r in records} == {"HRF"}
    image = load_fundus(records[1], 20)
    np.testing.assert_array_equal(image.fov, expected_mask(fov_disc(), 20))


def test_fives_pairs_within_each_split(tmp_path: Path) -> None:
    # train/ and test/ reuse the name 1_A.png: each image must get its own split's mask.
    for split, seed in (("train", 6), ("test", 7)):
        write_image(tmp_path / split / "Original" / "1_A.png", fundus_rgb(seed))
        write_image(tmp_path / split / "Ground truth" / "1_A.png", vessel_mask(seed))

    records = find_fundus_images(tmp_path)
    assert [r.image_path.parent.parent.name for r in records] == ["test", "train"]
    assert [r.vessel_path.parent.parent.name for r in records] == ["test", "train"]
    assert {r.layout for r in records} == {"FIVES"}
    for record, seed in zip(records, (7, 6), strict=True):
        image = load_fundus(record, W)
        np.testing.assert_array_equal(image.vessels, expected_mask(vessel_mask(seed), W))


def test_plain_folder_16bit_and_optional_masks(tmp_path: Path) -> None:
    rgb16 = np.full((H, W, 3), (32768, 16384, 8192), np.uint16)
    rgb16[:4] = 0
    write_image(tmp_path / "a.png", rgb16)
    ones = (vessel_mask(8) > 0).astype(np.uint8)  # a 0/1 mask, not 0/255
    write_image(tmp_path / "vessels" / "a.png", ones)
    write_image(tmp_path / "patient7_left.tif", fundus_rgb(8))
    few_colours = fundus_rgb(9) // 64 * 64  # 64 colours: a GIF palette holds them exactly
    write_image(tmp_path / "b.gif", few_colours)

    records = find_fundus_images(tmp_path)
    assert [r.image_path.name for r in records] == ["a.png", "b.gif", "patient7_left.tif"]
    assert records[0].vessel_path == tmp_path / "vessels" / "a.png"
    assert records[1].vessel_path is None and records[2].vessel_path is None
    assert [r.laterality_from_name for r in records] == [None, None, "OS"]
    assert {r.layout for r in records} == {"folder"}

    deep = load_fundus(records[0], W)
    assert deep.rgb.shape == (W, W, 3)
    np.testing.assert_allclose(deep.rgb[10, 10], np.array([32768, 16384, 8192]) / 65535,
                               atol=1e-6)  # 16-bit scaled by its depth
    np.testing.assert_array_equal(deep.vessels, expected_mask(ones * 255, W))
    gif = load_fundus(records[1], W)
    np.testing.assert_allclose(gif.rgb[2:38], few_colours / 255, atol=1e-6)  # colour GIF


def test_single_image_file_is_one_record(tmp_path: Path) -> None:
    path = write_image(tmp_path / "Image_05R.jpg", fundus_rgb(0))
    write_image(tmp_path / "Image_05R_1stHO.png", vessel_mask(0))  # not looked for
    (record,) = find_fundus_images(path)
    assert (record.image_path, record.vessel_path, record.fov_path) == (path, None, None)
    assert (record.layout, record.laterality_from_name) == ("CHASE_DB1", "OD")


def test_padding_is_centred_black_and_resize_averages(tmp_path: Path) -> None:
    colour = np.array([51, 102, 153], np.uint8)  # red 51 > 20 -> inside the FOV
    write_image(tmp_path / "flat.png", np.broadcast_to(colour, (H, W, 3)).copy())
    image = load_fundus(find_fundus_images(tmp_path)[0], 20)
    # 40x36 pads 2 rows top and bottom to 40x40; halving puts one black row at each edge.
    assert np.all(image.rgb[0] == 0) and np.all(image.rgb[19] == 0)
    np.testing.assert_allclose(image.rgb[1:19], np.broadcast_to(colour / 255, (18, 20, 3)),
                               atol=1e-6)
    assert not image.fov[0].any() and image.fov[1:19].all()


def test_laterality_heuristic_finds_the_disc_of_skimage_retina(tmp_path: Path) -> None:
    retina = Path(skimage.__file__).parent / "data" / "retina.jpg"  # a left eye, disc on left
    shutil.copy(retina, tmp_path / "retina.jpg")
    image = load_fundus(find_fundus_images(tmp_path)[0], 32)
    assert image.labels["laterality"] == "OS"
    assert image.labels["laterality_source"] == "heuristic"
    assert image.rgb.shape == (32, 32, 3)
    mirrored = image.rgb[:, ::-1]
    assert laterality_from_disc(mirrored) == "OD"


# ----------------------------------------------------------------------------------------------
# Fundus bad input


def test_fundus_folder_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="does not exist") as excinfo:
        find_fundus_images(missing)
    assert_one_line_naming(excinfo, missing)

    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    with pytest.raises(DataError, match="not a fundus image") as excinfo:
        find_fundus_images(not_an_image)
    assert_one_line_naming(excinfo, not_an_image)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty") as excinfo:
        find_fundus_images(empty)
    assert_one_line_naming(excinfo, empty)

    no_images = tmp_path / "no_images"
    (no_images / "notes.txt").parent.mkdir()
    (no_images / "notes.txt").write_text("hello")
    write_image(no_images / "1st_manual" / "01_manual1.gif", vessel_mask(0))  # masks only
    with pytest.raises(DataError, match="no fundus images") as excinfo:
        find_fundus_images(no_images)
    assert_one_line_naming(excinfo, no_images)


@pytest.mark.parametrize("name, content", [
    ("broken.png", b"not a png at all" * 4),
    ("empty.jpg", b""),
    ("cut.ppm.gz", None),  # a gzip cut in half
    ("broken.gif", b"GIF89a garbage"),
])
def test_corrupt_image_names_the_file(tmp_path: Path, name: str, content: bytes | None) -> None:
    path = tmp_path / name
    if content is None:
        whole = write_image(tmp_path / "whole.ppm.gz", fundus_rgb(0)).read_bytes()
        (tmp_path / "whole.ppm.gz").unlink()
        content = whole[: len(whole) // 2]
    path.write_bytes(content)
    record = find_fundus_images(tmp_path)[0]
    with pytest.raises(DataError) as excinfo:
        load_fundus(record, 16)
    assert_one_line_naming(excinfo, path)


def test_mask_size_mismatch_is_caught_before_resizing(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "01_h.jpg", fundus_rgb(0))
    # 80x72 has the same aspect ratio: after resizing it would silently "fit".
    big = cv2.resize(vessel_mask(0), (2 * W, 2 * H), interpolation=cv2.INTER_NEAREST)
    mask_path = write_image(tmp_path / "manual1" / "01_h.tif", big)
    with pytest.raises(DataError, match="80x72") as excinfo:
        load_fundus(find_fundus_images(tmp_path)[0], 16)
    assert_one_line_naming(excinfo, mask_path)


def test_two_masks_for_one_image_is_an_error(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", fundus_rgb(0))
    write_image(tmp_path / "a_vessels.png", vessel_mask(0))
    write_image(tmp_path / "vessels" / "a.png", vessel_mask(1))
    with pytest.raises(DataError, match="two vessel masks") as excinfo:
        find_fundus_images(tmp_path)
    assert_one_line_naming(excinfo, tmp_path / "a.png")


def test_mask_matching_two_images_is_an_error(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", fundus_rgb(0))
    write_image(tmp_path / "a.jpg", fundus_rgb(1))
    mask_path = write_image(tmp_path / "vessels" / "a.png", vessel_mask(0))
    with pytest.raises(DataError, match="matches several images") as excinfo:
        find_fundus_images(tmp_path)
    assert_one_line_naming(excinfo, mask_path)


# ----------------------------------------------------------------------------------------------
# BraTS layouts


def test_brats_2017_layout_with_grades(tmp_path: Path) -> None:
    root = tmp_path / "MICCAI_BraTS17_Data_Training"
    hgg = brats_arrays(1)
    write_case(root / "HGG" / "Brats17_TCIA_105_1", hgg, OLD_SUFFIXES)
    write_case(root / "LGG" / "Brats17_2013_0_1", brats_arrays(2), OLD_SUFFIXES)
    (root / "survival_data.csv").write_text("Brats17ID,Age,Survival\n")

    cases = find_brats_cases(root)
    assert [c.case_dir.name for c in cases] == ["Brats17_TCIA_105_1", "Brats17_2013_0_1"]
    assert [c.grade for c in cases] == ["HGG", "LGG"]
    assert {c.naming for c in cases} == {"2017"}
    assert list(cases[0].modality_paths) == ["T1", "T1c", "T2", "FLAIR"]
    assert cases[0].modality_paths["T1c"].name == "Brats17_TCIA_105_1_t1ce.nii.gz"
    assert cases[0].seg_path.name == "Brats17_TCIA_105_1_seg.nii.gz"
    # Pointing at the HGG folder itself still knows the grade.
    assert [c.grade for c in find_brats_cases(root / "HGG")] == ["HGG"]

    volume = load_brats_case(cases[0])
    assert volume.modalities.shape == (4, *VOLUME_SHAPE)
    assert volume.modalities.dtype == np.float32
    for channel, name in enumerate(("t1", "t1ce", "t2", "flair")):
        np.testing.assert_array_equal(volume.modalities[channel], hgg[name])
    np.testing.assert_array_equal(volume.seg, hgg["seg"])
    assert volume.seg.dtype == np.uint8
    np.testing.assert_array_equal(volume.brain_mask, hgg["t1"] > 0)
    assert volume.meta == {"subject": "Brats17_TCIA_105_1", "grade": "HGG", "naming": "2017"}
    assert volume.source_file == str(cases[0].case_dir)


@pytest.mark.parametrize("case_name, naming", [
    ("Brats18_CBICA_AAB_1", "2018"),
    ("BraTS19_TMC_06290_1", "2019"),
    ("BraTS20_Training_001", "2020"),
    ("BraTS2021_00000", "2021"),
    ("my_case", "unknown"),
])
def test_brats_2018_to_2021_naming(tmp_path: Path, case_name: str, naming: str) -> None:
    arrays = brats_arrays(3)
    write_case(tmp_path / case_name, arrays, OLD_SUFFIXES)
    (case,) = find_brats_cases(tmp_path)
    assert (case.grade, case.naming) == ("unknown", naming)
    volume = load_brats_case(case)
    np.testing.assert_array_equal(volume.modalities[3], arrays["flair"])
    assert set(np.unique(volume.seg)) == {0, 1, 2, 4}


def test_brats_2020_case_355_odd_seg_name(tmp_path: Path) -> None:
    arrays = brats_arrays(3)
    seg = arrays.pop("seg")
    case_dir = write_case(tmp_path / "BraTS20_Training_355", arrays, OLD_SUFFIXES)
    write_volume(case_dir / "W39_1998.09.19_Segm.nii", seg)
    (case,) = find_brats_cases(tmp_path)
    assert case.seg_path.name == "W39_1998.09.19_Segm.nii"
    np.testing.assert_array_equal(load_brats_case(case).seg, seg)


def test_brats_2023_gli_naming_maps_label_3_to_4(tmp_path: Path) -> None:
    arrays = brats_arrays(4, labels=(1, 2, 3))
    write_case(tmp_path / "BraTS-GLI-00000-000", arrays, GLI_SUFFIXES, sep="-")
    (case,) = find_brats_cases(tmp_path)
    assert case.naming == "2023"
    assert case.modality_paths["FLAIR"].name == "BraTS-GLI-00000-000-t2f.nii.gz"
    volume = load_brats_case(case)
    for channel, name in enumerate(("t1", "t1ce", "t2", "flair")):
        np.testing.assert_array_equal(volume.modalities[channel], arrays[name])
    expected = arrays["seg"].copy()
    expected[expected == 3] = 4
    np.testing.assert_array_equal(volume.seg, expected)
    assert set(np.unique(volume.seg)) == {0, 1, 2, 4}


def test_brats_old_label_3_merges_into_1(tmp_path: Path) -> None:
    # Before 2017, 3 meant non-enhancing tumour; 2017 merged it into 1.
    arrays = brats_arrays(5, labels=(1, 3, 4))
    write_case(tmp_path / "Brats17_2013_5_1", arrays, OLD_SUFFIXES)
    volume = load_brats_case(find_brats_cases(tmp_path)[0])
    expected = arrays["seg"].copy()
    expected[expected == 3] = 1
    np.testing.assert_array_equal(volume.seg, expected)


def test_brats_reorients_to_canonical(tmp_path: Path) -> None:
    arrays = brats_arrays(6)
    case_dir = write_case(tmp_path / "BraTS2021_00001", arrays, OLD_SUFFIXES)
    # Store T1 flipped along x with an affine that says so: canonical RAS must undo the flip.
    flip_x = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip_x[0, 3] = VOLUME_SHAPE[0] - 1
    write_volume(case_dir / "BraTS2021_00001_t1.nii.gz", arrays["t1"][::-1].copy(), flip_x)
    volume = load_brats_case(find_brats_cases(tmp_path)[0])
    np.testing.assert_array_equal(volume.modalities[0], arrays["t1"])


def test_brats_ignores_unlabelled_folders(tmp_path: Path) -> None:
    write_case(tmp_path / "BraTS2021_00002", brats_arrays(7), OLD_SUFFIXES)
    unlabelled = {k: v for k, v in brats_arrays(8).items() if k != "seg"}
    write_case(tmp_path / "BraTS2021_00003", unlabelled, OLD_SUFFIXES)
    assert [c.case_dir.name for c in find_brats_cases(tmp_path)] == ["BraTS2021_00002"]


# ----------------------------------------------------------------------------------------------
# BraTS bad input


def test_brats_folder_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="does not exist") as excinfo:
        find_brats_cases(missing)
    assert_one_line_naming(excinfo, missing)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty") as excinfo:
        find_brats_cases(empty)
    assert_one_line_naming(excinfo, empty)

    a_file = write_volume(tmp_path / "BraTS2021_00000_t1.nii.gz", brats_arrays(0)["t1"])
    with pytest.raises(DataError, match="not a folder") as excinfo:
        find_brats_cases(a_file)
    assert_one_line_naming(excinfo, a_file)

    no_seg = tmp_path / "no_seg"
    arrays = {k: v for k, v in brats_arrays(0).items() if k != "seg"}
    write_case(no_seg / "BraTS2021_00000", arrays, OLD_SUFFIXES)
    with pytest.raises(DataError, match="no segmentations") as excinfo:
        find_brats_cases(no_seg)
    assert_one_line_naming(excinfo, no_seg)


def test_brats_missing_modality_is_named(tmp_path: Path) -> None:
    arrays = brats_arrays(0)
    del arrays["flair"]
    case_dir = write_case(tmp_path / "BraTS2021_00000", arrays, OLD_SUFFIXES)
    with pytest.raises(DataError, match="missing FLAIR") as excinfo:
        find_brats_cases(tmp_path)
    assert_one_line_naming(excinfo, case_dir)


@pytest.mark.parametrize("cut", ["half", "junk"])
def test_brats_corrupt_nifti_names_the_file(tmp_path: Path, cut: str) -> None:
    case_dir = write_case(tmp_path / "BraTS2021_00000", brats_arrays(0), OLD_SUFFIXES)
    t2 = case_dir / "BraTS2021_00000_t2.nii.gz"
    data = t2.read_bytes()
    t2.write_bytes(data[: len(data) // 2] if cut == "half" else b"garbage" * 50)
    with pytest.raises(DataError, match="cannot read NIfTI") as excinfo:
        load_brats_case(find_brats_cases(tmp_path)[0])
    assert_one_line_naming(excinfo, t2)


def test_brats_shape_mismatch(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path / "BraTS2021_00000", brats_arrays(0), OLD_SUFFIXES)
    write_volume(case_dir / "BraTS2021_00000_t1ce.nii.gz", np.arange(16 * 16 * 9, dtype=np.float32)
                 .reshape(16, 16, 9))
    with pytest.raises(DataError, match=r"shapes differ.*T1c \(16, 16, 9\)") as excinfo:
        load_brats_case(find_brats_cases(tmp_path)[0])
    assert_one_line_naming(excinfo, case_dir)


@pytest.mark.parametrize("problem, match", [
    ("nan", "NaN"),
    ("constant", "every voxel is 0"),
])
def test_brats_bad_values(tmp_path: Path, problem: str, match: str) -> None:
    arrays = brats_arrays(0)
    if problem == "nan":
        arrays["t2"][8, 8, 4] = np.nan
    else:
        arrays["t2"][:] = 0
    case_dir = write_case(tmp_path / "BraTS2021_00000", arrays, OLD_SUFFIXES)
    with pytest.raises(DataError, match=match) as excinfo:
        load_brats_case(find_brats_cases(tmp_path)[0])
    assert_one_line_naming(excinfo, case_dir / "BraTS2021_00000_t2.nii.gz")


def test_brats_unexpected_label(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path / "BraTS2021_00000", brats_arrays(0, labels=(1, 5)),
                          OLD_SUFFIXES)
    with pytest.raises(DataError, match=r"unexpected labels \[5\]") as excinfo:
        load_brats_case(find_brats_cases(tmp_path)[0])
    assert_one_line_naming(excinfo, case_dir / "BraTS2021_00000_seg.nii.gz")
