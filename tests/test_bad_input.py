"""Bad real-data input, a wider net (issue 11, item 4).

Each kind of input is either handled (and the output checked) or refused with one
``DataError`` line that names the file and the fix. Refusals go through ``prepare_dataset``
after a good image or case, so part of the new dataset has been written when the bad one is
met: the refusal must leave no output folder, an existing prepared dataset byte for byte as it
was, and no temporary folder beside it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_loaders import (
    OLD_SUFFIXES,
    W,
    assert_one_line_naming,
    brats_arrays,
    expected_mask,
    fundus_rgb,
    vessel_mask,
    write_case,
    write_image,
    write_volume,
)

from pggan_core.config import load_config
from pggan_core.data.loaders import (
    find_brats_cases,
    find_fundus_images,
    load_brats_case,
    load_fundus,
)
from pggan_core.data.prepare import prepare_dataset
from pggan_core.data.store import DatasetWriter, PreparedDataset
from pggan_core.datasets import dataset_spec
from pggan_core.errors import DataError
from pggan_core.settings import Config

RESOLUTION = 32


def reads_mode_000() -> bool:
    """Whether this process can read a file with permissions 000 (root can)."""
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_bytes(b"")
        probe.chmod(0)
        try:
            probe.open("rb").close()
        except PermissionError:
            return False
        return True


NEEDS_PERMISSIONS = pytest.mark.skipif(reads_mode_000(),
                                       reason="this process (root) reads files with mode 000")


def config(dataset: str) -> Config:
    """Smoke settings at 32 px; ROP uses the manual masks (no vessel U-Net to train) and BraTS
    takes 4 slices per case (the test volumes have 6 with brain)."""
    data = ({"vessel_channel": "mask"} if dataset == "rop" else {"slices_per_subject": 4})
    return load_config("smoke", dataset, {"data": {"resolution": RESOLUTION, **data}})


def prepare(dataset: str, source: Path, out: Path) -> PreparedDataset:
    """``prepare_dataset`` of a real folder, in this process (workers=1), without a bar."""
    return PreparedDataset(prepare_dataset(config(dataset), out, source=source, progress=False,
                                           workers=1))


# ----------------------------------------------------------------------------------------------
# Writers of good and bad input


def fundus(folder: Path, name: str, pixels: np.ndarray, seed: int = 0) -> Path:
    """A photograph ``folder/name`` and its vessel mask ``folder/vessels/name`` (same size)."""
    h, w = pixels.shape[:2]
    write_image(folder / "vessels" / name, vessel_mask(seed)[:h, :w])
    return write_image(folder / name, pixels)


def good_fundus(src: Path) -> None:
    """A good photograph named to sort first, so it is written before the bad one is read."""
    fundus(src, "a.png", fundus_rgb(0))


def bad_fundus(pixels: np.ndarray) -> Callable[[Path], list[Path]]:
    """A good photograph, then ``pixels`` as the bad one."""
    def build(src: Path) -> list[Path]:
        good_fundus(src)
        return [fundus(src, "b.png", pixels, seed=1)]
    return build


def grey(rgb: np.ndarray) -> np.ndarray:
    """One channel of a colour photograph, as a red-free image looks."""
    return rgb[:, :, 1]


def spoilt_fundus(spoil: Callable[[Path], None]) -> Callable[[Path], list[Path]]:
    """A good photograph, then a photograph file that ``spoil`` damages."""
    def build(src: Path) -> list[Path]:
        good_fundus(src)
        path = fundus(src, "b.png", fundus_rgb(1), seed=1)
        spoil(path)
        return [path]
    return build


def bad_case(spoil: Callable[[dict[str, np.ndarray]], str | None]) -> Callable[[Path], list[Path]]:
    """A good case, then a case whose arrays ``spoil`` edits; it returns the modality whose file
    the error must name (None: the case folder)."""
    def build(src: Path) -> list[Path]:
        write_case(src / "BraTS2021_00000", brats_arrays(0), OLD_SUFFIXES)
        arrays = brats_arrays(1)
        named = spoil(arrays)
        case_dir = write_case(src / "BraTS2021_00001", arrays, OLD_SUFFIXES)
        return [case_dir / f"BraTS2021_00001_{named}.nii.gz" if named else case_dir]
    return build


def spoilt_case(spoil: Callable[[Path], None], name: str = "t2") -> Callable[[Path], list[Path]]:
    """A good case, then a case whose ``name`` file ``spoil`` damages."""
    def build(src: Path) -> list[Path]:
        (path,) = bad_case(lambda arrays: name)(src)
        spoil(path)
        return [path]
    return build


def set_voxel(name: str, value: float) -> Callable[[dict[str, np.ndarray]], str]:
    """Set one voxel of volume ``name`` (made float so NaN fits) to ``value``."""
    def spoil(arrays: dict[str, np.ndarray]) -> str:
        arrays[name] = arrays[name].astype(np.float32)
        arrays[name][6, 6, 3] = value  # inside the brain and the tumour
        return name
    return spoil


def t1ce_one_slice_longer(arrays: dict[str, np.ndarray]) -> None:
    arrays["t1ce"] = np.concatenate([arrays["t1ce"], arrays["t1ce"][:, :, -1:]], axis=2)


def t1_two_volumes(arrays: dict[str, np.ndarray]) -> str:
    arrays["t1"] = np.stack([arrays["t1"], arrays["t1"]], axis=-1)
    return "t1"


def mixed_layouts(src: Path) -> list[Path]:
    """Fundus photographs and BraTS cases side by side under one folder."""
    good_fundus(src / "fundus")
    write_case(src / "brats" / "BraTS2021_00000", brats_arrays(0), OLD_SUFFIXES)
    return [src, src / "fundus" / "a.png", src / "brats" / "BraTS2021_00000" /
            "BraTS2021_00000_flair.nii.gz"]


def garbage(path: Path) -> None:
    path.write_bytes(b"garbage!" * 40)


def unreadable(path: Path) -> None:
    path.chmod(0)


# ----------------------------------------------------------------------------------------------
# Refused: one line naming the file, nothing written, an existing dataset untouched

REFUSED = [
    pytest.param("rop", bad_fundus(grey(fundus_rgb(1))), "grayscale", id="grey-png"),
    pytest.param("rop", bad_fundus(np.repeat(grey(fundus_rgb(1))[:, :, None], 3, axis=2)),
                 "grayscale", id="grey-saved-as-rgb"),
    pytest.param("rop", bad_fundus(fundus_rgb(1)[:24, :30]),
                 r"30x24 px, smaller than the 32 px.*--resolution 16 or less", id="too-small"),
    pytest.param("rop", spoilt_fundus(garbage), "not a readable image", id="garbage-png"),
    pytest.param("rop", spoilt_fundus(unreadable), "permission denied", id="unreadable-png",
                 marks=NEEDS_PERMISSIONS),
    pytest.param("rop", lambda src: [src], "folder is empty", id="empty-rop-source"),
    pytest.param("rop", mixed_layouts, "mixes two datasets' layouts", id="mixed-as-rop"),
    pytest.param("brats", bad_case(set_voxel("t2", np.nan)), "NaN or infinite", id="nan-voxel"),
    pytest.param("brats", bad_case(set_voxel("flair", np.inf)), "NaN or infinite",
                 id="inf-voxel"),
    pytest.param("brats", bad_case(set_voxel("seg", np.nan)), "NaN or infinite", id="nan-seg"),
    pytest.param("brats", bad_case(t1ce_one_slice_longer), r"shapes differ.*T1c \(16, 16, 9\)",
                 id="shapes-differ"),
    pytest.param("brats", bad_case(set_voxel("seg", 5)), r"unexpected labels \[5\]",
                 id="label-5"),
    pytest.param("brats", bad_case(set_voxel("seg", -1)), r"unexpected labels \[-1\]",
                 id="label-negative"),
    pytest.param("brats", bad_case(set_voxel("seg", 1.5)), "non-integer", id="label-1.5"),
    pytest.param("brats", bad_case(t1_two_volumes), r"is 4-D with shape \(16, 16, 8, 2\)",
                 id="4d-two-volumes"),
    pytest.param("brats", spoilt_case(garbage), "cannot read NIfTI", id="garbage-nifti"),
    pytest.param("brats", spoilt_case(unreadable), "permission denied", id="unreadable-nifti",
                 marks=NEEDS_PERMISSIONS),
    pytest.param("brats", lambda src: [src], "folder is empty", id="empty-brats-source"),
    pytest.param("brats", mixed_layouts, "mixes two datasets' layouts", id="mixed-as-brats"),
]


def existing_dataset(out: Path, dataset: str) -> dict[str, bytes]:
    """Write a one-image prepared dataset at ``out``; return its files' bytes."""
    with DatasetWriter(out, dataset, 1, RESOLUTION) as writer:
        shape = (len(dataset_spec(dataset).channels), RESOLUTION, RESOLUTION)
        writer.add(0, np.zeros(shape, np.float32), {"id": "kept", "split": "train"})
    return snapshot(out)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("dataset, build, match", REFUSED)
