"""One configuration system: a ``Config`` (``pggan_core.settings``) loaded from YAML profiles.

A profile (``smoke``, ``demo``, ``paper``) is a YAML file in ``pggan_core/profiles/`` with a
``common`` section and optional per-dataset sections (``rop``, ``brats``) that override it. The
paper's numbers live in ``paper.yaml`` only, each cited to the section of Beers et al. (2018) it
comes from, or to NVIDIA's PGGAN (Karras et al. 2018) where the paper defers to it.

Layers, each overriding those before it key by key (a file: its ``common``, then dataset section):

1. the dataclass default;
2. the built-in profile that a profile file of one's own ``extends:``;
3. the profile's ``common`` section;
4. its dataset section;
5. overlays in the order given (``overlays=("authors",)``, ``--overlay authors``), partial
   profiles such as ``profiles/authors.yaml``;
6. ``overrides`` ({section: {key: value}}): the CLI's ``--set section.key=value`` items
   (``parse_set_items``) and flags (``--seed``, ``--precision``, ...).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from pggan_core.datasets import dataset_ids, dataset_spec
from pggan_core.errors import ConfigError
from pggan_core.settings import SECTIONS, STUDY_SECTIONS, Config, resolutions

PROFILES_DIR = Path(__file__).parent / "profiles"
PROFILES = ("smoke", "demo", "paper")
OVERLAYS = ("authors",)  # partial profiles applied on top of a profile (layer 5)
# the paper's two datasets: the book's chapters (every registered one trains: ``datasets``)
DATASETS = ("rop", "brats")
MAX_RESOLUTION = 512


def with_current_study_settings(config: Config) -> Config:
    """``config`` with its ``STUDY_SECTIONS`` as its built-in profile sets them now: they say
    how a finished run is studied, not what it is, so the current values apply rather than
    those recorded when it was trained (or exported). A custom profile's run keeps its own."""
    if config.profile not in PROFILES:
        return config
    current = load_config(config.profile, config.data.dataset)
    return dataclasses.replace(config, **{name: getattr(current, name)
                                          for name in STUDY_SECTIONS})


# a layer: where its values come from (for error messages) and {section: {key: value}}
Layer = tuple[str, dict[str, Any]]


def seed_overrides(seed: int) -> dict[str, dict[str, Any]]:
    """The one seed policy (``pggan data prepare|train --seed``, the book's ``seed``): a run's
    seed draws its phantom data (``data.seed``) and seeds its training (``train.seed``). The
    vessel U-Net, shared by a profile's runs, keeps ``vessels.seed`` (``pggan vessels train``)."""
    return {"data": {"seed": seed}, "train": {"seed": seed}}


def load_config(
    profile: str = "demo",
    dataset: str = "rop",
    overrides: dict[str, dict[str, Any]] | None = None,
    overlays: tuple[str, ...] | list[str] = (),
) -> Config:
    """Load a profile for a dataset, apply ``overlays`` and ``overrides``, validate.

    ``profile`` and ``overlays``: built-in names (``PROFILES``, ``OVERLAYS``) or YAML files; a
    profile file may start from a built-in one with ``extends: NAME``. ConfigError naming the
    key and the file or override that set it for unknown keys or badly typed values, and naming
    the file for an unknown base profile.
    """
    path = _yaml_file(profile, PROFILES, "profile")
    dataset_spec(dataset)  # a ConfigError naming the registered datasets
    layers = _file_layers(path, dataset, may_extend=True)
    for overlay in overlays:
        layers += _file_layers(_yaml_file(overlay, OVERLAYS, "overlay"), dataset)
    layers.append(("overrides", overrides or {}))
    merged = _merge(layers)
    merged.setdefault("data", {})["dataset"] = dataset
    sections = {name: _build(cls, merged.get(name, {}), name) for name, cls in SECTIONS.items()}
    config = Config(profile=path.stem, **sections)
    validate(config)
    return config


