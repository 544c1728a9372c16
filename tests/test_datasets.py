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
    with pytest.raises(ConfigError, match="image_channels=3 must be between 1 and its 2"):
        register_dataset(DatasetSpec(id="bad", title="", short="", channels=("a", "b"),
                                     image_channels=3, items=("", ""), export_formats=()))
