"""The progressive trainer: schedule, run folder, bit-identical resume, kills, NaNs, two ranks."""

from __future__ import annotations

import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pggan_core.config import load_config
from pggan_core.errors import ConfigError, PgganError
from pggan_core.runs.folder import is_finished, run_config
from pggan_core.training import checkpoint as ckpt
from pggan_core.training import trainer as train_module
from pggan_core.training.guards import TrainingDiverged, check_same_config
from pggan_core.training.losses import discriminator_loss
from pggan_core.training.networks import Discriminator
from pggan_core.training.schedule import build_phases
from pggan_core.training.trainer import train

REPO = Path(__file__).resolve().parents[1]


def smoke(**train_overrides) -> object:
    """The smoke profile (4 -> 8 -> 16 px, 20 steps) as the shared tiny run has it, but with a
    checkpoint every 6 steps: mid-fade at step 6, where a resume is hardest."""
    return load_config("smoke", "rop", {"train": {"checkpoint_every": 6, **train_overrides}})


def test_schedule_fades_then_holds_each_resolution():
    phases = build_phases(smoke())
    assert [(p.resolution, p.kind, p.start, p.iterations) for p in phases] == [
        (4, "stable", 0, 4), (8, "fade", 4, 4), (8, "stable", 8, 4),
        (16, "fade", 12, 4), (16, "stable", 16, 4)]
    fade = phases[1]
    assert [fade.alpha(s) for s in range(fade.start, fade.end)] == [0.0, 0.25, 0.5, 0.75]
    assert phases[2].alpha(9) == 1.0


def test_schedule_iterations_can_differ_per_resolution():
    config = load_config("smoke", "rop", {"schedule": {"iterations": {4: [0, 3], 16: [5, 0]}}})
    assert [(p.resolution, p.kind, p.iterations) for p in build_phases(config)] == [
        (4, "stable", 3), (8, "fade", 4), (8, "stable", 4), (16, "fade", 5)]
    with pytest.raises(ConfigError, match=r"schedule\.iterations\[8\]"):
        load_config("smoke", "rop", {"schedule": {"iterations": {8: [-1, 4]}}})