def parse_set_items(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["train.lr=3e-4", "schedule.batch_size={4: 8}"]`` -> {section: {key: value}}.

    Each value is read as YAML and replaces the profile's whole (a mapping is not merged entry by
    entry); a later item for the same key wins. ConfigError naming the item and the fix for a
    malformed item, an unknown section or key, or a value of the wrong type.
    """
    parsed: dict[str, dict[str, Any]] = {}
    for item in items:
        name, equals, text = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not equals or not dot or not section or not key or "." in key:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. "
                              "--set train.lr=3e-4 or --set schedule.batch_size='{4: 8}'")
        _check_key(section, key, f"--set {item!r}")
        if (section, key) == ("data", "dataset"):  # load_config sets it from its argument
            raise ConfigError(f"--set {item!r}: the dataset is chosen by --dataset (or by the "
                              "prepared data for pggan train), not by --set")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or "not valid YAML"
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({problem}); quote "
                              "it for the shell, e.g. --set schedule.batch_size='{4: 8}'") from err
        _coerce(value, typing.get_type_hints(SECTIONS[section])[key], f"--set {item!r}")
        parsed.setdefault(section, {})[key] = value
    return parsed


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Rebuild a Config from ``Config.to_dict()`` output (e.g. a run's ``config.yaml``)."""
    model = raw.get("model")
    if isinstance(model, dict) and model.get("variant") == "nvidia":
        # the shipped MRI runs' ``model.variant``: "nvidia", which its replacements default to
        raw = {**raw, "model": {k: v for k, v in model.items() if k != "variant"}}
    sections = {name: _build(cls, raw.get(name, {}), name) for name, cls in SECTIONS.items()}
    config = Config(profile=raw.get("profile", "custom"), **sections)
    validate(config)
    return config


def same_config(saved: dict[str, Any], config: Config) -> bool:
    """Whether a saved ``Config.to_dict()`` (a run's ``config.yaml``) describes ``config``;
    through ``config_from_dict``, so a file lacking a field added since (its default being what
    that version did) still matches."""
    try:
        return config_from_dict(saved).run_dict() == config.run_dict()
    except (ConfigError, TypeError, AttributeError):
        return False


def differing_keys(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The dotted keys (``train.lr``) whose value in ``now`` is not the one in ``saved``, sorted.

    Both are ``{section: {key: value}}``; a section that is not a mapping (``profile``) is named
    whole. Only keys ``now`` holds count: one ``saved`` alone holds no longer matters.
    """
    changed = []
    for section, values in now.items():
        old = saved.get(section)
        if isinstance(values, dict):
            old = old if isinstance(old, dict) else {}
            changed += [f"{section}.{key}" for key, value in values.items()
                        if old.get(key) != value]
        elif old != values:
            changed.append(section)
    return sorted(changed)


def validate(config: Config) -> None:
    """Check values that types alone cannot (powers of two, known names, ranges)."""
    d, s, m = config.data, config.schedule, config.model
    if d.dataset not in dataset_ids():
        raise ConfigError(f"data.dataset={d.dataset!r}: choose one of "
                          f"{', '.join(dataset_ids())}")
    check_resolution(d.resolution, "data.resolution")
    check_resolution(s.max_resolution, "schedule.max_resolution")
    check_resolution(s.start_resolution, "schedule.start_resolution")
    if s.start_resolution > s.max_resolution:
        raise ConfigError("schedule.start_resolution must not exceed schedule.max_resolution")
    if d.vessel_channel not in ("auto", "mask", "unet"):
        raise ConfigError(f"data.vessel_channel={d.vessel_channel!r}: use auto, mask or unet")
    if m.kernel_size < 1 or m.kernel_size % 2 == 0:
        raise ConfigError(f"model.kernel_size={m.kernel_size}: must be odd (1, 3, 5, ...) so "
                          "convolutions keep the image size")
    if not 0.0 <= d.heldout_fraction < 1.0:
        raise ConfigError("data.heldout_fraction must be in [0, 1)")
    if d.n_images < 1:
        raise ConfigError("data.n_images must be at least 1")
    for res in resolutions(s.start_resolution, s.max_resolution):
        if res not in m.feature_maps:
            raise ConfigError(f"model.feature_maps has no entry for {res} px")
        if res not in s.batch_size:
            raise ConfigError(f"schedule.batch_size has no entry for {res} px")
    for res, counts in s.iterations.items():
        check_resolution(res, f"schedule.iterations[{res}]")
        if min(counts) < 0:
            raise ConfigError(f"schedule.iterations[{res}]={list(counts)}: iterations cannot be "
                              "negative")
    if config.train.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"train.device={config.train.device!r}: use auto, cpu or cuda")
    if config.train.precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"train.precision={config.train.precision!r}: use auto, fp32 or "
                          "bf16")


def check_resolution(value: int, name: str = "resolution") -> int:
    """A power of two between 4 and 512, else ConfigError naming ``name``."""
    if not isinstance(value, int) or value < 4 or value > MAX_RESOLUTION or value & (value - 1):
        raise ConfigError(f"{name}={value!r}: must be a power of two between 4 and "
                          f"{MAX_RESOLUTION} (e.g. 64, 256, 512)")
    return value


def _yaml_file(name: str, builtin: tuple[str, ...], kind: str) -> Path:
    """``name`` if it is a file, else the built-in ``kind`` (profile, overlay) of that name."""
    if Path(name).is_file():
        return Path(name)
    if name in builtin:
        return PROFILES_DIR / f"{name}.yaml"
    raise ConfigError(f"unknown {kind} {name!r}: choose one of {', '.join(builtin)} or give a "
                      f"path to a YAML {kind}")


def _file_layers(path: Path, dataset: str, may_extend: bool = False) -> list[Layer]:
    """A file's layers: the built-in profile it ``extends:`` (a profile only: an overlay on a
    base would reset every layer below it), then its ``common`` and ``dataset`` sections."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the profile ({err})") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a profile is a mapping with 'common', 'rop' and 'brats' "
                          "sections")
    unknown = set(raw) - {"extends", "common", *dataset_ids()}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key {sorted(unknown)[0]!r}; expected "
                          f"'extends', 'common' or a dataset ({', '.join(dataset_ids())})")
    layers: list[Layer] = []
    if "extends" in raw and not may_extend:
        raise ConfigError(f"{path}: an overlay cannot use 'extends'; only a profile can")
    base = raw.get("extends")
    if base is not None:
        if base not in PROFILES:
            raise ConfigError(f"{path}: extends {base!r}, which is not a built-in profile; a "
                              f"profile file extends one of {', '.join(PROFILES)}")
        layers = _file_layers(PROFILES_DIR / f"{base}.yaml", dataset)
    return [*layers, (f"{path} (common)", raw.get("common") or {}),
            (f"{path} ({dataset})", raw.get(dataset) or {})]


