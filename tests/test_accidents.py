"""The usual accidents of long training: a signal, a full disk, a second trainer on the same
run folder, a checkpoint from another version."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile

import pytest
import torch
from test_train import REPO, _assert_same, smoke

from pggan_core import __version__, cli
from pggan_core.config import load_config
from pggan_core.errors import (
    CheckpointError,
    RunInUseError,
    StorageError,
    TrainingInterrupted,
)
from pggan_core.training import checkpoint as ckpt
from pggan_core.training import trainer as train_module
from pggan_core.training.trainer import train


def tiny() -> object:
    """The smoke profile at 4 px only: 4 steps, a checkpoint after steps 2 and 4."""
    return load_config("smoke", "rop", {"schedule": {"max_resolution": 4},
                                        "train": {"checkpoint_every": 2}})


@pytest.fixture(autouse=True)
def signals_as_in_a_terminal():
    """Ctrl-C and SIGTERM with their usual handlers. A shell starts its background jobs with
    SIGINT ignored, and the trainer keeps an ignored signal ignored (as ``nohup`` asks), so a
    suite run in the background would otherwise test nothing here."""
    usual = ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL))
    before = {signum: signal.signal(signum, handler) for signum, handler in usual}
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


def signal_at(monkeypatch, signals: dict[int, int]) -> None:
    """Send this process ``signals[step]`` while global step ``step`` (1-based) trains, as a
    Ctrl-C or a cluster's SIGTERM lands in the middle of a step."""
    real_step = train_module.Trainer.train_step

    def step_then_signal(self, phase, alpha, batch):
        stats = real_step(self, phase, alpha, batch)
        if self.step + 1 in signals:  # self.step counts the steps done before this one
            os.kill(os.getpid(), signals[self.step + 1])
        return stats

    monkeypatch.setattr(train_module.Trainer, "train_step", step_then_signal)


# ------------------------------------------------------------------------ SIGINT and SIGTERM


@pytest.mark.slow
def test_sigterm_and_sigint_checkpoint_and_resume_bit_identically(tiny_data, tiny_run, tmp_path,
                                                                   monkeypatch):
    config, out, straight = smoke(), tmp_path / "stopped", tiny_run  # the shared straight run
    # SIGTERM inside step 9 (no checkpoint is due: the stop writes one), SIGINT inside step 12
    # (a phase end, already checkpointed); each run resumes where the last one stopped
    signal_at(monkeypatch, {9: signal.SIGTERM, 12: signal.SIGINT})
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    for signum, step, alpha in ((signal.SIGTERM, 9, 1.0), (signal.SIGINT, 12, 1.0)):
        with pytest.raises(TrainingInterrupted) as stopped:
            train(config, tiny_data, out, resume=step > 9, progress=False)
        assert stopped.value.signum == signum
        assert stopped.value.exit_status == 128 + signum
        assert str(stopped.value) == (
            f"stopped by {signal.Signals(signum).name} after step {step} of 20, checkpoint "
            f"saved in {out / 'checkpoints'}; resume with: pggan train --data {tiny_data} "
            f"--out {out} --profile smoke --resume")
        state = ckpt.load_checkpoint(out / "checkpoints" / ckpt.LATEST)
        assert (state["step"], state["alpha"], state["finished"]) == (step, alpha, False)
        info = json.loads((out / "run.json").read_text())
        assert (info["step"], info["finished"]) == (step, False)
        assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers
    train(config, tiny_data, out, resume=True, progress=False)

    a = ckpt.load_latest(straight / "checkpoints")
    b = ckpt.load_latest(out / "checkpoints")
    assert ckpt.weights_fingerprint(a["G"], a["D"]) == ckpt.weights_fingerprint(b["G"], b["D"])
    for key in ("G", "G_ema", "D", "opt_G", "opt_D", "ranks", "step", "images_seen"):
        _assert_same(a[key], b[key], key)
    losses = [[(r["step"], r["d_loss"], r["g_loss"]) for r in map(json.loads, lines)]
              for lines in ((run / "metrics.jsonl").read_text().splitlines()
                            for run in (straight, out))]
    assert losses[0] == losses[1]
    assert json.loads((out / "run.json").read_text())["finished"] is True


