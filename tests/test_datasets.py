"""The dataset registry: a dataset is known through its spec, registered in one place."""

import pytest

from pggan_core import datasets
from pggan_core.config import load_config
from pggan_core.datasets import DatasetSpec, dataset_ids, dataset_spec, register_dataset
from pggan_core.errors import ConfigError


@pytest.fixture
def registry_as_it_was():
    saved = dict(datasets.DATASETS)
    yield
    datasets.DATASETS.clear()
    datasets.DATASETS.update(saved)


def test_the_papers_datasets_are_registered():
    assert dataset_ids()[:2] == ("rop", "brats")
    rop, brats = dataset_spec("rop"), dataset_spec("brats")
    assert rop.label_channels == ("vessel",) and rop.export_formats[0] == "png"
    assert brats.image_channels == 4 and len(brats.label_channels) == 3
    with pytest.raises(ConfigError, match="unknown dataset 'chest'.*rop, brats"):
        dataset_spec("chest")


def test_a_registered_dataset_is_one_the_config_accepts(registry_as_it_was):
    with pytest.raises(ConfigError, match="unknown dataset 'toy'"):
        load_config("smoke", "toy")
    register_dataset(DatasetSpec(id="toy", title="Toy squares", short="Toy",
                                 channels=("grey", "square"), image_channels=1,
                                 items=("image", "images"), export_formats=("npy",)))
    config = load_config("smoke", "toy")  # the profile's common section: no toy section needed
    assert config.data.dataset == "toy" and config.schedule.max_resolution == 16
    # what the toy spec leaves out is refused by name, not by a crash deep inside
    from pggan_core.data.prepare import example
    from pggan_core.segmentation.tasks import segmentation_task

    with pytest.raises(ConfigError, match="'toy' names no segmentation task"):
        segmentation_task("toy")
    with pytest.raises(ConfigError, match="'toy' names no raw example"):
        example("toy")
    with pytest.raises(ConfigError, match="image_channels=3 must be between 1 and its 2"):
        register_dataset(DatasetSpec(id="bad", title="", short="", channels=("a", "b"),
                                     image_channels=3, items=("", ""), export_formats=()))


def toy_samples(config, source, n_images, workers, progress):
    """Grey images holding one bright square, and the square's mask as the label channel."""
    import numpy as np

    data = config.data
    n, size = n_images or data.n_images, data.resolution
    rng = np.random.default_rng(data.seed)

    def generate():
        for i in range(n):
            image = np.full((2, size, size), -1.0, np.float32)
            image[0] = rng.uniform(-0.9, -0.5, (size, size))
            x, y = rng.integers(0, size // 2, 2)
            image[:, y:y + size // 3, x:x + size // 3] = 0.8
            yield image, {"id": f"toy-{i:04d}", "split": "heldout" if i >= n - 3 else "train",
                          "seed": i}

    return generate(), n, {}


@pytest.mark.slow
def test_a_dataset_registered_here_runs_through_every_command(tmp_path, monkeypatch,
                                                               registry_as_it_was):
    import json

    import numpy as np

    from pggan_core.cli import main

    register_dataset(DatasetSpec(id="toy", title="Toy squares", short="Toy",
                                 channels=("grey", "square"), image_channels=1,
                                 items=("image", "images"), export_formats=("npy",),
                                 samples=toy_samples))
    monkeypatch.setenv("PGGAN_HOME", str(tmp_path))
    data, run, samples = tmp_path / "toy-data", tmp_path / "toy-run", tmp_path / "samples"
    smoke = ["--profile", "smoke"]
    assert main(["data", "prepare", "--dataset", "toy", *smoke, "--n", "16",
                 "--out", str(data)]) == 0
    assert main(["train", "--data", str(data), "--out", str(run), *smoke]) == 0
    assert main(["evaluate", "--run", str(run)]) == 0
    assert main(["encode", "--run", str(run)]) == 0
    assert main(["generate", "--run", str(run), "--n", "4", "--out", str(samples)]) == 0

    info = json.loads((run / "run.json").read_text())
    assert info["dataset"] == "toy" and info["channels"] == ["grey", "square"]
    assert info["finished"] is True
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"] == "toy" and np.isfinite(metrics["swd_mean"])
    assert "vessel_agreement" not in metrics["metrics"]  # a fundus-only metric
    assert (run / "encoder.pt").is_file() and (run / "latents.npz").is_file()
    generated = np.load(samples / "generated.npy")
    assert generated.shape == (4, 2, 16, 16)
    assert (samples / "grid.png").is_file()


def test_the_latent_label_rules_say_what_the_code_reads():
    from pggan_core.latent.probes import TUMOUR_MIN_FRACTION, latent_label

    assert f">= {TUMOUR_MIN_FRACTION:.2%} of the image" in latent_label("brats").rule
    assert latent_label("rop").goal == 0.90 and latent_label("brats").group == "subject"


def test_a_dataset_without_a_latent_label_says_so(registry_as_it_was):
    from pggan_core.errors import DataError
    from pggan_core.latent.space import fold_groups

    register_dataset(DatasetSpec(id="toy", title="Toy", short="Toy", channels=("grey",),
                                 image_channels=1, items=("image", "images"),
                                 export_formats=("npy",)))
    with pytest.raises(DataError, match="'toy' names no label.*pggan latent"):
        fold_groups("toy", None)
