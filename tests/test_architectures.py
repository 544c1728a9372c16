"""The network factory: every network is built from ``model.architecture``, and an
architecture registered outside the package runs through every command."""

import pytest
import torch

from pggan_core import provenance
from pggan_core.config import load_config
from pggan_core.errors import ConfigError
from pggan_core.training import architectures
from pggan_core.training.architectures import Architecture, build_network, register_architecture
from pggan_core.training.networks import Discriminator, Encoder, Generator


@pytest.fixture
def registry_as_it_was():
    saved = dict(architectures.ARCHITECTURES)
    yield
    architectures.ARCHITECTURES.clear()
    architectures.ARCHITECTURES.update(saved)


class ClampedGenerator(Generator):
    """The paper's generator with its output squashed into (-1, 1): a visible difference."""

    def forward(self, z, resolution, alpha=1.0):
        return torch.tanh(super().forward(z, resolution, alpha))


def test_the_papers_networks_are_built_from_the_config():
    model = load_config("smoke", "rop").model
    assert model.architecture == "pggan"
    G = build_network("generator", model, 4, 16)
    D = build_network("critic", model, 4, 16)
    E = build_network("encoder", model, 4, 16)
    assert (type(G), type(D), type(E)) == (Generator, Discriminator, Encoder)
    assert G(torch.zeros(2, model.latent_dim), 16).shape == (2, 4, 16, 16)
    assert D(torch.zeros(2, 4, 16, 16), 16).shape == (2,)
    assert E(torch.zeros(2, 4, 16, 16)).shape == (2, model.latent_dim)


def test_an_unknown_architecture_is_refused_by_name():
    model = load_config("smoke", "rop", {"model": {"architecture": "stylegan9"}}).model
    with pytest.raises(ConfigError, match="model.architecture='stylegan9': choose one of pggan"):
        build_network("generator", model, 4, 16)


def test_a_registered_architecture_is_built_and_its_code_is_watched(registry_as_it_was):
    register_architecture("clamped", Architecture("tanh output", ClampedGenerator,
                                                  Discriminator, Encoder))
    model = load_config("smoke", "rop", {"model": {"architecture": "clamped"}}).model
    G = build_network("generator", model, 3, 8)
    assert isinstance(G, ClampedGenerator)
    with pytest.raises(ConfigError, match="letters, digits and underscores"):
        register_architecture("no spaces", Architecture("", Generator, Discriminator, Encoder))
    # nobody lists it: running it is what puts it in a result's derivation
    with provenance.code_that_ran() as ran:
        G(torch.zeros(1, model.latent_dim), 8)
    assert f"{__name__}:ClampedGenerator" in ran and "pggan_core.training.networks:Generator" in ran


@pytest.mark.slow
def test_an_architecture_registered_here_runs_through_every_command(tmp_path, monkeypatch,
                                                                    registry_as_it_was):
    import json

    import numpy as np

    from pggan_core.cli import main
    from pggan_core.training.checkpoint import load_generator

    register_architecture("clamped", Architecture("tanh output", ClampedGenerator,
                                                  Discriminator, Encoder))
    monkeypatch.setenv("PGGAN_HOME", str(tmp_path))
    data, run, samples = tmp_path / "data", tmp_path / "run", tmp_path / "samples"
    smoke = ["--profile", "smoke"]
    assert main(["data", "prepare", "--dataset", "rop", *smoke, "--n", "16",
                 "--out", str(data)]) == 0
    assert main(["train", "--data", str(data), "--out", str(run), *smoke,
                 "--set", "model.architecture=clamped"]) == 0
    assert main(["evaluate", "--run", str(run)]) == 0
    assert main(["encode", "--run", str(run)]) == 0
    assert main(["generate", "--run", str(run), "--n", "4", "--format", "npy",
                 "--out", str(samples)]) == 0

    G, info = load_generator(run)
    assert isinstance(G, ClampedGenerator) and info["config"].model.architecture == "clamped"
    derivation = json.loads((run / "encoder.json").read_text())["derivation"]
    assert derivation["config"]["model"]["architecture"] == "clamped"
    assert f"{__name__}:ClampedGenerator" in derivation["code"]  # the encoder was trained on it
    generated = np.load(samples / "generated.npy")
    assert generated.shape == (4, 4, 16, 16) and np.abs(generated).max() < 1.0