@pytest.mark.slow
def test_cli_prints_the_resume_command_which_resumes(tiny_data, tmp_path, monkeypatch, capfd):
    out = tmp_path / "run dir"  # a space, so the printed command must quote it
    signal_at(monkeypatch, {2: signal.SIGTERM, 3: signal.SIGINT})
    assert cli.main(["train", "--data", str(tiny_data), "--out", str(out),
                     "--profile", "smoke"]) == 143
    err = capfd.readouterr().err.strip().splitlines()  # the progress bar's lines, then ours
    assert ("SIGTERM: stopping after this step with a checkpoint (send it again to stop at "
            "once)") in err
    assert err[-1].startswith("stopped by SIGTERM after step 2 of 20, checkpoint saved in ")
    command = shlex.split(err[-1].split("resume with: ")[1])
    assert command[:2] == ["pggan", "train"] and command[-1] == "--resume"
    assert cli.main(command[1:]) == 130  # the printed command is accepted: same config
    assert capfd.readouterr().err.strip().endswith(err[-1].split("resume with: ")[1])
    assert ckpt.load_latest(out / "checkpoints")["step"] == 3


@pytest.mark.slow
def test_a_second_signal_stops_at_once(tiny_data, tmp_path, monkeypatch):
    real_checkpoint, checkpoints = train_module.Trainer._checkpoint, []

    def impatient(self, phase, alpha):  # Ctrl-C again while the stop's checkpoint is written
        checkpoints.append(self.step)
        os.kill(os.getpid(), signal.SIGINT)
        real_checkpoint(self, phase, alpha)

    signal_at(monkeypatch, {1: signal.SIGINT})
    monkeypatch.setattr(train_module.Trainer, "_checkpoint", impatient)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(), tiny_data, tmp_path / "run", progress=False)
    assert checkpoints == [1]  # the first Ctrl-C waited for the end of its step, the second not
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ------------------------------------------------------------------------ a full disk