def test_refused_in_one_line_writing_nothing(tmp_path: Path, dataset: str,
                                             build: Callable[[Path], list[Path]],
                                             match: str) -> None:
    src = tmp_path / "source"
    src.mkdir()
    named = build(src)
    new, old = tmp_path / "new" / "out", tmp_path / "old" / "out"
    new.parent.mkdir()
    before = existing_dataset(old, dataset)
    for out in (new, old):
        with pytest.raises(DataError, match=match) as excinfo:
            prepare(dataset, src, out)
        for path in named:
            assert_one_line_naming(excinfo, path)
    assert not new.exists() and snapshot(old) == before
    # and no temporary folder left beside either
    assert [p.name for p in new.parent.iterdir()] == []
    assert [p.name for p in old.parent.iterdir()] == ["out"]


# ----------------------------------------------------------------------------------------------
# Handled: the output is checked


def test_16_bit_png_is_scaled_by_its_bit_depth(tmp_path: Path) -> None:
    rgb16 = fundus_rgb(1).astype(np.uint16) * 257  # 8-bit values stretched to 16 bits
    rgb16[10, 10] = (65535, 60000, 1000)  # above 255 and near the top: neither clipped nor wrapped
    (record,) = find_fundus_images(write_image(tmp_path / "deep.png", rgb16))
    image = load_fundus(record, W)  # 40 px: the 40-wide image is only padded, not resampled
    np.testing.assert_allclose(image.rgb[2:38], rgb16 / 65535, atol=1e-6)
    np.testing.assert_allclose(image.rgb[12, 10], (1.0, 60000 / 65535, 1000 / 65535), atol=1e-6)
    assert 0 < image.rgb.max() <= 1


