"""Checkpoints: atomic save with a previous copy, safe loading, RNG capture and restore."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pggan_core.config import load_config
from pggan_core.errors import CheckpointError, RunNotFoundError
from pggan_core.training import checkpoint as ckpt
from pggan_core.training.networks import Generator


def _state(step: int) -> dict:
    config = load_config("smoke", "rop")
    G = Generator(config.model, 4, config.schedule.max_resolution)
    return {"config": config.to_dict(), "channels": ["R", "G", "B", "vessel"], "step": step,
            "phase_index": 0, "resolution": 4, "alpha": 1.0, "images_seen": 8 * step,
            "G": G.state_dict(), "G_ema": G.state_dict(), "D": {}, "opt_G": {}, "opt_D": {},
            "ranks": [{"rng": ckpt.capture_rng()}]}


def test_save_keeps_previous_and_loads_back(tmp_path):
    ckpt.save_checkpoint(tmp_path, _state(1))
    assert not (tmp_path / ckpt.PREVIOUS).exists()
    ckpt.save_checkpoint(tmp_path, _state(2))
    assert ckpt.load_checkpoint(tmp_path / ckpt.LATEST)["step"] == 2
    assert ckpt.load_checkpoint(tmp_path / ckpt.PREVIOUS)["step"] == 1
    ckpt.save_checkpoint(tmp_path, _state(3))
    assert ckpt.load_latest(tmp_path)["step"] == 3
    assert ckpt.load_checkpoint(tmp_path / ckpt.PREVIOUS)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.LATEST, ckpt.PREVIOUS]
    (tmp_path / ".latest.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")  # a killed save
    ckpt.save_checkpoint(tmp_path, _state(4))
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.LATEST, ckpt.PREVIOUS]


class Payload:
    """Any class instance: unpickling it could run code, so loading must refuse it."""


def test_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": ckpt.FORMAT, "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        ckpt.load_checkpoint(path)
    # an unsafe latest never silently falls back to the previous checkpoint
    ckpt.save_checkpoint(tmp_path, _state(1))
    ckpt.save_checkpoint(tmp_path, _state(2))
    torch.save({"format": ckpt.FORMAT, "payload": Payload()}, tmp_path / ckpt.LATEST)
    with pytest.raises(CheckpointError, match="pickled"):
        ckpt.load_latest(tmp_path)


def test_damaged_latest_falls_back_to_previous(tmp_path):
    ckpt.save_checkpoint(tmp_path, _state(1))
    ckpt.save_checkpoint(tmp_path, _state(2))
    data = (tmp_path / ckpt.LATEST).read_bytes()
    (tmp_path / ckpt.LATEST).unlink()  # break the hard link before damaging the file
    (tmp_path / ckpt.LATEST).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable"):
        ckpt.load_checkpoint(tmp_path / ckpt.LATEST)
    assert ckpt.load_latest(tmp_path)["step"] == 1


def test_foreign_or_missing_files_are_clear_errors(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a pggan-medsynth checkpoint"):
        ckpt.load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(RunNotFoundError, match="03_train"):
        ckpt.load_generator(tmp_path)


def test_rng_states_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(1)
    random.seed(1)
    rng = np.random.default_rng(5)
    rng.random(3)
    ckpt.save_checkpoint(tmp_path, {**_state(1), "ranks": [
        {"rng": ckpt.capture_rng(), "numpy": ckpt.numpy_rng_state(rng)}]})
    expected = (torch.rand(4), random.random(), rng.random(4))
    state = ckpt.load_latest(tmp_path)["ranks"][0]
    ckpt.restore_rng(state["rng"])
    restored = ckpt.numpy_rng_from_state(state["numpy"])
    assert torch.equal(torch.rand(4), expected[0])
    assert random.random() == expected[1]
    assert np.array_equal(restored.random(4), expected[2])


def test_fingerprint_detects_a_single_changed_bit():
    config = load_config("smoke", "rop")
    G = Generator(config.model, 3, 16)
    before = ckpt.weights_fingerprint(G)
    assert ckpt.weights_fingerprint(G.state_dict()) == before
    with torch.no_grad():
        G.to_rgb[0].bias[0] = torch.nextafter(G.to_rgb[0].bias[0], torch.tensor(1.0))
    assert ckpt.weights_fingerprint(G) != before
