"""Derived results say what they were computed from and are never quoted once it changed:
metrics.json, the encoder, the augmentation study, installed shipped runs, the results table.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pggan_book import shipping
from pggan_core import provenance
from pggan_core.config import load_config
from pggan_core.data.store import PreparedDataset
from pggan_core.evaluation.evaluate import ensure_evaluated
from pggan_core.provenance import code_hashes, code_that_ran, derivation, stale_reason
from pggan_core.runs import shipped
from pggan_core.runs.folder import stale_result
from pggan_core.training.checkpoint import load_generator, weights_fingerprint


def _perturb_generator(run: Path) -> None:
    """Change the run's generator weights in place (every checkpoint of it)."""
    for path in (run / "checkpoints").glob("*.pt"):
        state = torch.load(path, weights_only=False)
        for key in ("G_ema", "G"):
            if state.get(key) is not None:
                name = next(iter(state[key]))
                state[key][name] = state[key][name] + 0.5
        torch.save(state, path)


def test_a_derivation_names_what_changed():
    config = load_config("smoke", "rop")
    code = ["pggan_core.measures.swd:sliced_wasserstein"]
    saved = derivation("metrics", "a" * 64, config, code)
    assert stale_reason(saved, "metrics", "a" * 64, config) is None
    assert "weights" in stale_reason(saved, "metrics", "b" * 64, config)
    other = load_config("smoke", "rop", {"eval": {"n_generated": 7, "n_auc_images": 3}})
    reason = stale_reason(saved, "metrics", "a" * 64, other)
    assert "eval.n_generated" in reason and "eval.n_auc_images" in reason  # every key named
    changed = {**saved, "code": {code[0]: "0" * 16}}
    assert "pggan_core.measures.swd:sliced_wasserstein" in stale_reason(
        changed, "metrics", "a" * 64, config)
    gone = {**saved, "code": {"pggan_core.measures.swd:no_such_function": "0" * 16}}
    assert "no_such_function" in stale_reason(gone, "metrics", "a" * 64, config)
    assert "no derivation" in stale_reason(None, "metrics", "a" * 64, config)
    old_format = {**saved, "code": ["pggan_core.measures.swd"]}  # a hand-kept list of names
    assert "named the code that ran" in stale_reason(old_format, "metrics", "a" * 64, config)


def test_the_code_that_ran_is_recorded_not_listed():
    from pggan_core.measures.swd import sliced_wasserstein

    images = np.random.default_rng(0).uniform(-1, 1, (8, 3, 16, 16)).astype(np.float32)
    with code_that_ran() as ran:
        sliced_wasserstein(images, images[::-1].copy(), seed=0)
    # the function called, the helpers it called in turn, and their modules' constants
    assert "pggan_core.measures.swd:sliced_wasserstein" in ran
    assert "pggan_core.measures.swd" in ran
    assert len([n for n in ran if n.startswith("pggan_core.measures.swd:")]) > 1
    assert not any(n.startswith(("numpy", "torch", "pggan_core.provenance")) for n in ran)
    assert sys.gettrace() is None  # the watch ends with the block


