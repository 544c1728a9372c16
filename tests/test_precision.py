"""bf16 autocast on the CPU: the GPU path's dtype seams, exercised without a GPU."""

import json

import pytest
import torch

from pggan_core import precision
from pggan_core.cli import main
from pggan_core.config import load_config
from pggan_core.errors import ConfigError
from pggan_core.evaluation.evaluate import evaluate_run
from pggan_core.latent.encoder import encode_run
from pggan_core.training.checkpoint import LATEST
from pggan_core.training.losses import discriminator_loss, gradient_penalty
from pggan_core.training.networks import Discriminator, Generator
from pggan_core.training.trainer import train

CPU = torch.device("cpu")


def test_auto_is_fp32_on_cpu_and_bf16_on_cuda():
    assert precision.resolve("auto", CPU) == "fp32"
    assert precision.resolve("auto", torch.device("cuda", 0)) == "bf16"
    assert precision.resolve("bf16", CPU) == "bf16"
    assert not precision.autocast("fp32", CPU)._enabled
    with pytest.raises(ConfigError, match="train.precision"):
        load_config("smoke", "rop", {"train": {"precision": "fp16"}})


def _nets(resolution: int = 16):
    torch.manual_seed(0)
    model = load_config("smoke", "rop").model
    return Generator(model, 4, resolution), Discriminator(model, 4, resolution)


def test_critic_loss_takes_bf16_fakes_beside_fp32_reals():
    """The crash the GPU path had: lerp of fp32 reals with autocast's bf16 fakes."""
    G, D = _nets()
    reals = torch.rand(8, 4, 16, 16) * 2 - 1
    with torch.autocast("cpu", torch.bfloat16):
        fakes = G(torch.randn(8, 32), 16, 0.5)
        assert fakes.dtype == torch.bfloat16
        loss, stats = discriminator_loss(D, reals, fakes, 16, 0.5)
    assert loss.dtype == torch.float32 and all(map(torch.isfinite, map(torch.tensor,
                                                                       stats.values())))
    loss.backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in D.parameters())


def test_the_penalty_under_bf16_stays_close_to_fp32():
    """What stays fp32, measured: with scores, the norm and the reductions in fp32, bf16
    convolutions change the penalty by a few percent, not its order of magnitude."""
    G, D = _nets()
    reals = torch.rand(16, 4, 16, 16) * 2 - 1
    fakes = G(torch.randn(16, 32), 16).detach()
    torch.manual_seed(1)
    exact = gradient_penalty(D, reals, fakes, 16, 1.0)
    torch.manual_seed(1)
    with torch.autocast("cpu", torch.bfloat16):
        approx = gradient_penalty(D, reals, fakes, 16, 1.0)
    assert approx.dtype == torch.float32
    assert abs(approx.item() - exact.item()) < 0.05 * exact.item()


@pytest.mark.slow
@pytest.mark.e2e
def test_bf16_training_encoding_and_evaluation_run_to_the_end(tiny_data, tmp_path):
    """A smoke training, ``pggan encode`` and ``pggan evaluate`` with --precision bf16."""
    # its own bf16 run (the shared one is fp32), on the shared prepared data
    config = load_config("smoke", "rop", {"train": {"precision": "bf16"}})
    run = train(config, tiny_data, tmp_path / "run", progress=False)
    info = json.loads((run / "run.json").read_text())
    assert info["finished"] and info["precision"] == "bf16"
    state = torch.load(run / "checkpoints" / LATEST, weights_only=True)
    assert all(t.dtype == torch.float32 for t in state["G_ema"].values())  # fp32 weights
    assert encode_run(run, progress=False)["precision"] == "bf16"
    assert evaluate_run(run, progress=False)["precision"] == "bf16"
    # from the command line: a bf16 training, then fp32 over the run's bf16
    assert main(["train", "--data", str(tiny_data), "--profile", "smoke", "--precision", "bf16",
                 "--out", str(tmp_path / "cli-run"), "--threads", "1"]) == 0
    assert json.loads((tmp_path / "cli-run" / "run.json").read_text())["precision"] == "bf16"
    assert main(["encode", "--run", str(run), "--precision", "fp32"]) == 0
    assert json.loads((run / "encoder.json").read_text())["precision"] == "fp32"
    assert main(["evaluate", "--run", str(run), "--precision", "bf16"]) == 0
