"""The prepared-dataset store: pyramid, manifest, and all-or-nothing writes."""

import numpy as np
import pytest

from pggan_core.data.store import DatasetWriter, PreparedDataset, box_downsample, to_float
from pggan_core.errors import DataError


def _images(n, channels=4, res=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, channels, res, res)).astype(np.float32)


def test_written_dataset_reads_back_with_a_box_filtered_pyramid(tmp_path):
    images = _images(5)
    with DatasetWriter(tmp_path / "ds", "rop", 5, 16) as w:
        for i, img in enumerate(images):
            w.add(i, img, {"split": "train" if i < 4 else "heldout", "laterality": "OD"})
    ds = PreparedDataset(tmp_path / "ds")
    assert ds.resolutions == [4, 8, 16] and len(ds) == 5
    assert ds.images(16).shape == (5, 4, 16, 16) and ds.images(16).dtype == np.uint8
    np.testing.assert_allclose(ds.batch([0, 1], 16), images[:2], atol=1 / 127.5)
    # each level is filtered from the float image, so it matches a float box filter
    np.testing.assert_allclose(ds.batch([3], 4)[0], box_downsample(box_downsample(images[3])),
                               atol=1 / 127.5)
    # an unsorted batch keeps the caller's order
    np.testing.assert_array_equal(ds.batch([4, 0], 8), to_float(ds.images(8)[[4, 0]]))
    assert list(ds.split_indices("heldout")) == [4]
    assert set(ds.manifest.columns) >= {"index", "split", "laterality", "preprocessing_version"}


def test_ground_truth_vessels_come_from_the_mask_channel_or_the_kept_masks(tmp_path):
    images = _images(3)
    masks = (np.random.default_rng(2).random((3, 16, 16)) < 0.2).astype(np.float32)
    # a U-Net vessel channel with the masks kept beside it
    with DatasetWriter(tmp_path / "unet", "rop", 3, 16, vessel_truth=True,
                       info={"vessel_channel": "unet", "vessel_truth": "phantom"}) as w:
        for i, img in enumerate(images):
            w.add(i, img, {"split": "train"}, vessel_truth=masks[i])
    unet = PreparedDataset(tmp_path / "unet")
    np.testing.assert_array_equal(unet.vessel_truth([2, 0], 16), masks[[2, 0]])
    np.testing.assert_allclose(unet.vessel_truth([1], 8)[0], box_downsample(masks[1]),
                               atol=1 / 255)
    # the vessel channel is the mask: it is the ground truth
    with DatasetWriter(tmp_path / "mask", "rop", 3, 16, info={"vessel_channel": "mask"}) as w:
        for i, img in enumerate(images):
            w.add(i, np.concatenate([img[:3], masks[i][None] * 2 - 1]), {"split": "train"})
    np.testing.assert_allclose(PreparedDataset(tmp_path / "mask").vessel_truth([1], 16)[0],
                               masks[1], atol=1 / 255)
    # no masks at all (a real folder whose vessel channel is the U-Net's): none, not a guess
    with DatasetWriter(tmp_path / "none", "rop", 3, 16, info={"vessel_channel": "unet"}) as w:
        for i, img in enumerate(images):
            w.add(i, img, {"split": "train"})
    assert PreparedDataset(tmp_path / "none").vessel_truth([0], 16) is None
    with pytest.raises(DataError, match="ground-truth vessel mask"), \
            DatasetWriter(tmp_path / "bad", "rop", 1, 16, vessel_truth=True) as w:
        w.add(0, images[0], {"split": "train"})


def test_an_interrupted_write_leaves_the_old_dataset_untouched(tmp_path):
    out = tmp_path / "ds"
    with DatasetWriter(out, "rop", 2, 8) as w:
        for i, img in enumerate(_images(2, res=8)):
            w.add(i, img, {"split": "train"})
    before = (out / "res_008.npy").read_bytes()
    with pytest.raises(KeyboardInterrupt), DatasetWriter(out, "rop", 3, 8) as w:
        w.add(0, _images(1, res=8, seed=1)[0], {"split": "train"})
        raise KeyboardInterrupt
    assert (out / "res_008.npy").read_bytes() == before
    assert len(PreparedDataset(out)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temp folder left


def test_incomplete_nan_and_misshapen_images_are_refused(tmp_path):
    from pggan_core.errors import DataError

    with pytest.raises(DataError, match="never written"), \
            DatasetWriter(tmp_path / "a", "rop", 2, 8) as w:
        w.add(0, _images(1, res=8)[0], {"split": "train"})
    bad = _images(1, res=8)[0]
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"), DatasetWriter(tmp_path / "b", "rop", 1, 8) as w:
        w.add(0, bad, {"split": "train", "source_file": "x.png"})
    with pytest.raises(DataError, match="expected"), \
            DatasetWriter(tmp_path / "c", "rop", 1, 8) as w:
        w.add(0, _images(1, channels=3, res=8)[0], {"split": "train"})
    assert not any(tmp_path.iterdir())


def test_missing_dataset_names_the_command_that_makes_it(tmp_path):
    from pggan_core.errors import DataError

    with pytest.raises(DataError, match="pggan data prepare"):
        PreparedDataset(tmp_path / "nothing")
