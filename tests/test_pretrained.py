"""Shipped runs: export a finished run, install it verified, refuse anything that differs."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from pggan_book import shipping
from pggan_core.config import load_config
from pggan_core.data.store import PreparedDataset
from pggan_core.errors import CheckpointError, PgganError
from pggan_core.runs import shipped as pretrained
from pggan_core.runs.folder import is_finished
from pggan_core.training.checkpoint import load_generator
from pggan_core.training.trainer import train


@pytest.fixture
def shipped(tiny_run, tmp_path):
    """The tiny run exported as the smoke profile's shipped rop-seg run under ``tmp_path``."""
    manifest = shipping.export_run(tiny_run, "smoke", "rop", "seg", "pggan train ...",
                                     12.5, root=tmp_path)
    return tmp_path, manifest


def _config(tiny_run):
    return load_generator(tiny_run)[1]["config"]


@pytest.mark.slow
def test_export_then_install_gives_the_same_generator(tiny_run, shipped, tmp_path):
    root, manifest = shipped
    entry = manifest["runs"]["rop-seg"]
    assert entry["command"] == "pggan train ..." and entry["wall_seconds"] == 12.5
    assert "generator.pt" in entry["files"] and "phase_metrics.jsonl" in entry["files"]
    folder = pretrained.pretrained_dir("smoke", root) / "rop-seg"
    assert not (folder / "checkpoints").exists()  # the generator alone: no critic, no Adam
    config = _config(tiny_run)
    data = PreparedDataset(json.loads((tiny_run / "run.json").read_text())["data_dir"])
    assert pretrained.ships("smoke", "rop", "seg", config, root)
    assert not pretrained.ships("smoke", "rop", "noseg", config, root)
    out = pretrained.install_run("smoke", "rop", "seg", config, tmp_path / "installed", data,
                                 root)
    assert is_finished(out, config)
    original, _ = load_generator(tiny_run)
    installed, info = load_generator(out)
    z = torch.randn(3, config.model.latent_dim)
    assert torch.equal(original(z, 16), installed(z, 16)) and info["ema"]
    note = pretrained.pretrained_note(out)
    assert max(map(len, note.splitlines())) <= pretrained.NOTE_WIDTH
    assert "pggan train ..." in " ".join(note.split()) and "sha256" in note
    assert pretrained.pretrained_note(tiny_run) is None
    with pytest.raises(PgganError, match="shipped run"):  # cannot be trained further
        train(config, data.path, out, resume=True, progress=False)


