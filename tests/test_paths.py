"""One rule finds the checkout (``paths.repo_root``); ``PGGAN_HOME`` moves only what is made.

Each test builds fake checkouts (a folder holding ``_config.yml`` and ``pggan_core/``) under
``tmp_path``, moves the working directory and points ``paths.PACKAGE_DIR`` (where the imported
package lives) at one of them or at a folder outside any checkout, as a wheel install is.
"""

from pathlib import Path

import pytest

from pggan_core import paths
from pggan_core.errors import ConfigError
from pggan_core.runs.folder import RunSpec
from pggan_core.runs.shipped import pretrained_dir


def checkout(folder: Path) -> Path:
    """A fake checkout at ``folder``: what ``paths.checkout_of`` looks for, and notebooks/."""
    (folder / "pggan_core").mkdir(parents=True)
    (folder / "notebooks").mkdir()
    (folder / "_config.yml").write_text("title: fake\n")
    return folder.resolve()


@pytest.fixture
def no_home(monkeypatch):
    monkeypatch.delenv("PGGAN_HOME", raising=False)


def installed_from(monkeypatch, folder: Path) -> None:
    """Make ``folder`` the imported package's folder."""
    monkeypatch.setattr(paths, "PACKAGE_DIR", folder / "pggan_core")


def test_the_checkout_holding_the_cwd_is_the_root_from_any_folder_inside_it(
        tmp_path, monkeypatch, no_home):
    clone = checkout(tmp_path / "clone")
    installed_from(monkeypatch, clone)
    for cwd in (clone, clone / "notebooks"):
        monkeypatch.chdir(cwd)
        assert paths.repo_root() == clone
        assert paths.home() == clone  # data and runs beside it, unless PGGAN_HOME says


def test_outside_any_checkout_the_imported_packages_checkout_is_the_root(
        tmp_path, monkeypatch, no_home):
    clone = checkout(tmp_path / "clone")
    installed_from(monkeypatch, clone)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert paths.repo_root() == clone


def test_a_package_installed_outside_a_checkout_takes_the_cwds_checkout_else_the_cwd(
        tmp_path, monkeypatch, no_home):
    site = tmp_path / "site-packages"
    (site / "pggan_core").mkdir(parents=True)
    installed_from(monkeypatch, site)
    clone = checkout(tmp_path / "clone")
    monkeypatch.chdir(clone / "notebooks")
    assert paths.repo_root() == clone
    monkeypatch.chdir(tmp_path)
    assert paths.repo_root() == tmp_path.resolve()


def test_a_cwd_in_another_checkout_than_the_packages_is_refused_naming_both_and_the_fix(
        tmp_path, monkeypatch, no_home):
    first, second = checkout(tmp_path / "first"), checkout(tmp_path / "second")
    installed_from(monkeypatch, first)  # `pip install -e .` ran in the first clone
    monkeypatch.chdir(second / "notebooks")
    with pytest.raises(ConfigError) as refused:
        paths.repo_root()
    message = str(refused.value)
    assert str(first) in message and str(second) in message
    assert "pip install -e ." in message and f"PYTHONPATH={second}" in message
    # PGGAN_HOME moves data and runs, not which checkout's notebooks and shipped runs are read
    monkeypatch.setenv("PGGAN_HOME", str(tmp_path / "home"))
    assert paths.home() == (tmp_path / "home").resolve()
    with pytest.raises(ConfigError):
        pretrained_dir("demo")


def test_the_book_refuses_a_second_clone_before_touching_the_firsts_build(
        tmp_path, monkeypatch, no_home):
    """The issue's case: ``pggan book`` in a second clone while the package is installed from
    the first used to take the first's notebooks and rebuild the first's ``_build/``."""
    pytest.importorskip("jupyter_book")
    from pggan_book.build import build_book
    from pggan_core.cli import main

    first, second = checkout(tmp_path / "first"), checkout(tmp_path / "second")
    site = first / "_build" / "smoke" / "html" / "index.html"
    site.parent.mkdir(parents=True)
    site.write_text("the first clone's book")
    installed_from(monkeypatch, first)
    monkeypatch.chdir(second)
    with pytest.raises(ConfigError, match="pip install -e ."):
        build_book("smoke", ("rop",))
    assert main(["book", "--profile", "smoke"]) == 2  # `error: ...`, not a traceback
    assert site.read_text() == "the first clone's book"
    assert not (second / "_build").exists() and not (second / "runs").exists()


def test_pggan_home_moves_prepared_data_and_runs_but_not_what_the_checkout_ships(
        tmp_path, monkeypatch):
    clone = checkout(tmp_path / "clone")
    installed_from(monkeypatch, clone)
    monkeypatch.chdir(clone)
    home = tmp_path / "scratch"
    monkeypatch.setenv("PGGAN_HOME", str(home))
    home = home.resolve()
    assert paths.home() == home
    assert paths.repo_root() == clone
    assert paths.prepared_dir("rop", "demo") == home / "data" / "prepared" / "rop-demo"
    assert paths.vessel_model_path("demo") == home / "runs" / "vessels" / "demo" / \
        "vessel_unet.pt"
    assert RunSpec("rop", "demo").folder() == home / "runs" / "rop" / "demo" / "seg"
    assert pretrained_dir("demo") == clone / "data" / "pretrained" / "demo"
    monkeypatch.delenv("PGGAN_HOME")
    assert RunSpec("rop", "demo").folder() == clone / "runs" / "rop" / "demo" / "seg"


def test_the_package_under_test_is_the_checkout_the_tests_run_in():
    """The suite itself obeys the rule: its notebooks and its code are one checkout's."""
    root = Path(__file__).resolve().parents[1]
    assert paths.checkout_of(paths.PACKAGE_DIR) == root
    assert paths.repo_root() == root