def test_a_code_hash_ignores_docstrings_comments_and_layout(tmp_path, monkeypatch):
    module = tmp_path / "watched_module.py"
    module.write_text('LIMIT = 3\n\ndef f(x):\n    """Doc."""\n    return x + LIMIT\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.import_module("watched_module")
    with code_that_ran() as ran:
        sys.modules["watched_module"].f(1)
    assert ran == {"watched_module", "watched_module:f"}
    before = code_hashes(ran)
    provenance._module_units.cache_clear()
    module.write_text('LIMIT = 3  # why\n\ndef f(x):\n    """Other words."""\n\n'
                      '    return x + LIMIT\n')
    assert code_hashes(ran) == before
    provenance._module_units.cache_clear()
    module.write_text('LIMIT = 4\n\ndef f(x):\n    return x + LIMIT\n')
    after = code_hashes(ran)
    assert after["watched_module:f"] == before["watched_module:f"]
    assert after["watched_module"] != before["watched_module"]  # the constant it reads
    provenance._module_units.cache_clear()


def test_a_watch_hands_events_on_to_a_debugger_or_coverage():
    seen = []

    def outer_tracer(frame, event, arg):
        seen.append(frame.f_code.co_name)

    sys.settrace(outer_tracer)
    try:
        with code_that_ran():
            load_config("smoke", "rop")
        assert sys.gettrace() is outer_tracer
    finally:
        sys.settrace(None)
    assert "load_config" in seen


@pytest.mark.slow
def test_new_weights_under_a_newer_metrics_json_give_new_numbers(tiny_run_copy):
    first = ensure_evaluated(tiny_run_copy, progress=False)
    assert first["derivation"]["generator_sha256"] == weights_fingerprint(
        load_generator(tiny_run_copy)[0])
    saved = tiny_run_copy / "metrics.json"
    written = saved.stat().st_mtime_ns
    reused = ensure_evaluated(tiny_run_copy, progress=False)  # still holds: read, not redone
    assert json.dumps(reused, sort_keys=True) == json.dumps(first, sort_keys=True)
    assert saved.stat().st_mtime_ns == written
    _perturb_generator(tiny_run_copy)
    later = time.time() + 60  # newer than the weights: a date proves nothing
    os.utime(saved, (later, later))
    again = ensure_evaluated(tiny_run_copy, progress=False)
    assert again["derivation"]["generator_sha256"] != first["derivation"]["generator_sha256"]
    assert again["swd_mean"] != first["swd_mean"]


@pytest.mark.slow
def test_the_results_table_names_a_stale_file_instead_of_quoting_it(tiny_home, tmp_path,
                                                                    monkeypatch):
    import shutil

    from pggan_book.results_table import NOT_COMPUTED, claims_table, read_results
    from pggan_core.runs.folder import RunSpec

    home = Path(shutil.copytree(tiny_home, tmp_path / "home"))
    run = RunSpec("rop", "smoke").folder(home)
    info = json.loads((run / "run.json").read_text())
    info["data_dir"] = str(home / Path(info["data_dir"]).relative_to(tiny_home))
    (run / "run.json").write_text(json.dumps(info))
    ensure_evaluated(run, progress=False)
    assert read_results("rop", "smoke", home)["swd_mean"] > 0
    _perturb_generator(run)
    results = read_results("rop", "smoke", home)
    assert "swd_mean" not in results and "metrics.json" in results["_stale"]
    cell = claims_table("smoke", ("rop",), root=home).iloc[1]["ROP"]
    assert cell.startswith(NOT_COMPUTED) and "metrics.json set aside" in cell


@pytest.mark.slow
def test_an_encoder_of_other_weights_is_not_reused(tiny_run_copy):
    from pggan_core.latent.encoder import encode_run

    first = encode_run(tiny_run_copy, iterations=4, progress=False)
    assert not first["reused"]
    assert encode_run(tiny_run_copy, iterations=4, progress=False)["reused"]
    assert stale_result(tiny_run_copy, "encoder", first["derivation"]) is None
    _perturb_generator(tiny_run_copy)
    assert not encode_run(tiny_run_copy, iterations=4, progress=False)["reused"]


@pytest.mark.slow
def test_an_installed_shipped_run_is_checked_again(tiny_run, tmp_path):
    root = tmp_path / "repo"
    shipping.export_run(tiny_run, "smoke", "rop", "seg", "pggan train ...", 1.0, root=root)
    config = load_generator(tiny_run)[1]["config"]
    data = PreparedDataset(json.loads((tiny_run / "run.json").read_text())["data_dir"])
    out = shipped.install_run("smoke", "rop", "seg", config, tmp_path / "installed", data, root)
    assert shipped.installed_problem(out, "smoke", "rop", "seg", root) is None
    # the repository ships another run now (re-exported): the installed copy is out of date
    manifest = json.loads((shipped.pretrained_dir("smoke", root) / "manifest.json").read_text())
    manifest["runs"]["rop-seg"]["files"]["generator.pt"] = "0" * 64
    (shipped.pretrained_dir("smoke", root) / "manifest.json").write_text(json.dumps(manifest))
    assert "changed since it was installed" in shipped.installed_problem(
        out, "smoke", "rop", "seg", root)
    # the installed copy itself was changed (its weights), the shipped files were not
    fresh = tmp_path / "fresh"
    shipping.export_run(tiny_run, "smoke", "rop", "seg", "pggan train ...", 1.0, root=fresh)
    out = shipped.install_run("smoke", "rop", "seg", config, tmp_path / "again", data, fresh)
    with open(out / "generator.pt", "ab") as fh:
        fh.write(b"changed")
    assert "no longer matches its sha256" in shipped.installed_problem(
        out, "smoke", "rop", "seg", fresh)