class FullDisk:
    """A file on a disk with ``room`` bytes left: a write past them fails as ENOSPC does."""

    def __init__(self, fh, room: int) -> None:
        self.fh, self.room = fh, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.fh.write(bytes(data[:self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.fh.write(data)

    def __getattr__(self, name: str):
        return getattr(self.fh, name)


def fill_disk(monkeypatch, on_save: int = 1) -> None:
    """Make the ``on_save``-th checkpoint written from now on run out of space midway."""
    real_atomic_file, saves = ckpt.atomic_file, []

    @contextlib.contextmanager
    def filling(path, mode="wb"):
        saves.append(path)
        with real_atomic_file(path, mode) as fh:
            yield FullDisk(fh, 100) if len(saves) == on_save else fh

    monkeypatch.setattr(ckpt, "atomic_file", filling)


def refuse_temporaries(monkeypatch) -> None:
    """An unwritable folder: creating a file there fails (chmod would not stop root)."""
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)


@pytest.mark.parametrize("accident, reason, fix, previous", [
    # the disk fills after previous.pt was linked to the old latest (step 2)...
    (fill_disk, "No space left on device (ENOSPC)", "free space on the disk holding {}", 2),
    # ...while a folder refusing new files refuses that link too: previous.pt stays step 1
    (refuse_temporaries, "Permission denied (EACCES)", "make {} writable", 1),
])
def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch, accident,
                                                          reason, fix, previous):
    folder = tmp_path / "checkpoints"
    with pytest.raises(StorageError) as failed, monkeypatch.context() as patch:
        accident(patch)
        ckpt.save_checkpoint(folder, {"step": 0})
    assert str(failed.value) == (f"cannot write a checkpoint in {folder}: {reason}; no "
                                 f"checkpoint was written yet: {fix.format(folder)} and "
                                 "resume with --resume")
    for step in (1, 2):
        ckpt.save_checkpoint(folder, {"step": step})
    with pytest.raises(StorageError) as failed, monkeypatch.context() as patch:
        accident(patch)
        ckpt.save_checkpoint(folder, {"step": 3})
    assert str(failed.value) == (f"cannot write a checkpoint in {folder}: {reason}; "
                                 f"latest.pt still holds the previous checkpoint: "
                                 f"{fix.format(folder)} and resume with --resume")
    # latest is the last complete checkpoint, previous is complete too; no temporary is left
    assert torch.load(folder / ckpt.LATEST, weights_only=True)["step"] == 2
    assert torch.load(folder / ckpt.PREVIOUS, weights_only=True)["step"] == previous
    assert sorted(p.name for p in folder.iterdir()) == [ckpt.LATEST, ckpt.PREVIOUS]


@pytest.mark.slow
def test_training_stops_on_a_full_disk_and_resumes_once_freed(tiny_data, tmp_path,
                                                               monkeypatch):
    out = tmp_path / "run"
    with pytest.raises(StorageError, match="No space left on device"), \
            monkeypatch.context() as patch:
        fill_disk(patch, on_save=2)  # the checkpoint of step 4
        train(tiny(), tiny_data, out, progress=False)
    assert ckpt.load_latest(out / "checkpoints")["step"] == 2
    assert json.loads((out / "run.json").read_text())["finished"] is False
    train(tiny(), tiny_data, out, resume=True, progress=False)
    assert ckpt.load_latest(out / "checkpoints")["step"] == 4


# ------------------------------------------------------------------------ one trainer per run

HOLD_LOCK = """
import sys, time
from pggan_core.training.guards import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_a_run_folder_in_use_is_refused_until_its_holder_dies(tiny_data, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        host, pid = socket.gethostname(), holder.pid
        expected = (rf"{re.escape(str(out))} is in use by another `pggan train` \(pid {pid} on "
                    rf"host {re.escape(host)}, since [0-9-]+ [0-9:]+\): wait for it to finish, "
                    rf"or stop it with `kill {pid}` on {re.escape(host)} \(it saves a "
                    r"checkpoint; continue it with --resume\), or train into another --out$")
        for resume in (False, True):
            with pytest.raises(RunInUseError, match=expected):
                train(tiny(), tiny_data, out, resume=resume, progress=False)
        assert [p.name for p in out.iterdir()] == [".lock"]  # nothing else touched
    finally:
        holder.kill()  # SIGKILL: no clean-up runs; the kernel drops the lock with the process
        holder.wait()
        holder.stdout.close()
    train(tiny(), tiny_data, out, progress=False)
    assert json.loads((out / "run.json").read_text())["finished"] is True


# ------------------------------------------------------------------------ format versions


def test_a_checkpoint_of_another_format_version_is_refused_naming_it(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": "pggan-medsynth/checkpoint/2", "package_version": "0.3.0"}, path)
    with pytest.raises(CheckpointError) as refused:
        ckpt.load_checkpoint(path)
    assert str(refused.value) == (
        f"{path} was written by pggan-medsynth 0.3.0 in checkpoint format version 2 (this "
        f"code, pggan-medsynth {__version__}, reads version 1): resume it with pggan-medsynth "
        "0.3.0, or start a new run with another --out")
    torch.save({"format": "pggan-medsynth/checkpoint/0"}, path)  # no version recorded
    with pytest.raises(CheckpointError, match=(
            r"was written in checkpoint format version 0 \(this code, pggan-medsynth "
            r"[^,]+, reads version 1\): resume it with the version of pggan-medsynth that "
            r"wrote it, or start a new run with another --out$")):
        ckpt.load_checkpoint(path)
    torch.save({"format": "pggan-medsynth/generator/7", "package_version": "1.0"}, path)
    with pytest.raises(CheckpointError, match=(
            r"by pggan-medsynth 1\.0 in generator format version 7 .*reads version 1\): "
            r"load it with pggan-medsynth 1\.0, or train the run anew$")):
        ckpt.load_checkpoint(path, fmt=ckpt.GENERATOR_FORMAT)
    # every checkpoint records the version that wrote it
    ckpt.save_checkpoint(tmp_path / "new", {"step": 1})
    saved = torch.load(tmp_path / "new" / ckpt.LATEST, weights_only=True)
    assert (saved["format"], saved["package_version"]) == (ckpt.FORMAT, __version__)
