"""``pggan data prepare``: phantoms and real folders to a prepared dataset, and bad input."""

import numpy as np
import pytest

from pggan_core.cli import main
from pggan_core.config import load_config
from pggan_core.data.prepare import ensure_prepared, prepare_dataset
from pggan_core.data.store import PreparedDataset
from pggan_core.datasets import dataset_spec


def _rop_config(**data):
    return load_config("smoke", "rop", {"data": {"n_images": 6, "resolution": 32,
                                                 "vessel_channel": "mask", **data}})


def test_rop_phantom_dataset_is_deterministic_and_labelled(tmp_path):
    a = PreparedDataset(prepare_dataset(_rop_config(), tmp_path / "a", progress=False))
    b = PreparedDataset(prepare_dataset(_rop_config(), tmp_path / "b", progress=False))
    assert a.channels == dataset_spec("rop").channels and a.resolutions == [4, 8, 16, 32]
    np.testing.assert_array_equal(a.images(32), b.images(32))
    m = a.manifest
    assert set(m["laterality"]) <= {"OD", "OS"}
    assert set(m["plus_severity"]) <= {"normal", "pre-plus", "plus"}
    assert m["split"].tolist() == ["train"] * 5 + ["heldout"]  # 10 % of 6, rounded
    assert m["source_file"].str.startswith("phantom:").all()
    # the vessel channel is a real map, not a constant
    vessel = a.batch(range(6), 32)[:, 3]
    assert vessel.min() < -0.9 and vessel.max() > 0.0
    other = prepare_dataset(_rop_config(seed=1), tmp_path / "c", progress=False)
    assert not np.array_equal(PreparedDataset(other).images(32), a.images(32))


def test_a_folder_named_in_the_config_is_prepared_once(drive_folder, tmp_path, capsys):
    """``data.source`` set in the configuration (``--set data.source=DIR``) is the folder
    prepared: asked again for the same, the prepared dataset is reused, not made anew."""
    config = _rop_config(source=str(drive_folder), n_images=12)
    first = ensure_prepared(config, tmp_path / "real", progress=False)
    made = (first.path / "dataset.json").stat().st_mtime_ns
    again = ensure_prepared(config, tmp_path / "real", progress=False)
    assert (again.path / "dataset.json").stat().st_mtime_ns == made
    assert "other settings" not in capsys.readouterr().out
    assert again.meta["source"] == str(drive_folder.resolve())


@pytest.mark.slow
def test_a_unet_vessel_channel_keeps_the_phantom_masks_as_ground_truth(tmp_path, monkeypatch):
    """The paper's way (vessel channel = the U-Net's map): the exact masks are kept beside it,
    so the vessel-agreement reference is against ground truth, never the U-Net itself."""
    from pggan_core.data.fundus_phantom import render_fundus
    from pggan_core.data.store import box_downsample

    monkeypatch.setenv("PGGAN_HOME", str(tmp_path))  # its own home: its U-Net is its own
    unet = PreparedDataset(prepare_dataset(_rop_config(vessel_channel="unet"), tmp_path / "u",
                                           progress=False, workers=1))
    mask = PreparedDataset(prepare_dataset(_rop_config(), tmp_path / "m", progress=False,
                                           workers=1))
    assert (unet.meta["vessel_channel"], unet.meta["vessel_truth"]) == ("unet", "phantom")
    assert (mask.meta["vessel_channel"], mask.meta["vessel_truth"]) == ("mask", "phantom")
    truth = render_fundus(int(unet.manifest["seed"][5]), 512).vessels.astype(np.float32)
    for _ in range(4):  # 512 -> 32 px, as the pyramid
        truth = box_downsample(truth)
    np.testing.assert_allclose(unet.vessel_truth([5], 32)[0], truth, atol=1 / 255)
    np.testing.assert_allclose(mask.vessel_truth([5], 32)[0], truth, atol=1 / 127)
    # the U-Net channel is the segmenter's map, not the mask
    assert not np.allclose((unet.batch([5], 32)[0, 3] + 1) / 2, truth, atol=0.05)


