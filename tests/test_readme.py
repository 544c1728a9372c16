"""The README's two set-up commands are the ones CI and users run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands_pinning_the_cpu_torch():
    commands = _setup_commands()
    assert len(commands) == 2
    assert all("torch==2.13.0" in c for c in commands)
    assert "pggan book --profile demo" in commands[0]
    assert "pytest" in commands[1]
    assert "ruff check" in commands[1]  # so CI, which runs this command, lints too


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _setup_commands()[1] in ci


def test_the_fast_subset_the_readme_names_is_a_registered_marker():
    import tomllib

    pytest_config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    options = pytest_config["ini_options"]
    assert "--strict-markers" in options["addopts"]  # a misspelt marker fails, not deselects
    assert {m.split(":")[0] for m in options["markers"]} == {"slow", "e2e"}
    assert 'python -m pytest -m "not slow"' in (ROOT / "README.md").read_text()


def test_every_library_function_the_readme_and_the_method_page_name_exists():
    """The README points to ``book/method.md`` for the paper's steps and the code that runs
    them (its *Where things live*): every ``module:name`` either names must exist."""
    import importlib

    text = "\n".join((ROOT / page).read_text() for page in ("README.md", "book/method.md"))
    named = re.findall(r"`(pggan_core[\w.]*):(\w+)`", text)
    assert len(named) >= 10
    for module, name in named:
        assert hasattr(importlib.import_module(module), name), f"{module}:{name}"


def test_the_readme_is_short_and_its_first_screen_holds_the_set_up():
    """What it is, the two commands, what you get and where to start fit one screen; the rest
    lives in the book (``book/method.md``, ``book/reproduce.md``)."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 8 * 1024
    first_screen = "\n".join(readme.splitlines()[:60])
    assert all(command in first_screen for command in _setup_commands())
    assert "## Where to start" in first_screen