def _merge(layers: list[Layer]) -> dict[str, dict[str, Any]]:
    """The layers merged key by key, later ones winning; keys checked per layer, naming origins."""
    merged: dict[str, dict[str, Any]] = {}
    for origin, layer in layers:
        if not isinstance(layer, dict):
            raise ConfigError(f"{origin}: expected a mapping of config sections, got {layer!r}")
        for section, values in layer.items():
            _check_key(section, None, origin)
            if not isinstance(values, dict | None):
                raise ConfigError(f"{origin}: section {section!r} must be a mapping of keys, "
                                  f"got {values!r}")
            for key in values or {}:
                _check_key(section, key, origin)
            merged.setdefault(section, {}).update(values or {})
    return merged


def _check_key(section: str, key: str | None, origin: str) -> None:
    """ConfigError naming ``origin`` unless ``section`` exists and has ``key`` (if given)."""
    if section not in SECTIONS:
        raise ConfigError(f"{origin}: unknown config section {section!r}; expected one of "
                          f"{', '.join(SECTIONS)}")
    if key is None:
        return
    names = typing.get_type_hints(SECTIONS[section])
    if key not in names:
        raise ConfigError(f"{origin}: unknown config key {section}.{key}; known keys: "
                          f"{', '.join(sorted(names))}")


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    """The ``section`` dataclass ``cls`` from ``values``, each checked against its type."""
    if not isinstance(values, dict):
        raise ConfigError(f"{section}: expected a mapping of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    for key in values:
        if key not in hints:
            raise ConfigError(f"unknown config key {section}.{key}; known keys: "
                              f"{', '.join(sorted(hints))}")
    return cls(**{key: _coerce(value, hints[key], f"{section}.{key}")
                  for key, value in values.items()})


# the words for a scalar field's type in the error for a value of another
_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against a field's type hint, with the conversions YAML and JSON need."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is types.UnionType:  # str | None
        return None if value is None else _coerce(value, args[0], key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {_coerce(k, args[0], f"{key}[{k}]"): _coerce(v, args[1], f"{key}[{k}]")
                for k, v in value.items()}
    if origin is tuple:
        if args[-1] is Ellipsis:  # tuple[int, ...]: any length but none
            if not isinstance(value, list | tuple) or not value:
                raise ConfigError(f"{key}: expected a list of values, got {value!r}")
            args = (args[0],) * len(value)
        elif not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, t, key) for v, t in zip(value, args, strict=True))
    if hint is int and isinstance(value, str) and value.isdigit():  # JSON's keys are strings
        value = int(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    # a bool is an int to Python: only a bool field takes one, and a float field takes ints
    if isinstance(value, bool) is not (hint is bool) or not isinstance(
            value, int | float if hint is float else hint):
        raise ConfigError(f"{key}: expected {_EXPECTED[hint]}, got {value!r}")
    if hint is float:
        value = float(value)
        if value != value:  # NaN
            raise ConfigError(f"{key}: NaN is not a valid value")
    return value