@pytest.mark.slow
def test_the_unet_channel_is_the_map_of_the_photograph_the_gan_learns(tmp_path, monkeypatch):
    """The paper's channel: the U-Net's map of each photograph at the top of the GAN's schedule
    (16 px on smoke, below the stored 32), enlarged to the U-Net's scale to be segmented, as
    generated photographs are; levels above repeat it, levels below filter it."""
    from pggan_core.data.fundus_phantom import render_fundus
    from pggan_core.data.preprocess import fields_of_view, fundus_channels
    from pggan_core.data.store import box_downsample
    from pggan_core.segmentation.vessels import load_vessel_unet

    monkeypatch.setenv("PGGAN_HOME", str(tmp_path))
    config = _rop_config(vessel_channel="unet")
    assert config.schedule.max_resolution == 16 < config.data.resolution
    data = PreparedDataset(prepare_dataset(config, tmp_path / "u", progress=False, workers=1))
    assert data.meta["vessel_map_resolution"] == 16
    # the photographs at 16 px as the pyramid filters them from 512 px, before storage rounds
    photographs = []
    for seed in data.manifest["seed"]:
        image = fundus_channels(render_fundus(int(seed), 512).rgb, np.zeros((512, 512)))
        for _ in range(5):
            image = box_downsample(image)
        photographs.append(image)
    photographs = np.stack(photographs)
    segmenter = load_vessel_unet(tmp_path / "runs" / "vessels" / "smoke" / "vessel_unet.pt")
    expected = segmenter.segment_images(photographs, config.vessels.train_resolution,
                                        fields_of_view(photographs, config.data))
    stored = (data.batch(range(6), 16)[:, 3] + 1) / 2
    np.testing.assert_allclose(stored, expected, atol=0.5 / 127.5 + 1e-6)
    top = data.batch(range(6), 32)[:, 3]
    np.testing.assert_array_equal(top[:, ::2, ::2], top[:, 1::2, 1::2])  # repeated, 2 x 2
    np.testing.assert_allclose(data.batch(range(6), 8)[:, 3],
                               box_downsample(data.batch(range(6), 16)[:, 3]), atol=1 / 127)


@pytest.mark.slow  # renders three whole phantom brains: seconds, though nothing is trained
def test_brats_phantom_dataset_holds_out_whole_subjects(tmp_path):
    config = load_config("smoke", "brats", {"data": {"n_images": 6, "resolution": 32,
                                                     "slices_per_subject": 2,
                                                     "heldout_fraction": 0.34}})
    ds = PreparedDataset(prepare_dataset(config, tmp_path / "b", progress=False, workers=1))
    assert ds.channels == dataset_spec("brats").channels and len(ds) == 6
    m = ds.manifest
    assert m["subject"].nunique() == 3
    heldout = set(m.loc[m["split"] == "heldout", "subject"])
    train = set(m.loc[m["split"] == "train", "subject"])
    assert heldout and not heldout & train
    assert {"slice_index", "tumour_present", "grade", "slice_position"} <= set(m.columns)
    images = ds.batch(range(6), 32)
    assert images.min() >= -1 and images.max() <= 1
    # label channels are binary maps in {-1, +1} (up to the box filter at the edges)
    assert np.isin(ds.images(32)[:, 4:], np.arange(256)).all()


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "ct"], "unknown dataset 'ct'"),
    (["--dataset", "rop", "--resolution", "100"], "--resolution=100"),
    (["--dataset", "rop", "--resolution", "1024"], "--resolution=1024"),
    (["--dataset", "brats", "--resolution", "512"], "--resolution 512"),
])
def test_bad_arguments_fail_in_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["data", "prepare", *args, "--profile", "smoke", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_cli_prepares_a_phantom_dataset(tmp_path, capsys):
    out = tmp_path / "rop"
    assert main(["data", "prepare", "--dataset", "rop", "--profile", "smoke", "--n", "4",
                 "--resolution", "16", "--seed", "3", "--out", str(out)]) == 0
    ds = PreparedDataset(out)
    assert len(ds) == 4 and ds.max_resolution == 16
    assert ds.manifest["seed"].tolist() == [3_000_000 + i for i in range(4)]
