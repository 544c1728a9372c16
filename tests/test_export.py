"""``pggan generate --format``: files other tools read back as the arrays the GAN drew."""

from __future__ import annotations

import csv

import cv2
import nibabel as nib
import numpy as np
import pytest
import torch

from pggan_core.cli import main
from pggan_core.config import load_config
from pggan_core.data.loaders import find_brats_cases, load_brats_case
from pggan_core.errors import ConfigError
from pggan_core.export import (
    brats_volumes,
    fundus_files,
    seeded_latents,
    voxel_affine,
    write_samples,
)
from pggan_core.generate import images_from_latents
from pggan_core.training.networks import Generator


def untrained(dataset: str, channels: int, resolution: int = 16):
    """A generator with random weights and the info ``checkpoint.load_generator`` returns."""
    config = load_config("smoke", dataset, {"model": {"latent_dim": 8}})
    torch.manual_seed(0)
    G = Generator(config.model, channels, resolution).eval()
    return G, {"config": config, "resolution": resolution, "alpha": 1.0,
               "channels": list(range(channels))}


def drawn(G, info, n: int, seed: int) -> np.ndarray:
    z = seeded_latents(n, info["config"].model.latent_dim, seed)
    return np.clip(images_from_latents(G, z, info["resolution"]), -1, 1)


def read_manifest(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_fundus_pngs_read_back_as_the_generated_pictures(tmp_path):
    G, info = untrained("rop", 4)
    manifest = write_samples(G, info, tmp_path / "run", tmp_path / "out", n=3, seed=5)
    rows = read_manifest(manifest)
    assert [int(r["latent_seed"]) for r in rows] == [5, 6, 7]
    assert {"image", "vessels", "resolution", "run", "commit"} <= set(rows[0])
    for row, image in zip(rows, drawn(G, info, 3, 5), strict=True):
        expected = fundus_files(image)
        rgb = cv2.imread(str(tmp_path / "out" / row["image"]), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(rgb[..., ::-1], expected["image"])  # OpenCV reads BGR
        grey = cv2.imread(str(tmp_path / "out" / row["vessels"]), cv2.IMREAD_UNCHANGED)
        assert grey.shape == (16, 16) and grey.dtype == np.uint8
        np.testing.assert_array_equal(grey, expected["vessels"])
    assert (tmp_path / "out" / "grid.png").is_file()


def test_brats_nifti_has_brats_names_labels_and_an_affine(tmp_path):
    G, info = untrained("brats", 7)
    manifest = write_samples(G, info, tmp_path / "run", tmp_path / "out", n=2, seed=0)
    rows = read_manifest(manifest)
    expected = [brats_volumes(image, info["config"].data.z_clip)
                for image in drawn(G, info, 2, 0)]
    affine = voxel_affine(16, info["config"].data.pad_to)
    for row, volumes in zip(rows, expected, strict=True):
        for name in ("t1", "t1ce", "t2", "flair", "seg"):
            path = tmp_path / "out" / row[name]
            assert path.name == f"synth_{int(row['sample']):04d}_{name}.nii.gz"
            nifti = nib.load(path)
            assert nifti.shape == (16, 16, 1)
            np.testing.assert_allclose(nifti.affine, affine)
            np.testing.assert_array_equal(np.asarray(nifti.dataobj), volumes[name])
        seg = np.asarray(nib.load(tmp_path / "out" / row["seg"]).dataobj)
        assert seg.dtype == np.uint8 and set(np.unique(seg)) <= {0, 1, 2, 4}
    # MONAI reads them as a BraTS case too: channel first, RAS, the same voxels
    from monai.transforms import Compose, EnsureChannelFirst, LoadImage, Orientation

    read = Compose([LoadImage(image_only=True), EnsureChannelFirst(),
                    Orientation(axcodes="RAS", labels=None)])
    flair = read(str(tmp_path / "out" / rows[0]["flair"]))
    assert tuple(flair.shape) == (1, 16, 16, 1)
    np.testing.assert_array_equal(np.asarray(flair)[0], expected[0]["flair"])
    # the project's own BraTS loader finds and reads the cases as it reads a download
    cases = find_brats_cases(tmp_path / "out")
    assert [c.case_dir.name for c in cases] == ["synth_0000", "synth_0001"]
    volume = load_brats_case(cases[0])
    assert volume.modalities.shape == (4, 16, 16, 1)
    np.testing.assert_array_equal(volume.seg, expected[0]["seg"])


def test_brats_labels_follow_the_most_confident_map():
    image = -np.ones((7, 2, 2), np.float32)
    image[:4] = 0.5  # brain everywhere
    image[4, 0, 0] = 1.0  # label 1 only
    image[5, 0, 1], image[6, 0, 1] = 0.4, 0.9  # 2 and 4 both: 4 is more confident
    image[3, 1, 1] = image[0, 1, 1] = image[1, 1, 1] = image[2, 1, 1] = -1.0  # not brain
    volumes = brats_volumes(image, z_clip=4.0)
    seg = volumes["seg"][:, :, 0][:, ::-1].T  # back from RAS to the display orientation
    np.testing.assert_array_equal(seg, [[1, 4], [0, 0]])
    flair = volumes["flair"][:, :, 0][:, ::-1].T
    np.testing.assert_array_equal(flair, [[2.0, 2.0], [2.0, 0.0]])  # z-scores, 0 outside


def test_one_sample_regenerates_alone():
    assert np.array_equal(seeded_latents(3, 8, 10)[2], seeded_latents(1, 8, 12)[0])


def test_a_format_for_the_other_dataset_is_refused(tmp_path):
    G, info = untrained("rop", 4)
    with pytest.raises(ConfigError, match="--format nifti is not written for rop runs.*png or npy"):
        write_samples(G, info, tmp_path / "run", tmp_path / "out", n=1, fmt="nifti")


@pytest.mark.slow
def test_cli_generate_writes_png_by_default_for_a_fundus_run(tiny_run, tmp_path):
    assert main(["generate", "--run", str(tiny_run), "--n", "2", "--out",
                 str(tmp_path / "gen")]) == 0
    rows = read_manifest(tmp_path / "gen" / "manifest.csv")
    assert [row["image"] for row in rows] == ["sample_0000_image.png", "sample_0001_image.png"]
    assert main(["generate", "--run", str(tiny_run), "--n", "2", "--format", "npy",
                 "--out", str(tmp_path / "npy")]) == 0
    assert np.load(tmp_path / "npy" / "generated.npy").shape[0] == 2