@pytest.mark.slow
def test_smoke_run_writes_the_whole_run_folder(tiny_run):
    config, run = run_config("rop", "smoke"), tiny_run
    assert yaml.safe_load((run / "config.yaml").read_text()) == config.run_dict()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(2, 21, 2))
    assert {"step", "resolution", "phase", "alpha", "d_loss", "g_loss", "gp", "wasserstein",
            "images_seen", "img_per_s"} <= set(records[0])
    assert [r["resolution"] for r in records][::2] == [4, 8, 8, 16, 16]
    assert records[-1]["images_seen"] == 20 * 8
    assert {r["alpha"] for r in records if r["phase"] == "fade"} == {0.25, 0.75}
    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples == ["res004_stable.png", "res008_fade.png", "res008_stable.png",
                       "res016_fade.png", "res016_stable.png"]
    with np.load(run / "figures" / "progression.npz") as strip:
        assert [strip[f"res_{r:03d}"].shape for r in (4, 8, 16)] == [
            (4, 4, 4), (4, 8, 8), (4, 16, 16)]
        assert list(strip["channels"]) == ["R", "G", "B", "vessel"]
    assert (run / "figures" / "progression.png").stat().st_size > 0
    # the quality curve: SWD of the EMA generator at every phase end (no 7x7 patch fits 4 px)
    curve = [json.loads(line) for line in (run / "phase_metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["resolution"], r["phase"]) for r in curve] == [
        (4, 4, "stable"), (8, 8, "fade"), (12, 8, "stable"), (16, 16, "fade"),
        (20, 16, "stable")]
    assert curve[0]["swd_mean"] is None and all(r["swd_mean"] > 0 for r in curve[1:])
    seconds = [r["train_seconds"] for r in curve]
    assert seconds == sorted(seconds) and seconds[0] > 0
    assert json.loads((run / "run.json").read_text())["train_seconds"] >= seconds[-1] - 0.1
    state = ckpt.load_latest(run / "checkpoints")
    assert (state["step"], state["resolution"], state["finished"]) == (20, 16, True)
    assert is_finished(run, config)
    assert not is_finished(run, config, with_segmentation=False)
    assert not is_finished(run, smoke(seed=1))
    G, info = ckpt.load_generator(run)
    assert info["ema"] and G(torch.zeros(2, 32), 16).shape == (2, 4, 16, 16)


@pytest.mark.slow
def test_without_segmentation_trains_on_image_channels_only(tiny_data, tmp_path):
    config = load_config("smoke", "rop", {"schedule": {"max_resolution": 8}})
    run = train(config, tiny_data, tmp_path / "run", with_segmentation=False, progress=False)
    state = ckpt.load_latest(run / "checkpoints")
    assert state["channels"] == ["R", "G", "B"]
    assert state["G"]["to_rgb.0.weight"].shape[0] == 3
    assert json.loads((run / "run.json").read_text())["with_segmentation"] is False
    # and nothing it learns depends on the label channel: a dataset whose vessel channel is
    # drawn otherwise (the U-Net's map instead of the mask) trains the same image-only run
    other = shutil.copytree(tiny_data, tmp_path / "other-channel")
    for level in other.glob("res_*.npy"):
        images = np.load(level, mmap_mode="r+")
        images[:, 3] = 255 - images[:, 3]
        images.flush()
        del images
    again = train(config, other, tmp_path / "again", with_segmentation=False, progress=False)
    assert ckpt.weights_fingerprint(*ckpt.load_generator(again)[:1]) == \
        ckpt.weights_fingerprint(*ckpt.load_generator(run)[:1])


def _assert_same(a, b, where="state"):
    """Equal nested checkpoint contents, tensors compared bit for bit."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.slow
def test_resume_mid_fade_is_bit_identical(tiny_data, tiny_run, tmp_path, monkeypatch):
    # the straight run is the shared one: checkpointed every 4 steps, not 6, which must not
    # change a single weight
    config, straight = smoke(), tiny_run

    real_save = ckpt.save_checkpoint

    def save_then_die(folder, state):
        real_save(folder, state)
        if state["step"] == 6:
            raise KeyboardInterrupt  # the process dies right after this checkpoint

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config, tiny_data, tmp_path / "resumed", progress=False)
    monkeypatch.undo()
    interrupted = ckpt.load_latest(tmp_path / "resumed" / "checkpoints")
    assert (interrupted["step"], interrupted["resolution"], interrupted["alpha"]) == (6, 8, 0.25)
    with pytest.raises(PgganError, match="--resume"):
        train(config, tiny_data, tmp_path / "resumed", progress=False)
    with pytest.raises(ConfigError, match="train.seed"):
        train(smoke(seed=3), tiny_data, tmp_path / "resumed", resume=True,
              progress=False)
    resumed = train(config, tiny_data, tmp_path / "resumed", resume=True, progress=False)

    a = ckpt.load_latest(straight / "checkpoints")
    b = ckpt.load_latest(resumed / "checkpoints")
    for key in ("G", "G_ema", "D", "opt_G", "opt_D", "ranks", "step", "images_seen"):
        _assert_same(a[key], b[key], key)
    losses = [[(r["step"], r["d_loss"], r["g_loss"]) for r in map(json.loads, lines)]
              for lines in ((run / "metrics.jsonl").read_text().splitlines()
                            for run in (straight, resumed))]
    assert losses[0] == losses[1]
    swd = [[(r["step"], r["swd_mean"]) for r in map(json.loads, lines)]
           for lines in ((run / "phase_metrics.jsonl").read_text().splitlines()
                         for run in (straight, resumed))]
    assert swd[0] == swd[1]


def test_a_resume_with_other_settings_is_refused_naming_every_key_that_differs(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(smoke().run_dict(), sort_keys=False))
    check_same_config(tmp_path, smoke())  # the run's own settings resume
    other = dataclasses.replace(smoke(seed=3, lr=0.002), profile="custom")
    with pytest.raises(ConfigError) as refused:
        check_same_config(tmp_path, other)
    assert str(refused.value) == (
        f"{tmp_path / 'config.yaml'}: profile was 'smoke', now 'custom'; train.lr was 0.001, "
        "now 0.002; train.seed was 0, now 3; resume with the original settings or train into "
        "a new --out")


KILL_OVERRIDES = {"schedule": {"max_resolution": 4}, "train": {"checkpoint_every": 1}}

# A training that stops at a chosen point of its checkpoint writing, says so on stdout and
# waits there to be SIGKILLed: halfway through writing the temporary file of its ``save``-th
# checkpoint ("inside"), or just after that checkpoint was renamed into place ("between").
KILL_SCRIPT = """
import contextlib, json, sys, time
import torch
torch.set_num_threads(1)
from pggan_core.config import load_config
from pggan_core.training import checkpoint as ckpt
from pggan_core.training.trainer import train

where, save, data, out, resume, overrides = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
real_atomic_file, saves = ckpt.atomic_file, []

def wait_for_the_kill():
    print(where, flush=True)
    time.sleep(600)  # the parent kills this process now

class HalfWritten:
    def __init__(self, fh):
        self.fh, self.written = fh, 0
    def write(self, data):
        n = self.fh.write(data)
        self.written += n
        if self.written >= 4096:
            self.fh.flush()  # on disk, as far as a crash can leave it
            wait_for_the_kill()
        return n
    def __getattr__(self, name):
        return getattr(self.fh, name)

@contextlib.contextmanager
def watched(path, mode="wb"):
    saves.append(path)
    due = len(saves) == save
    with real_atomic_file(path, mode) as fh:
        yield HalfWritten(fh) if due and where == "inside" else fh
    if due and where == "between":
        wait_for_the_kill()

ckpt.atomic_file = watched
config = load_config("smoke", "rop", json.loads(overrides))
train(config, data, out, resume=resume == "resume", progress=False)
"""


@pytest.mark.slow
def test_sigkill_never_leaves_an_unreadable_latest(tiny_data, tmp_path):
    """SIGKILL (no handler, no clean-up) inside a checkpoint write, then between two: latest.pt
    is always a whole checkpoint, and training resumes from it."""
    out = tmp_path / "run"
    folder = out / "checkpoints"
    steps, leftovers = [], []
    # the first run writes checkpoints after steps 1, 2, 3...: killed while writing step 3's;
    # the resumed run (from step 2) is killed right after its first checkpoint, step 3's
    for where, save, resume in (("inside", 3, "new"), ("between", 1, "resume")):
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, where, str(save),
                                 str(tiny_data), str(out), resume,
                                 json.dumps(KILL_OVERRIDES)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 300)  # a bound, not a clock
            assert ready and proc.stdout.readline() == f"{where}\n", "training ended early"
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=60) == -signal.SIGKILL
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        state = ckpt.load_checkpoint(folder / ckpt.LATEST)  # latest itself, no fallback needed
        steps.append(state["step"])
        assert np.isfinite(state["G"]["to_rgb.0.weight"].numpy()).all()
        leftovers.append(sorted(p.name for p in folder.glob(".*.tmp")))
    assert steps == [2, 3]
    # the half-written temporary of the first kill was left, and cleared by the next save
    assert len(leftovers[0]) == 1 and leftovers[1] == []
    assert ckpt.load_checkpoint(folder / ckpt.PREVIOUS)["step"] == 2
    config = load_config("smoke", "rop", KILL_OVERRIDES)
    train(config, tiny_data, out, resume=True, progress=False)
    assert ckpt.load_latest(folder)["step"] == 4


@pytest.mark.slow
def test_nan_loss_stops_naming_step_and_resolution(tiny_data, tmp_path, monkeypatch):
    real_loss = train_module.generator_loss

    def poisoned(D, fakes, resolution, alpha):
        loss = real_loss(D, fakes, resolution, alpha)
        return loss * float("nan") if resolution == 8 and alpha >= 0.5 else loss

    monkeypatch.setattr(train_module, "generator_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"g_loss is nan at step 7 \(8 px, fade\)"):
        train(smoke(), tiny_data, tmp_path / "run", progress=False)
    state = ckpt.load_latest(tmp_path / "run" / "checkpoints")
    assert state["step"] == 6  # the last checkpoint before the NaN, untouched
    assert all(torch.isfinite(t).all() for t in state["G"].values())
    assert not json.loads((tmp_path / "run" / "run.json").read_text())["finished"]


DDP_SCRIPT = """
import torch
torch.set_num_threads(1)
from pggan_core.config import load_config
from pggan_core.training.trainer import train
config = load_config("smoke", "rop", {{"train": {{"checkpoint_every": 8}}}})
train(config, {data!r}, {out!r}, progress=False)
"""


DDP_GRADIENT_SCRIPT = """
import sys
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from pggan_core.config import load_config
from pggan_core.training.losses import discriminator_loss
from pggan_core.training.networks import Discriminator
from pggan_core.training.guards import PhaseNetwork
torch.set_num_threads(1)
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
D = Discriminator(load_config("smoke", "rop").model, 4, 16)
critic = DistributedDataParallel(PhaseNetwork(D, 8, fading=True), broadcast_buffers=False)
data = torch.Generator().manual_seed(rank)
reals, fakes = (torch.randn(8, 4, 8, 8, generator=data) for _ in range(2))
torch.manual_seed(100 + rank)  # the penalty's mixing factors
loss, _ = discriminator_loss(critic, reals, fakes, 8, 0.5)
loss.backward()
grads = {name: p.grad for name, p in D.named_parameters() if p.grad is not None}
torch.save(grads, sys.argv[1] + f".{rank}")
dist.destroy_process_group()
"""


RANK_STACKS_AFTER_S = 240  # seconds; the job takes about 10 on 2 idle cores


def run_two_ranks(script: Path, *args: str) -> None:
    """``script`` as a two-process torchrun job on gloo. A job that hangs fails with every
    rank's Python stack (faulthandler, after RANK_STACKS_AFTER_S), so a deadlock says where
    each rank waits instead of timing out in silence."""
    script.write_text("import faulthandler\n"
                      f"faulthandler.dump_traceback_later({RANK_STACKS_AFTER_S}, exit=True)\n"
                      + script.read_text())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=RANK_STACKS_AFTER_S + 60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]


@pytest.mark.slow
def test_ddp_averages_the_gradient_penalty_double_backward(tmp_path):
    """DDP around the critic: after the WGAN-GP loss's double backward every rank holds the
    mean of the per-rank gradients, for exactly the layers the phase uses."""
    script = tmp_path / "ddp_grad.py"
    script.write_text(DDP_GRADIENT_SCRIPT)
    run_two_ranks(script, str(tmp_path / "grads"))
    per_rank = []
    for rank in range(2):  # the same two critic steps, one process, no DDP
        torch.manual_seed(0)
        D = Discriminator(load_config("smoke", "rop").model, 4, 16)
        data = torch.Generator().manual_seed(rank)
        reals, fakes = (torch.randn(8, 4, 8, 8, generator=data) for _ in range(2))
        torch.manual_seed(100 + rank)
        discriminator_loss(D, reals, fakes, 8, 0.5)[0].backward()
        per_rank.append({n: p.grad for n, p in D.named_parameters() if p.grad is not None})
    active = {n for n, _ in D.named_parameters()
              if n.startswith(("from_rgb.0.", "from_rgb.1.", "blocks.0.", "blocks.1."))}
    assert set(per_rank[0]) == active
    for rank in range(2):
        ddp = torch.load(tmp_path / f"grads.{rank}", weights_only=True)
        assert set(ddp) == active
        for name in active:
            mean = (per_rank[0][name] + per_rank[1][name]) / 2
            torch.testing.assert_close(ddp[name], mean, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_two_gloo_ranks_train_identical_weights(tiny_data, tmp_path):
    script = tmp_path / "ddp_train.py"
    out = tmp_path / "run"
    script.write_text(DDP_SCRIPT.format(data=str(tiny_data), out=str(out)))
    run_two_ranks(script)
    state = ckpt.load_latest(out / "checkpoints")
    assert state["finished"] and len(state["ranks"]) == 2
    fingerprints = state["rank_fingerprints"]
    assert fingerprints[0] == fingerprints[1] == ckpt.weights_fingerprint(state["G"], state["D"])
    # each rank drew from its own shard and its own random stream
    perms = [r["sampler"]["perm"] for r in state["ranks"]]
    assert not set(perms[0].tolist()) & set(perms[1].tolist())
    assert not torch.equal(state["ranks"][0]["rng"]["torch"], state["ranks"][1]["rng"]["torch"])
    assert json.loads((out / "run.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_the_papers_widths_train_every_phase_from_4_to_512_px(tmp_path):
    # the paper's architecture (latent 128, 128 maps up to 128 px, 64 at 256, 16 at 512),
    # one step of every fade and stable phase at batch 2 (the paper's 512 px phase at batch 8
    # peaked at 13.9 GB resident on a 24 GiB machine)
    from pggan_core.data.prepare import prepare_dataset
    from pggan_core.training.guards import Runtime
    from pggan_core.training.trainer import Trainer

    config = load_config("paper", "rop", {
        "data": {"n_images": 4, "heldout_fraction": 0.25, "vessel_channel": "mask"},
        "schedule": {"fade_iterations": 1, "stable_iterations": 1, "iterations": {},
                     "batch_size": dict.fromkeys((4, 8, 16, 32, 64, 128, 256, 512), 2)},
        "train": {"device": "cpu", "precision": "fp32"}})
    assert config.schedule.max_resolution == 512 and config.model.latent_dim == 128
    data = prepare_dataset(config, tmp_path / "data", progress=False)
    trainer = Trainer(config, data, tmp_path / "run", True, Runtime(torch.device("cpu"), 0, 1))
    trained = []
    for phase in trainer.phases:
        batch = trainer.begin_phase(phase)
        stats = trainer.train_step(phase, 0.5 if phase.kind == "fade" else 1.0, batch)
        assert all(np.isfinite(v) for v in stats.values()), (phase, stats)
        trained.append((phase.resolution, phase.kind))
    assert trained[-2:] == [(512, "fade"), (512, "stable")] and len(trained) == 15
    with torch.no_grad():
        image = trainer.G(torch.randn(1, 128), 512)
    assert image.shape == (1, 4, 512, 512) and torch.isfinite(image).all()
