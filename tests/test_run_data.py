"""Runs know their data: a phantom run and a run on a user's folder coexist, and neither is
ever reused or resumed on the other's data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pggan_core.errors import DataMismatchError
from pggan_core.paths import PHANTOM, data_name, prepared_dir
from pggan_core.runs.folder import RunSpec, require_trained_run, run_config
from pggan_core.runs.reuse import ensure_run
from pggan_core.training.checkpoint import LATEST, load_latest
from pggan_core.training.trainer import train


@pytest.fixture
def home(tiny_home, tmp_path, monkeypatch) -> Path:
    """A home of its own, holding a copy of the shared phantom run and its prepared data (the
    tests write into both): ``ensure_run("rop", "smoke")`` finds that run finished."""
    home = shutil.copytree(tiny_home, tmp_path / "home")
    monkeypatch.setenv("PGGAN_HOME", str(home))
    return home


def test_data_names_are_readable_and_tell_same_named_folders_apart(tmp_path):
    assert data_name(None) == PHANTOM
    first, second = tmp_path / "a" / "data", tmp_path / "b" / "data"
    assert data_name(first).startswith("data-") and data_name(first) != data_name(second)
    assert data_name(tmp_path / "Überweisung ü").startswith("Überweisung_ü-")
    assert RunSpec("rop", "demo").folder(tmp_path) == tmp_path / "runs" / "rop" / "demo" / "seg"
    assert RunSpec("rop", "demo", False, source=first).folder(tmp_path) == \
        tmp_path / "runs" / "rop" / "demo" / data_name(first) / "noseg"
    assert prepared_dir("rop", "demo", tmp_path, first).name == f"rop-demo-{data_name(first)}"
    # a seed other than 0 names its own folders, for the data and the run alike, so two seeds
    # never replace each other; seed 0 (every default, the shipped runs) adds nothing
    seeded = RunSpec("rop", "demo", False, seed=2, source=first)
    assert seeded.folder(tmp_path) == \
        tmp_path / "runs" / "rop" / "demo" / data_name(first) / "noseg-seed2"
    assert seeded.data_folder(tmp_path).name == f"rop-demo-{data_name(first)}-seed2"
    assert seeded.variant == "noseg" and seeded.config().data.seed == 2


@pytest.mark.slow
def test_phantom_and_folder_runs_coexist_and_refuse_each_others_data(home, drive_folder):
    copied = RunSpec("rop", "smoke").folder(home) / "checkpoints" / LATEST
    stamp = copied.stat().st_mtime_ns
    phantom_run = ensure_run("rop", "smoke", progress=False)
    assert phantom_run == copied.parents[1]
    assert copied.stat().st_mtime_ns == stamp  # the copied run is finished: reused as it is
    folder_run = ensure_run("rop", "smoke", source=drive_folder, progress=False)
    assert phantom_run != folder_run and folder_run.parent.name == data_name(drive_folder)
    phantom_info = json.loads((phantom_run / "run.json").read_text())
    folder_info = json.loads((folder_run / "run.json").read_text())
    assert phantom_info["data"]["name"] == PHANTOM
    assert folder_info["data"]["source"] == str(drive_folder.resolve())
    assert folder_info["data"]["n_images"] == 12
    assert folder_info["data"]["vessel_channel"] == "mask"  # DRIVE's manual masks
    assert load_latest(folder_run / "checkpoints")["data"] == folder_info["data"]

    # asked again, each is reused as it is: nothing retrained
    stamp = (phantom_run / "checkpoints" / LATEST).stat().st_mtime_ns
    assert ensure_run("rop", "smoke", progress=False) == phantom_run
    assert ensure_run("rop", "smoke", source=drive_folder, progress=False) == folder_run
    assert (phantom_run / "checkpoints" / LATEST).stat().st_mtime_ns == stamp

    # resuming the phantom run on the folder's data is refused, naming both
    config = run_config("rop", "smoke")
    with pytest.raises(DataMismatchError) as refused:
        train(config, prepared_dir("rop", "smoke", source=drive_folder), phantom_run,
              resume=True, progress=False)
    message = str(refused.value)
    assert "phantom" in message and data_name(drive_folder) in message and "--out" in message
    assert "\n" not in message

    # a run folder holding a run on other data is never reused for this data
    shutil.rmtree(folder_run)
    shutil.copytree(phantom_run, folder_run)
    with pytest.raises(DataMismatchError, match="move or delete"):
        ensure_run("rop", "smoke", source=drive_folder, progress=False)


@pytest.mark.slow
def test_a_run_from_before_runs_recorded_their_data_is_set_aside_not_trusted(home):
    run = ensure_run("rop", "smoke", progress=False)
    info = json.loads((run / "run.json").read_text())
    del info["data"]
    (run / "run.json").write_text(json.dumps(info))
    assert ensure_run("rop", "smoke", progress=False) == run
    assert json.loads((run / "run.json").read_text())["data"]["name"] == PHANTOM
    kept = list(run.parent.glob("seg.stale-*"))
    assert len(kept) == 1 and (kept[0] / "checkpoints" / LATEST).is_file()


@pytest.mark.slow
def test_a_run_trained_from_the_cli_with_a_seed_is_the_books_run_for_that_seed(tmp_path,
                                                                               monkeypatch):
    from pggan_core.cli import main

    monkeypatch.setenv("PGGAN_HOME", str(tmp_path))
    spec = RunSpec("rop", "smoke", seed=1)
    data, out = spec.data_folder(), spec.folder()
    assert main(["data", "prepare", "--dataset", "rop", "--profile", "smoke", "--seed", "1",
                 "--out", str(data)]) == 0
    assert main(["train", "--data", str(data), "--profile", "smoke", "--seed", "1",
                 "--out", str(out)]) == 0
    stamp = (out / "checkpoints" / LATEST).stat().st_mtime_ns
    # the book's seed=1 (ensure_run -> run_config) finds it finished: reused, not retrained
    assert ensure_run("rop", "smoke", seed=1, progress=False) == out
    assert (out / "checkpoints" / LATEST).stat().st_mtime_ns == stamp
    assert not list(out.parent.glob("seg*.stale-*"))  # nothing set aside as "another run"
    assert require_trained_run(spec) == out  # what notebooks 04-08 read with seed = 1
    assert run_config("rop", "smoke", 1).data.seed == run_config("rop", "smoke", 1).train.seed == 1


def test_open_run_reads_the_run_and_finds_its_data_by_one_rule(home):
    from pggan_core.errors import CheckpointError, RunNotFoundError
    from pggan_core.runs.folder import open_run
    from pggan_core.training.run_info import read_run_info

    run = RunSpec("rop", "smoke").folder(home)
    opened = open_run(run)
    assert opened.info.dataset == "rop" and opened.info.finished
    assert opened.channels == ["R", "G", "B", "vessel"] and opened.resolution == 16
    assert opened.config.profile == "smoke"
    assert read_run_info(run).to_dict() == json.loads((run / "run.json").read_text())
    assert opened.data.path == Path(opened.info.data_dir)  # the folder it recorded
    # a recorded folder that is gone (a moved checkout): the profile's folder for that data
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "data_dir": str(home / "moved")}))
    assert open_run(run).data.path == prepared_dir("rop", "smoke", home)

    (run / "run.json").write_text('{"dataset": "rop", "sterps": 3}')
    with pytest.raises(CheckpointError, match="run.json.*missing.*unknown.*sterps"):
        open_run(run)
    (run / "run.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="run.json: unreadable"):
        open_run(run)
    (run / "run.json").unlink()
    with pytest.raises(RunNotFoundError, match="pggan train --out"):
        open_run(run)