@pytest.mark.slow
def test_install_refuses_a_changed_file_profile_or_dataset(tiny_run, shipped, tmp_path):
    root, _ = shipped
    config = _config(tiny_run)
    data = PreparedDataset(json.loads((tiny_run / "run.json").read_text())["data_dir"])
    folder = pretrained.pretrained_dir("smoke", root) / "rop-seg"
    changed = load_config("smoke", "rop", {"train": {"lr": 0.002}})  # the run's, but lr
    with pytest.raises(CheckpointError, match=r"train\.lr"):
        pretrained.install_run("smoke", "rop", "seg", changed, tmp_path / "a", data, root)
    other = shutil.copytree(data.path, tmp_path / "other-data")
    (other / "manifest.csv").write_text((other / "manifest.csv").read_text() + "\n")
    meta = json.loads((other / "dataset.json").read_text())
    (other / "dataset.json").write_text(json.dumps(meta | {"preprocessing_version": "0"}))
    with pytest.raises(CheckpointError, match="fingerprint"):  # another preprocessing
        pretrained.install_run("smoke", "rop", "seg", config, tmp_path / "b",
                               PreparedDataset(other), root)
    (other / "dataset.json").write_text(json.dumps(meta | {"source": str(tmp_path)}))
    with pytest.raises(CheckpointError, match="fingerprint"):  # real data: never a shipped run's
        pretrained.install_run("smoke", "rop", "seg", config, tmp_path / "b",
                               PreparedDataset(other), root)
    with open(folder / "generator.pt", "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(CheckpointError, match="sha256"):
        pretrained.install_run("smoke", "rop", "seg", config, tmp_path / "c", data, root)
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_the_same_phantom_recipe_prepared_elsewhere_installs_with_a_note(tiny_run, shipped,
                                                                       tmp_path, capsys):
    """OpenCV and NumPy pick their SIMD kernels by CPU: the phantom data of one recipe are not
    byte for byte alike on every machine, and a shipped run must still install, saying so."""
    from pggan_core.latent.encoder import encode_run
    from pggan_core.runs.folder import RunSpec

    root, _ = shipped
    data = PreparedDataset(json.loads((tiny_run / "run.json").read_text())["data_dir"])
    other = shutil.copytree(data.path, tmp_path / "other-data")
    top = other / f"res_{data.max_resolution:03d}.npy"  # what the fingerprint reads
    pixels = np.load(top)
    pixels[0, 0, 0, 0] ^= 1  # one value one step off, as another code path may round it
    np.save(top, pixels)
    out = pretrained.install_run("smoke", "rop", "seg", _config(tiny_run),
                                 RunSpec("rop", "smoke").folder(root), PreparedDataset(other),
                                 root)
    assert "not byte for byte alike" in capsys.readouterr().out
    assert is_finished(out, _config(tiny_run), data=PreparedDataset(other).data_record())
    note = " ".join(pretrained.pretrained_note(out).split())
    assert PreparedDataset(other).fingerprint()[:12] in note and "differ slightly" in note
    assert pretrained.pretrained_note(tiny_run) is None
    # what is computed here against those data is not shipped as the training data's
    encode_run(out, progress=False)
    manifest = (pretrained.pretrained_dir("smoke", root) / pretrained.MANIFEST).read_bytes()
    with pytest.raises(CheckpointError, match="not byte for byte"):
        shipping.ship_current_results("smoke", ("rop",), root)
    assert (pretrained.pretrained_dir("smoke", root) / pretrained.MANIFEST).read_bytes() == \
        manifest


@pytest.mark.slow
def test_ship_results_adds_current_encoders_keeps_shipped_records_refuses_stale(
        tiny_run, shipped, tmp_path):
    from pggan_core.latent.encoder import encode_run
    from pggan_core.latent.indomain import invert_run
    from pggan_core.runs.folder import RunSpec

    root, _ = shipped
    data = PreparedDataset(json.loads((tiny_run / "run.json").read_text())["data_dir"])
    out = pretrained.install_run("smoke", "rop", "seg", _config(tiny_run),
                                 RunSpec("rop", "smoke").folder(root), data, root)
    encode_run(out, progress=False)
    invert_run(out, progress=False)
    assert sorted(shipping.ship_current_results("smoke", ("rop",), root)) == [
        f"rop-seg/{name}" for name in ("encoder.json", "encoder.pt", "indomain_encoder.pt",
                                        "inversion.json")]
    folder = pretrained.pretrained_dir("smoke", root) / "rop-seg"
    record = (folder / "encoder.json").read_bytes()
    files = pretrained.read_manifest("smoke", root)["runs"]["rop-seg"]["files"]
    assert {"encoder.pt", "inversion.json"} <= set(files)

    encode_run(out, progress=False)  # the same weights, their record written again
    assert shipping.ship_current_results("smoke", ("rop",), root) == []
    assert (folder / "encoder.json").read_bytes() == record

    # the same weights re-derived by changed code: what is shipped still names the old code
    shipped = json.loads((folder / "inversion.json").read_text())
    name = next(iter(shipped["derivation"]["code"]))
    shipped["derivation"]["code"][name] = "the code before"
    (folder / "inversion.json").write_text(json.dumps(shipped))
    assert sorted(shipping.ship_current_results("smoke", ("rop",), root)) == [
        "rop-seg/indomain_encoder.pt", "rop-seg/inversion.json"]
    assert (folder / "inversion.json").read_bytes() == (out / "inversion.json").read_bytes()

    encode_run(out, iterations=3, progress=False)  # new weights: the in-domain one is stale
    manifest = (pretrained.pretrained_dir("smoke", root) / pretrained.MANIFEST).read_bytes()
    with pytest.raises(CheckpointError, match="inversion.json does not hold"):
        shipping.ship_current_results("smoke", ("rop",), root)
    # refused as a whole: not even the new encoder, which holds, was shipped
    assert (pretrained.pretrained_dir("smoke", root) / pretrained.MANIFEST).read_bytes() == \
        manifest


# `pggan train` as a lane runs it, but the process dies right after its step-8 checkpoint
DIES_AFTER_STEP_8 = """
import sys
from pggan_core.cli import main
from pggan_core.training import checkpoint

save = checkpoint.save_checkpoint

def save_then_die(folder, state):
    save(folder, state)
    if state["step"] == 8:
        raise SystemExit(3)

checkpoint.save_checkpoint = save_then_die
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.e2e
def test_train_and_export_ships_all_four_runs_and_resumes_where_it_stopped(
        tiny_run, tmp_path, monkeypatch):
    """The command that makes the shipped runs, on the smoke profile, end to end: its first
    attempt stops (one lane's training dies mid-run), the same command again finishes it from
    its last checkpoint and leaves what was done alone."""
    # its own home: it prepares, trains and encodes all four smoke runs, as the command does
    monkeypatch.setenv("PGGAN_HOME", str(tmp_path))
    real_run = subprocess.run

    def one_lane_dies(command, *args, **kwargs):
        if command[:2] == ["pggan", "train"] and "runs/rop/smoke/seg" in command:
            command = [sys.executable, "-c", DIES_AFTER_STEP_8, *command[1:]]
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(shipping.subprocess, "run", one_lane_dies)
    with pytest.raises(subprocess.CalledProcessError):
        shipping.train_and_export("smoke", root=tmp_path)
    monkeypatch.undo()
    monkeypatch.setenv("PGGAN_HOME", str(tmp_path))
    runs = tmp_path / "runs"
    assert not pretrained.read_manifest("smoke", tmp_path)  # nothing exported half-way
    assert load_checkpoint_step(runs / "rop/smoke/seg") == 8
    done = {path: path.stat().st_mtime_ns for path in runs.glob("*/smoke/*/checkpoints/*")
            if "rop/smoke/seg" not in str(path)}
    assert done

    manifest = shipping.train_and_export("smoke", root=tmp_path)
    assert {path: path.stat().st_mtime_ns for path in done} == done  # not trained again
    # resumed from step 8, it is the run trained straight through (the shared tiny run)
    z = torch.randn(3, _config(tiny_run).model.latent_dim)
    resumed, straight = load_generator(runs / "rop/smoke/seg")[0], load_generator(tiny_run)[0]
    assert torch.equal(resumed(z, 16), straight(z, 16))
    assert sorted(manifest["runs"]) == ["brats-noseg", "brats-seg", "rop-noseg", "rop-seg"]
    seg, noseg = manifest["runs"]["rop-seg"], manifest["runs"]["rop-noseg"]
    assert seg["command"].startswith("pggan train --data data/prepared/rop-smoke --profile "
                                     "smoke --out runs/rop/smoke/seg --threads 1 --resume")
    assert "&& pggan encode --run runs/rop/smoke/seg" in seg["command"]
    assert "&& pggan invert --run runs/rop/smoke/seg" in seg["command"]
    assert "--no-segmentation" in noseg["command"] and "encode" not in noseg["command"]
    for name in ("encoder.pt", "indomain_encoder.pt", "inversion.json"):
        assert name in seg["files"] and name not in noseg["files"]
    assert manifest["profile"] == "smoke" and "cores" in manifest["hardware"]
    config = load_config("smoke", "rop")
    assert pretrained.ships("smoke", "rop", "noseg", config, tmp_path)


def load_checkpoint_step(run) -> int:
    from pggan_core.training.checkpoint import load_latest

    return load_latest(run / "checkpoints")["step"]


def test_the_shipped_demo_runs_match_the_demo_profile_and_their_hashes():
    """The committed runs are what `pggan book` will install: a demo.yaml edited without
    re-exporting them, or a changed file, fails here rather than in a reader's build."""
    from pggan_core.data.store import sha256_of
    from pggan_core.paths import repo_root
    from pggan_core.runs.folder import run_config
    from pggan_core.segmentation.vessels import unet_settings

    root = repo_root()  # where the runs are committed, wherever PGGAN_HOME points
    manifest = pretrained.read_manifest("demo", root)
    # the book's four, and training seeds of Figure 3 (``<dataset>-<variant>-seed<N>``)
    assert {"brats-noseg", "brats-seg", "rop-noseg", "rop-seg"} <= set(manifest["runs"])
    total = 0
    for key, entry in manifest["runs"].items():
        dataset, variant = key.split("-", 1)
        seed = int(variant.split("-seed")[1]) if "-seed" in variant else 0
        config = run_config(dataset, "demo", seed)
        assert pretrained.ships("demo", dataset, variant, config, root), key
        folder = pretrained.pretrained_dir("demo", root) / key
        for name, digest in entry["files"].items():
            assert sha256_of(folder / name) == digest, f"{key}/{name}"
            total += (folder / name).stat().st_size
        assert ("encoder.pt" in entry["files"]) == (variant == "seg")
    # the U-Net that drew the fundus runs' vessel channel, for the demo's settings
    unet = manifest[pretrained.VESSEL_UNET]
    assert unet["config"] == json.loads(json.dumps(unet_settings(run_config("rop", "demo"))))
    for name, digest in unet["files"].items():
        path = pretrained.pretrained_dir("demo", root) / pretrained.VESSEL_UNET / name
        assert sha256_of(path) == digest, name
        total += path.stat().st_size
    assert total < 20 * 2**20  # the cap on committed weights


def test_the_shipped_vessel_unet_is_installed_only_for_its_settings(tmp_path, monkeypatch):
    from pggan_core.runs.folder import run_config
    from pggan_core.segmentation.vessels import unet_settings

    root, home = tmp_path / "checkout", tmp_path / "home"
    folder = pretrained.pretrained_dir("smoke", root) / pretrained.VESSEL_UNET
    folder.mkdir(parents=True)
    (folder / "vessel_unet.pt").write_bytes(b"weights")
    (folder / "vessel_unet.json").write_text("{}")
    config = run_config("rop", "smoke")
    files = {name: pretrained.sha256_of(folder / name) for name in ("vessel_unet.pt",
                                                                    "vessel_unet.json")}
    (folder.parent / pretrained.MANIFEST).write_text(json.dumps({"runs": {}, "vessel_unet": {
        "config": json.loads(json.dumps(unet_settings(config))), "files": files}}))
    monkeypatch.setenv("PGGAN_HOME", str(home))
    other = load_config("smoke", "rop", {"vessels": {"iterations": 11}})
    assert not pretrained.install_vessel_unet("smoke", other, root)  # trained otherwise
    assert pretrained.install_vessel_unet("smoke", config, root)
    installed = home / "runs" / "vessels" / "smoke"
    assert (installed / "vessel_unet.pt").read_bytes() == b"weights"
    assert not pretrained.install_vessel_unet("smoke", config, root)  # one is there: kept
    (installed / "vessel_unet.pt").unlink()
    (folder / "vessel_unet.pt").write_bytes(b"changed")
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        pretrained.install_vessel_unet("smoke", config, root)


def test_train_and_export_trains_under_pggan_home_and_ships_into_the_checkout(tmp_path,
                                                                               monkeypatch):
    """Runs go where PGGAN_HOME says (a scratch disk); the shipped files go to the checkout's
    data/pretrained, which the repository commits (``pretrained_dir(profile, None)``)."""
    monkeypatch.setenv("PGGAN_HOME", str(tmp_path))
    commands, exported = [], []
    monkeypatch.setattr(shipping.subprocess, "run",
                        lambda command, cwd, check: commands.append((command, cwd)))
    monkeypatch.setattr(shipping, "export_run", lambda out, profile, dataset, variant, command,
                        wall, root: exported.append((out, root)) or {})
    shipping.train_and_export("smoke", datasets=("brats",), lanes=1)
    assert {cwd for _, cwd in commands} == {tmp_path}
    assert [root for _, root in exported] == [None, None]
    assert all(out.is_relative_to(tmp_path) for out, _ in exported)
