"""Running one notebook for the book: papermill, then the executed notebook made fit to publish
(plotly outputs drawn by the site's own plotly.js, parameter cells hidden, titles per dataset).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import papermill

from pggan_core.config import DATASETS
from pggan_core.datasets import dataset_spec
from pggan_core.errors import BookError, ConfigError

NOTEBOOK_PARAMETERS = ("dataset", "profile", "seed", "source")


NOTEBOOK_GLOB = "[0-9][0-9]_*.md"


# the kernel's own log (e.g. "Kernel is running over TCP without encryption", harmless for a
# kernel on this machine) would reach the user's screen once per notebook; its errors still do
KERNEL_QUIET = ["--IPKernelApp.log_level=ERROR"]


def discover_notebooks(root: Path) -> list[Path]:
    """The book's notebooks, ``notebooks/NN_name.md``, in number order."""
    return sorted((root / "notebooks").glob(NOTEBOOK_GLOB))


def notebook_datasets(source: Path) -> tuple[str, ...]:
    """The datasets a notebook is built for, as its front matter declares them:
    ``pggan: {datasets: [rop, brats]}`` (the vessel chapter says ``[rop]``). ConfigError,
    naming the notebook and the fix, when it declares none or an unknown one."""
    declared = (jupytext.read(source).metadata.get("pggan") or {}).get("datasets")
    if not declared or not set(declared) <= set(DATASETS):
        raise ConfigError(f"{source}: its front matter must declare the datasets it is built "
                          f"for, e.g. `pggan: {{datasets: [rop, brats]}}` (known: "
                          f"{', '.join(DATASETS)}); it says {declared!r}")
    return tuple(declared)


def execute_notebook(source: Path, dest: Path, parameters: dict[str, Any], cwd: Path,
                     show_parameters: bool = True) -> None:
    """Run ``source`` (jupytext or .ipynb) with papermill into ``dest``; BookError on failure.

    The page shows the parameters it ran with (papermill's injected cell), not the defaults
    cell; with ``show_parameters=False`` it shows neither (prose pages).

    Only parameters the notebook declares are passed; the book's notebooks must declare
    ``dataset``, ``profile``, ``seed`` and ``source`` (ConfigError otherwise, naming the
    notebook).
    """
    notebook = jupytext.read(source)
    declared = set(papermill.inspect_notebook(notebook))
    if source.parent.name == "notebooks":
        missing = [p for p in NOTEBOOK_PARAMETERS if p not in declared]
        if missing:
            raise ConfigError(f"{source}: the cell tagged 'parameters' lacks {', '.join(missing)}"
                              "; add them (e.g. dataset = \"rop\")")
    passed = {k: v for k, v in parameters.items() if k in declared}
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(notebook, str(dest), parameters=passed, cwd=str(cwd),
                                   progress_bar=False, kernel_name="python3",
                                   extra_arguments=KERNEL_QUIET)
    except papermill.PapermillExecutionError as error:
        traceback = _strip_ansi("\n".join(error.traceback))
        raise BookError(f"{source} failed with {passed} in cell {error.exec_count}:\n"
                        f"{error.source}\n\n{traceback}\n"
                        f"(partly executed notebook: {dest})") from None
    executed = nbformat.read(dest, as_version=4)
    add_plotly_html(executed)
    _hide_parameters(executed, injected_too=not show_parameters)
    nbformat.write(executed, dest)


def add_plotly_html(notebook: nbformat.NotebookNode) -> int:
    """Give each plotly output an HTML rendering that draws with the page's own plotly.js.

    A plotly figure run by a kernel carries ``application/vnd.plotly.v1+json``, which the book
    cannot render; an existing ``text/html`` may load plotly from a CDN. Both are replaced by
    a ``<div>`` + ``Plotly.newPlot`` call with no script source. The bootstrap output of
    plotly's ``notebook``/``notebook_connected`` renderers (it imports plotly.js from a CDN) is
    dropped. Returns the number of outputs changed or dropped.
    """
    import plotly.io as pio

    changed = 0
    for cell in notebook.cells:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            figure = data.get("application/vnd.plotly.v1+json")
            if figure is None and "window.PlotlyConfig" in data.get("text/html", ""):
                changed += 1
                continue
            if figure is not None:
                data["text/html"] = pio.to_html(
                    figure, include_plotlyjs=False, full_html=False, validate=False,
                    config={"displaylogo": False})
                changed += 1
            kept.append(output)
        if "outputs" in cell:
            cell.outputs = kept
    return changed


def _hide_parameters(notebook: nbformat.NotebookNode, injected_too: bool) -> None:
    """Hide the defaults cell (and papermill's injected cell if ``injected_too``)."""
    hidden = {"parameters", "injected-parameters"} if injected_too else {"parameters"}
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if hidden & set(tags) and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]


def _title_for_dataset(notebook: nbformat.NotebookNode, fallback: str, dataset: str) -> None:
    """Suffix the page title with the dataset, so the ROP and BraTS pages differ in the menu."""
    suffix = f" ({dataset_spec(dataset).short})"
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.split("\n")
        for i, line in enumerate(lines):
            if line.startswith("# "):
                lines[i] = line.rstrip() + suffix
                cell.source = "\n".join(lines)
                return
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(f"# {fallback}{suffix}"))


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _is_notebook(path: Path) -> bool:
    """A MyST prose page that has a kernel, i.e. code to run."""
    return path.suffix == ".md" and "kernelspec" in jupytext.read(path).metadata