def test_rgba_is_composited_over_black(tmp_path: Path) -> None:
    rgb = fundus_rgb(2)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:8, :, :3], rgba[:8, :, 3] = 255, 0  # a transparent white surround ...
    rgba[8, :, 3] = 51  # ... and one row at 20 % opacity
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut_out.png")  # (write_image flips RGBA)
    (record,) = find_fundus_images(tmp_path / "cut_out.png")
    image = load_fundus(record, W)
    rows = slice(2, 38)  # the 36 rows, padded to 40
    expected = rgb / 255
    expected[:8] = 0
    expected[8] = np.rint(rgb[8] * 0.2) / 255
    np.testing.assert_allclose(image.rgb[rows], expected, atol=1e-6)
    assert not image.fov[rows][:8].any()  # the white under the transparency is not the eye


def test_non_square_image_is_padded_centred_with_its_mask(tmp_path: Path) -> None:
    # 35 wide, 40 high: padded with black to 40 x 40, 2 columns left and 3 right (no cropping)
    rgb = fundus_rgb(3).transpose(1, 0, 2)[:, :35].copy()
    mask = vessel_mask(3).T[:, :35].copy()
    write_image(tmp_path / "tall.png", rgb)
    write_image(tmp_path / "vessels" / "tall.png", mask)
    image = load_fundus(find_fundus_images(tmp_path)[0], W)
    assert image.rgb.shape == (W, W, 3)
    np.testing.assert_allclose(image.rgb[:, 2:37], rgb / 255, atol=1e-6)
    assert not image.rgb[:, :2].any() and not image.rgb[:, 37:].any()
    assert not image.fov[:, :2].any() and not image.fov[:, 37:].any()
    np.testing.assert_array_equal(image.vessels, expected_mask(mask, W))


def test_4d_nifti_with_a_trailing_singleton_axis_is_squeezed(tmp_path: Path) -> None:
    arrays = brats_arrays(4)
    case_dir = write_case(tmp_path / "BraTS2021_00004", arrays, OLD_SUFFIXES)
    write_volume(case_dir / "BraTS2021_00004_t1.nii.gz", arrays["t1"][..., None])
    volume = load_brats_case(find_brats_cases(tmp_path)[0])
    np.testing.assert_array_equal(volume.modalities[0], arrays["t1"])


@pytest.mark.parametrize("dataset", ["rop", "brats"])
def test_paths_with_spaces_and_non_ascii_prepare_as_ascii_ones(tmp_path: Path,
                                                               dataset: str) -> None:
    sources = [tmp_path / "plain", tmp_path / "my data" / "Überweisung ü"]
    for src in sources:
        if dataset == "rop":
            fundus(src, "Auge ü 1.png", fundus_rgb(5), seed=5)
            fundus(src, "Auge ü 2.png", fundus_rgb(6), seed=6)
        else:
            write_case(src / "Fall ü 1", brats_arrays(5), OLD_SUFFIXES)
    plain, spaced = (prepare(dataset, src, tmp_path / "out é" / src.name) for src in sources)
    assert len(spaced) == len(plain) > 0
    np.testing.assert_array_equal(spaced.images(RESOLUTION), plain.images(RESOLUTION))
    assert spaced.manifest["source_file"].str.startswith(str(sources[1])).all()
    assert spaced.manifest["id"].tolist() == plain.manifest["id"].tolist()
