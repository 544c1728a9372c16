"""A papermill I/O handler that reads the jupytext MyST notebooks in ``notebooks/``.

papermill 2.x parses every input as ``.ipynb`` JSON, so ``papermill notebooks/03_train.md ...``
fails with ``NotJSONError`` (papermill issue #365). papermill picks the first registered handler
whose name is a prefix of the path, and ``pyproject.toml`` registers this class under the names
``notebooks/`` and ``./notebooks/``. So the command a reader types from the repository root works:

    papermill notebooks/03_train.md out.ipynb -p dataset rop

Reading converts ``.md``/``.py`` sources with jupytext; everything else (``.ipynb`` inputs,
all writes, listing) behaves like papermill's own local handler.
"""

from __future__ import annotations

import os
from pathlib import Path

import jupytext
import nbformat

JUPYTEXT_SUFFIXES = (".md", ".py")


class JupytextHandler:
    """papermill ``papermill.io`` handler: jupytext sources in, plain local files out."""

    @staticmethod
    def read(path: str) -> str:
        """The notebook at ``path`` as ``.ipynb`` JSON text (converted if it is a jupytext file)."""
        if Path(path).suffix in JUPYTEXT_SUFFIXES:
            return nbformat.writes(jupytext.read(path))
        return Path(path).read_text(encoding="utf-8")

    @staticmethod
    def write(buf: str, path: str) -> None:
        """Write ``buf`` to ``path``; like papermill, the folder must already exist."""
        folder = os.path.dirname(path)
        if folder and not os.path.isdir(folder):
            raise FileNotFoundError(f"output folder {folder} doesn't exist.")
        Path(path).write_text(buf, encoding="utf-8")

    @staticmethod
    def listdir(path: str) -> list[str]:
        """The entries of the folder ``path``, as paths."""
        return [os.path.join(path, name) for name in os.listdir(path)]

    @staticmethod
    def pretty_path(path: str) -> str:
        """Paths print as given."""
        return path
