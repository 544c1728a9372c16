"""The papermill handler: `papermill notebooks/x.md out.ipynb -p ...` on jupytext sources."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from pggan_book.papermill_io import JupytextHandler

NOTEBOOK = '''---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---
# Tiny

```{code-cell} ipython3
:tags: [parameters]

dataset = "rop"
profile = "demo"
seed = 0
```

```{code-cell} ipython3
print(f"ran {dataset} {profile} {seed}")
```
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_tiny.md").write_text(NOTEBOOK)
    return tmp_path


def test_read_converts_myst_to_ipynb_json(project: Path):
    text = JupytextHandler.read(str(project / "notebooks" / "01_tiny.md"))
    notebook = nbformat.reads(text, as_version=4)
    assert notebook.cells[1].metadata["tags"] == ["parameters"]
    assert 'dataset = "rop"' in notebook.cells[1].source


def test_read_passes_ipynb_through(tmp_path: Path):
    path = tmp_path / "a.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    assert json.loads(JupytextHandler.read(str(path)))["nbformat"] == 4


def test_write_needs_an_existing_folder(tmp_path: Path):
    JupytextHandler.write("{}", str(tmp_path / "out.ipynb"))
    assert (tmp_path / "out.ipynb").read_text() == "{}"
    with pytest.raises(FileNotFoundError, match="doesn't exist"):
        JupytextHandler.write("{}", str(tmp_path / "missing" / "out.ipynb"))
    assert JupytextHandler.listdir(str(tmp_path)) == [str(tmp_path / "out.ipynb")]


@pytest.mark.slow
def test_the_command_users_type_runs_the_md_notebook(project: Path):
    """The entry points in pyproject.toml route `notebooks/...` to the handler."""
    papermill = [sys.executable, "-m", "papermill"]
    done = subprocess.run([*papermill, "notebooks/01_tiny.md", "out.ipynb", "-p", "dataset",
                           "brats", "-p", "seed", "3", "--no-progress-bar"],
                          cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    executed = nbformat.read(project / "out.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "ran brats demo 3" in printed
    help_text = subprocess.run([*papermill, "--help-notebook", "./notebooks/01_tiny.md"],
                               cwd=project, capture_output=True, text=True).stdout
    assert all(name in help_text for name in ("dataset", "profile", "seed"))
