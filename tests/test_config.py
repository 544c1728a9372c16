"""The configuration system: profiles, overrides, and errors that name the key."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from pggan_core import cli
from pggan_core.config import (
    PROFILES,
    PROFILES_DIR,
    config_from_dict,
    differing_keys,
    load_config,
    parse_set_items,
    same_config,
)
from pggan_core.errors import ConfigError

PRETRAINED = Path(__file__).resolve().parents[1] / "data" / "pretrained"


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
    ({"model": {"variant": "authors"}}, "model.variant"),  # removed: --overlay authors
    ({"model": {"kernel_size": 4}}, "model.kernel_size"),
    ({"model": {"equalized_lr": "no"}}, "model.equalized_lr"),
    ({"train": {"use_ema": 0}}, "train.use_ema"),
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


# every value Beers et al. (2018) or NVIDIA's PGGAN (Karras et al. 2018) fixes, by the
# paper.yaml section that must state it (a dataclass default is not a citation)
PAPER_KEYS = {
    "common": [
        "data.resolution", "data.vessel_channel", "data.gamma", "data.clahe_clip",
        "data.clahe_tiles",
        "vessels.patch", "vessels.stride", "vessels.n_train_images",
        "model.latent_dim", "model.feature_maps", "model.kernel_size", "model.equalized_lr",
        "model.mbstd_group",
        "schedule.start_resolution", "schedule.fade_iterations", "schedule.stable_iterations",
        "schedule.batch_size",
        "train.lr", "train.betas", "train.eps", "train.use_ema", "train.ema_beta",
        "train.gp_lambda", "train.drift", "train.d_steps_per_g_step",
        "encoder.iterations", "encoder.batch_size", "encoder.lr", "encoder.betas",
    ],
    "rop": ["data.n_images", "schedule.max_resolution"],
    "brats": ["data.resolution", "data.n_images", "schedule.max_resolution"],
}


def test_paper_yaml_states_every_value_the_paper_or_nvidia_fixes():
    raw = yaml.safe_load((PROFILES_DIR / "paper.yaml").read_text())
    missing = [f"{part}: {key}" for part, keys in PAPER_KEYS.items() for key in keys
               if key.split(".")[1] not in (raw.get(part) or {}).get(key.split(".")[0], {})]
    assert not missing, f"paper.yaml leaves these to dataclass defaults: {missing}"
    rop = load_config("paper", "rop")
    assert (rop.train.lr, rop.train.betas, rop.train.eps) == (1e-3, (0.0, 0.99), 1e-8)
    assert rop.train.use_ema and rop.train.ema_beta == 0.999
    assert (rop.model.kernel_size, rop.model.mbstd_group, rop.model.equalized_lr) == (3, 4, True)
    assert (rop.encoder.lr, rop.encoder.betas) == (rop.train.lr, rop.train.betas)


def test_a_profile_file_extends_a_builtin_profile(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: demo\ncommon:\n  train:\n    lr: 0.0005\n"
                    "brats:\n  data:\n    n_images: 40\n")
    for dataset in ("rop", "brats"):
        mine, demo = load_config(str(path), dataset), load_config("demo", dataset)
        assert mine.profile == "mine" and mine.train.lr == 0.0005
        n_images = 40 if dataset == "brats" else demo.data.n_images
        assert mine.data == dataclasses.replace(demo.data, n_images=n_images)
        assert (mine.model, mine.schedule, mine.encoder) == (demo.model, demo.schedule,
                                                              demo.encoder)
    # the base's dataset section sits below the file's common section
    path.write_text("extends: demo\ncommon:\n  data:\n    n_images: 30\n")
    assert load_config(str(path), "brats").data.n_images == 30


def test_extends_names_a_builtin_profile_or_is_refused_naming_the_file(tmp_path):
    # a profile of one's own starts from a built-in one (README); another file is no base
    (tmp_path / "base.yaml").write_text("extends: smoke\n")
    path = tmp_path / "mine.yaml"
    for base in ("huge", "base.yaml"):
        path.write_text(f"extends: {base}\n")
        with pytest.raises(ConfigError, match=rf"mine\.yaml: extends '{base}', which is not a "
                                              r"built-in profile; .* smoke, demo, paper"):
            load_config(str(path), "rop")
    # an overlay on a base would reset every layer below it
    with pytest.raises(ConfigError, match=r"base\.yaml: an overlay cannot use 'extends'"):
        load_config("demo", "rop", overlays=(str(tmp_path / "base.yaml"),))


def test_the_authors_overlay_sets_the_authors_code_values():
    demo, authors = load_config("demo", "rop"), load_config("demo", "rop", overlays=("authors",))
    assert authors.profile == "demo"
    assert (authors.model.kernel_size, authors.model.equalized_lr) == (5, False)
    assert (authors.train.lr, authors.train.use_ema) == (1e-4, False)
    assert authors.schedule == demo.schedule and authors.data == demo.data
    # overrides (--set) sit above overlays
    assert load_config("demo", "rop", {"train": {"lr": 0.002}}, ("authors",)).train.lr == 0.002
    with pytest.raises(ConfigError, match="unknown overlay 'nvidia'"):
        load_config("demo", "rop", overlays=("nvidia",))


def test_a_config_from_before_variant_was_removed_still_loads():
    saved = load_config("smoke", "rop").to_dict()
    for section, key in (("model", "equalized_lr"), ("train", "use_ema")):
        del saved[section][key]  # an old config.yaml has neither key ...
    nvidia = {**saved, "model": {**saved["model"], "variant": "nvidia"}}  # ... but this one
    assert config_from_dict(nvidia) == load_config("smoke", "rop")
    # only the default, which the shipped MRI runs record, is read: no run says another
    for variant in ("authors", "mine"):
        with pytest.raises(ConfigError, match=r"unknown config key model\.variant"):
            config_from_dict({**saved, "model": {**saved["model"], "variant": variant}})
    with pytest.raises(ConfigError, match="model: expected a mapping of keys, got 'junk'"):
        config_from_dict({**saved, "model": "junk"})


def test_differing_keys_names_each_changed_key_sorted():
    now = load_config("smoke", "rop").run_dict()
    assert differing_keys(now, now) == []
    saved = {**now, "profile": "mine", "train": {**now["train"], "lr": 1.0, "seed": 5},
             "data": {k: v for k, v in now["data"].items() if k != "gamma"}}
    assert differing_keys(saved, now) == ["data.gamma", "profile", "train.lr", "train.seed"]
    # a section saved without keys, or not as a mapping, differs in every key it has now
    assert differing_keys({**now, "eval": None}, now) == [f"eval.{k}" for k in sorted(now["eval"])]
    # a key only the saved one holds is no longer compared
    assert differing_keys({**now, "model": {**now["model"], "variant": "nvidia"}}, now) == []


@pytest.mark.parametrize("key", ["rop-seg", "rop-noseg", "brats-seg", "brats-noseg"])
def test_the_shipped_demo_runs_still_match_the_demo_profile(key):
    """A shipped run's config.yaml and manifest entry describe the profile as it is now; one
    exported before the authors' settings became explicit keys (the MRI pair) says
    ``variant: nvidia`` and lacks the new keys, and still matches."""
    config = load_config("demo", key.split("-")[0])
    saved = yaml.safe_load((PRETRAINED / "demo" / key / "config.yaml").read_text())
    assert saved["model"].get("variant", "nvidia") == "nvidia"
    # a run is its config without the study sections (STUDY_SECTIONS), which it predates
    assert config_from_dict(saved).run_dict() == config.run_dict() and same_config(saved, config)
    manifest = json.loads((PRETRAINED / "demo" / "manifest.json").read_text())
    assert config_from_dict(manifest["runs"][key]["config"]).run_dict() == config.run_dict()
    assert not same_config({**saved, "train": {**saved["train"], "lr": 1.0}}, config)
    assert not same_config({"model": "junk"}, config)


def test_parse_set_items():
    assert parse_set_items([]) == {}
    assert parse_set_items(["train.lr=3e-4", "train.use_ema=false", "model.kernel_size=5",
                            "train.lr=0.5", "data.source=null"]) == {
        "train": {"lr": 0.5, "use_ema": False}, "model": {"kernel_size": 5},
        "data": {"source": None}}
    nested = parse_set_items(["schedule.batch_size={4: 8, 8: 4}", "train.betas=[0.5, 0.9]"])
    assert nested == {"schedule": {"batch_size": {4: 8, 8: 4}}, "train": {"betas": [0.5, 0.9]}}
    assert load_config("smoke", "rop", parse_set_items(["train.lr=3e-4"])).train.lr == 3e-4


@pytest.mark.parametrize(("item", "message"), [
    ("train.lr", r"--set 'train\.lr': expected SECTION\.KEY=VALUE"),
    ("lr=0.1", r"--set 'lr=0\.1': expected SECTION\.KEY=VALUE"),
    ("schedule.batch_size.4=8", "expected SECTION.KEY=VALUE"),
    ("trian.lr=0.1", r"--set 'trian\.lr=0\.1': unknown config section 'trian'"),
    ("train.lrr=0.1", r"--set 'train\.lrr=0\.1': unknown config key train\.lrr; known keys"),
    ("train.lr=fast", r"--set 'train\.lr=fast': expected a number"),
    ("train.lr=[1, 2", r"--set 'train\.lr=\[1, 2': the value is not valid YAML"),
    ("model.variant=authors", r"'model\.variant=authors': unknown config key model\.variant"),
    ("data.dataset=brats", "chosen by --dataset"),
])
def test_bad_set_items_are_errors_naming_the_item(item, message):
    with pytest.raises(ConfigError, match=message):
        parse_set_items([item])


def test_cli_config_show_prints_the_resolved_config(capsys):
    assert cli.main(["config", "show", "--profile", "smoke", "--dataset", "brats",
                     "--set", "train.lr=0.5", "--set", "schedule.batch_size={4: 2, 8: 2, 16: 2}",
                     "--overlay", "authors"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    expected = load_config("smoke", "brats", {"train": {"lr": 0.5},
                                              "schedule": {"batch_size": {4: 2, 8: 2, 16: 2}}},
                           overlays=("authors",))
    assert shown == expected.to_dict() and shown["train"]["lr"] == 0.5
    assert shown["model"]["kernel_size"] == 5 and shown["data"]["dataset"] == "brats"
    assert cli.main(["config", "show", "--profile", "paper"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == load_config("paper", "rop").to_dict()


@pytest.mark.parametrize(("argv", "message"), [
    (["config", "show", "--set", "train.lrr=1"], "error: --set 'train.lrr=1': unknown config key"),
    (["config", "show", "--overlay", "mine"], "error: unknown overlay 'mine'"),
    (["book", "--set", "train.lr=1"], "error: pggan book works on a built-in profile"),
])
def test_cli_refuses_bad_settings_in_one_line(capsys, argv, message):
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.startswith(message)


def test_study_settings_come_from_the_profile_as_it_is_now():
    from pggan_core.config import with_current_study_settings
    from pggan_core.settings import InversionConfig

    demo = load_config("demo", "rop")
    recorded = dataclasses.replace(demo, inversion=InversionConfig(iterations=7),
                                   train=dataclasses.replace(demo.train, lr=0.5))
    current = with_current_study_settings(recorded)
    assert current.inversion == demo.inversion and current.train.lr == 0.5  # the run's own
    custom = dataclasses.replace(recorded, profile="custom")
    assert with_current_study_settings(custom).inversion.iterations == 7
