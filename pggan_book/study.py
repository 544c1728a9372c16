"""The quality study, read from the checkout for the book's quality page: ``benchmarks/quality``
holds its configurations, rows, fits, tables and figures. It is no part of the installed
package, which never imports it; only ``quality_study`` loads it, when the page asks.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

from pggan_core.errors import BookError
from pggan_core.paths import repo_root


def quality_study() -> ModuleType:
    """The checkout's ``benchmarks.quality`` package (``repo_root()``; ``benchmarks`` is a
    folder of scripts, not an installed package): its ``results.read_rows()`` are the study's
    rows, its ``tables``, ``trends`` and ``figures`` what the page shows of them. BookError
    where the checkout has no study (the package installed on its own)."""
    if "benchmarks" not in sys.modules:  # else imported already: by the runner, or earlier
        folder = repo_root() / "benchmarks"
        if not (folder / "quality" / "__init__.py").is_file():
            raise BookError(f"{folder / 'quality'} is missing: the quality study lives in the "
                            "project's repository, beside the package")
        # ``benchmarks`` as the namespace package Python would make of the folder, had the
        # checkout been on sys.path; the study's modules are then imported as usual
        spec = importlib.machinery.ModuleSpec("benchmarks", None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        sys.modules["benchmarks"] = importlib.util.module_from_spec(spec)
    return importlib.import_module("benchmarks.quality")
