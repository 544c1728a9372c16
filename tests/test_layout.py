"""The package's shape: imports run one way, and the core works without the ``[book]`` extra.

``pggan_book`` alone needs jupytext, papermill, jupyter-book (and the notebooks' plotly and
ipywidgets). A user who installs ``pggan-medsynth`` without ``[book]`` must still be able to
prepare data, train, encode, evaluate and generate; the second test proves it by running those
commands in a fresh interpreter where importing any book-only package fails, as it would on
such an install.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "pggan_core"
# what `pip install pggan-medsynth[book]` adds (pyproject.toml), and what those pull in
BOOK_ONLY = ("jupytext", "papermill", "jupyter_book", "sphinx", "nbformat", "nbclient",
             "myst_nb", "IPython", "ipykernel", "ipywidgets", "plotly")
# imports every command but `pggan book` needs (cli.py imports them inside each command)
CORE_MODULES = ("pggan_core.cli", "pggan_core.data.prepare", "pggan_core.segmentation.vessels",
                "pggan_core.training.trainer", "pggan_core.latent.encoder",
                "pggan_core.latent.space", "pggan_core.evaluation.evaluate",
                "pggan_core.evaluation.ablation", "pggan_core.generate", "pggan_core.viz.plots",
                "pggan_core.runs.reuse", "pggan_core.runs.shipped",
                "pggan_core.augmentation.study")


def import_graph() -> dict[str, set[str]]:
    """Module -> the pggan_core modules it imports, at the top or inside a function."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pggan_core"):
                targets |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, as the path that closes it."""
    found, state = [], dict.fromkeys(graph, "new")

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state[target] == "open":
                found.append(path[path.index(target):] + [target])
            elif state[target] == "new":
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if state[node] == "new":
            visit(node, [node])
    return found


def test_imports_run_one_way():
    assert cycles(import_graph()) == []


def test_the_library_never_reads_the_book():
    # the book (pggan_book, beside the package) reads the library, never the other way; only
    # the CLI wires `pggan book`, importing it inside that command
    reads_book = sorted(
        str(path.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("*.py")
        if path.name != "cli.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pggan_book")
        or isinstance(node, ast.Import) and any(a.name.startswith("pggan_book")
                                                 for a in node.names))
    assert reads_book == []
    book = PACKAGE.parent / "pggan_book"
    assert (book / "__init__.py").is_file() and not (PACKAGE / "book").exists()


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Folder (``pggan_core.training``) or top-level module (``pggan_core.config``) -> the
    others it imports: the import graph with each folder's modules merged into one node."""
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}

    def unit(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if len(parts) > 1 and parts[1] in folders else module

    merged: dict[str, set[str]] = {}
    for name, targets in graph.items():
        merged.setdefault(unit(name), set()).update(unit(t) for t in targets)
    return {name: targets - {name} for name, targets in merged.items()}


def test_folders_import_each_other_one_way():
    # a loop between folders (training -> viz -> latent -> training, say) means neither can be
    # read, moved or replaced without the other, even when no module imports itself
    graph = folder_graph(import_graph())
    assert cycles(graph) == []
    # the pure measures sit below training (its SWD log) and the run-level evaluation: they
    # read arrays, not runs
    below = {"pggan_core.settings", "pggan_core.errors"}
    assert graph["pggan_core.measures"] <= below, graph["pggan_core.measures"] - below
    # the segmentation models learn from the data and serve evaluation and the augmentation
    # study: data reaches its U-Net only through the dataset's spec (``label_model``)
    assert "pggan_core.segmentation" not in graph["pggan_core.data"]
    above = {"pggan_core.evaluation", "pggan_core.augmentation", "pggan_core.training",
             "pggan_core.latent", "pggan_core.runs", "pggan_core.viz"}
    assert not graph["pggan_core.segmentation"] & above, graph["pggan_core.segmentation"] & above


def test_only_the_registry_names_the_papers_datasets_in_a_condition():
    # a branch on "rop" / "brats" is a property of the dataset's spec waiting to be written:
    # a third dataset would fall into the else
    import re

    branch = re.compile(r"""(?:==|!=|\bis(?: not)?)\s*["'](?:rop|brats)["']|"""
                        r"""["'](?:rop|brats)["']\s*(?:==|!=)""")
    sources = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "notebooks").glob("*.md")]
    found = [f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
             for path in sources if path.name != "datasets.py"
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if branch.search(line)]
    assert not found, "ask DatasetSpec instead:\n" + "\n".join(found)


def test_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


WITHOUT_BOOK = textwrap.dedent("""
    import importlib, importlib.abc, sys

    class NoBookExtra(importlib.abc.MetaPathFinder):
        # importing a package of the [book] extra fails, as on an install without it
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, NoBookExtra())
    for module in {core}:
        importlib.import_module(module)
    pulled = sorted(m for m in sys.modules if m.split(".")[0] in {blocked})
    assert not pulled, pulled
    from pggan_core.cli import main
    for argv in {commands}:
        print("pggan", " ".join(argv), flush=True)
        assert main(argv) == 0, argv
""")


def test_core_imports_pull_no_book_package():
    script = WITHOUT_BOOK.format(blocked=set(BOOK_ONLY), core=CORE_MODULES, commands=[])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_pggan_commands_work_without_the_book_extra(tmp_path):
    profile = tmp_path / "tiny.yaml"
    profile.write_text(textwrap.dedent("""
        extends: smoke
        common:
          data: {n_images: 12, resolution: 16, heldout_fraction: 0.25}
          schedule: {max_resolution: 16}
          encoder: {iterations: 4, refine_steps: 1}
          eval: {n_generated: 8, n_auc_images: 2, n_msssim_pairs: 4}
    """))
    data, run = tmp_path / "data", tmp_path / "run"
    commands = [
        ["data", "prepare", "--dataset", "brats", "--profile", str(profile), "--out", str(data)],
        ["train", "--data", str(data), "--out", str(run), "--profile", str(profile)],
        ["evaluate", "--run", str(run)],
        ["encode", "--run", str(run)],
        ["latent", "--run", str(run)],
        ["generate", "--run", str(run), "--n", "4", "--out", str(tmp_path / "samples")],
    ]
    script = WITHOUT_BOOK.format(blocked=set(BOOK_ONLY), core=CORE_MODULES,
                                 commands=commands)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PGGAN_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert (run / "metrics.json").is_file() and (run / "latent_space.json").is_file()
    # a BraTS run's default format: BraTS-named NIfTI volumes and their manifest
    assert (tmp_path / "samples" / "manifest.csv").is_file()
    assert (tmp_path / "samples" / "synth_0000" / "synth_0000_seg.nii.gz").is_file()
