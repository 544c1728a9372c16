"""The configuration system: profiles, overrides, and errors that name the key."""

import pytest
import yaml

from pggan_core.config import PROFILES, config_from_dict, load_config
from pggan_core.errors import ConfigError


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("dataset", ["rop", "brats"])
def test_every_profile_loads_for_both_datasets(profile, dataset):
    config = load_config(profile, dataset)
    assert config.profile == profile
    assert config.data.dataset == dataset


def test_paper_profile_holds_the_papers_numbers():
    rop, brats = load_config("paper", "rop"), load_config("paper", "brats")
    assert rop.model.latent_dim == 128
    assert rop.model.feature_maps == {4: 128, 8: 128, 16: 128, 32: 128, 64: 128, 128: 128,
                                      256: 64, 512: 16}
    assert rop.schedule.fade_iterations == rop.schedule.stable_iterations == 20000
    assert rop.schedule.batch_size[256] == 16 and rop.schedule.batch_size[512] == 8
    assert rop.schedule.max_resolution == 512 and brats.schedule.max_resolution == 256
    assert rop.train.gp_lambda == 10.0 and rop.train.drift == 0.001
    assert rop.encoder.iterations == 20000
    assert rop.vessels.patch == 48 and rop.vessels.stride == 8
    assert rop.data.n_images == 5550


def test_overrides_apply_and_round_trip_through_yaml():
    config = load_config("smoke", "rop", {"data": {"n_images": 7}, "train": {"seed": 3}})
    assert config.data.n_images == 7 and config.train.seed == 3
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict())))
    assert again == config


@pytest.mark.parametrize(("overrides", "named"), [
    ({"data": {"n_imagez": 3}}, "data.n_imagez"),
    ({"trian": {"lr": 1.0}}, "trian"),
    ({"train": {"lr": "fast"}}, "train.lr"),
    ({"train": {"compile": "yes"}}, "train.compile"),
    ({"data": {"resolution": 100}}, "data.resolution"),
    ({"data": {"resolution": 1024}}, "data.resolution"),
    ({"model": {"variant": "mine"}}, "model.variant"),
    ({"train": {"lr": float("nan")}}, "train.lr"),
])
def test_bad_keys_and_values_are_errors_naming_the_key(overrides, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config("smoke", "rop", overrides)


def test_unknown_profile_and_dataset():
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        load_config("huge", "rop")
    with pytest.raises(ConfigError, match="unknown dataset 'ct'"):
        load_config("smoke", "ct")


def test_a_profile_file_with_an_unknown_key_is_refused(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("common:\n  schedule:\n    fade_iters: 5\n")
    with pytest.raises(ConfigError, match="schedule.fade_iters"):
        load_config(str(path), "rop")
