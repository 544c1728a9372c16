"""Build the companion book: execute every notebook per dataset with papermill, then Sphinx.

Layout of one build (one folder per profile, so one profile's outputs are never served as
another's, and no execution cache can go stale):

    _build/<profile>/src/       staging source tree: book/ prose, notebooks/NN_name_<dataset>.ipynb
                                (executed), generated _config.yml/_toc.yml (execution off), conf.py
    _build/<profile>/html/      the site; index.html is the entry point
    _build/<profile>/doctrees/  Sphinx's pickles

Every notebook in ``notebooks/NN_*.md`` runs once per dataset with the parameters ``dataset``,
``profile``, ``seed`` and ``source`` (None for the built-in phantom, else the user's folder given
with ``pggan book --source rop=DIR``), from the repository root. Prose pages in ``book/`` that
are MyST notebooks (``results.md``, ``limitations.md``) run once with ``profile``, ``seed``,
``datasets`` and ``sources``.
A failing notebook stops the build with its cell and traceback; Sphinx runs with ``-W`` so a
warning is an error too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import yaml
from jupyter_book.config import get_default_sphinx_config

from pggan_book.captions import data_summary
from pggan_book.execute import (
    _is_notebook,
    _title_for_dataset,
    discover_notebooks,
    execute_notebook,
    notebook_datasets,
)
from pggan_book.offline_js import HTML_MANAGER_DIST, _require_vendor, vendor_dir
from pggan_book.runs import pretrain
from pggan_core.config import DATASETS, PROFILES
from pggan_core.datasets import dataset_spec
from pggan_core.errors import BookError, ConfigError
from pggan_core.paths import repo_root
from pggan_core.progress import clock
from pggan_core.provenance import provenance
from pggan_core.runs.shipped import pretrained_note


def parse_sources(items: Sequence[str]) -> dict[str, str]:
    """``pggan book --source rop=DIR --source brats=DIR`` -> {dataset: absolute folder}.

    ConfigError (naming the argument and the fix) for a malformed item, an unknown dataset, a
    dataset given twice, or a folder that does not exist.
    """
    sources: dict[str, str] = {}
    for item in items:
        dataset, sep, folder = item.partition("=")
        if not sep or not folder:
            raise ConfigError(f"--source {item!r}: expected DATASET=FOLDER, e.g. "
                              "--source rop=~/data/DRIVE")
        if dataset not in DATASETS:
            raise ConfigError(f"--source {item!r}: unknown dataset {dataset!r}; choose one of "
                              f"{', '.join(DATASETS)}")
        if dataset in sources:
            raise ConfigError(f"--source {item!r}: {dataset} is given twice; pass one folder "
                              "per dataset")
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"--source {item!r}: {path} is not a folder; check the path")
        sources[dataset] = str(path)
    return sources


def staged_toc(root_toc: dict[str, Any], stems: dict[str, Sequence[str]],
               datasets: Sequence[str]) -> dict[str, Any]:
    """The root ``_toc.yml`` with its ``glob: notebooks/*`` part expanded: one part per
    dataset, one chapter per notebook built for it (``notebooks/<stem>_<dataset>``, from
    ``stems[dataset]``)."""
    parts = []
    for part in root_toc.get("parts", []):
        if not any(str(ch.get("glob", "")).startswith("notebooks/") for ch in part["chapters"]):
            parts.append(part)
            continue
        for d in datasets:
            if stems.get(d):
                parts.append({"caption": f"Notebooks: {dataset_spec(d).title}",
                              "chapters": [{"file": f"notebooks/{s}_{d}"} for s in stems[d]]})
    return {**root_toc, "parts": parts}


def staged_config(root_config: dict[str, Any], profile: str, seed: int,
                  root: Path, weights: str = "trained in this build",
                  data: str = "built-in phantoms") -> dict[str, Any]:
    """The root ``_config.yml`` with execution off, the provenance banner on every page (with
    the data the book shows and where the GANs' weights come from), and plotly, the widget
    manager and MathJax served from the site (see :func:`setup`)."""
    config = yaml.safe_load(yaml.safe_dump(root_config))  # a deep copy
    facts = provenance(profile, seed, root)
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    config.setdefault("html", {})["announcement"] = (
        f"Built with profile <b>{facts['profile']}</b> · seed {facts['seed']} · "
        f"commit {facts['commit']} · {facts['built']} · data: {data} · GANs {weights}")
    sphinx = config.setdefault("sphinx", {})
    sphinx_config = sphinx.setdefault("config", {})
    # The full extension list, minus sphinx_thebe: it writes an unpkg.com URL into every page
    # (live code needs a kernel server anyway, which a static offline site does not have).
    sphinx_config["extensions"] = [
        *[e for e in get_default_sphinx_config()["extensions"] if e != "sphinx_thebe"],
        *sphinx.pop("extra_extensions", []), "pggan_book.offline_js"]
    sphinx_config["pggan_vendor_dir"] = str(vendor_dir(root))
    sphinx_config["nb_ipywidgets_js"] = {
        "offline-js/require-2.3.4.js": {},
        # A widget module that is not bundled would be fetched from here: local, so it fails
        # visibly in the browser check instead of silently needing the internet.
        f"offline-js/{HTML_MANAGER_DIST}/embed-amd.js": {
            "data-jupyter-widgets-cdn": "_static/offline-js/"},
    }
    sphinx_config["mathjax_path"] = "offline-js/mathjax/tex-mml-chtml.js"
    return config


def build_book(profile: str = "demo", datasets: Sequence[str] = DATASETS,
               out: Path | None = None, check: bool = False, seed: int = 0,
               train_here: bool = False, sources: dict[str, str] | None = None,
               augmentation: bool = False) -> Path:
    """Execute every notebook for each dataset, build the HTML, return ``out/html``.

    ``sources`` maps a dataset to the user's folder (``parse_sources``): its chapters, banner
    and claims then show runs trained on that folder, the phantom's stay for the others. The
    GANs are the profile's shipped runs where it has them (``pretrained``, verified; phantoms
    only), and are trained here otherwise, or all of them with ``train_here``.

    ``augmentation`` runs the augmentation study in this build even where the profile's
    study is longer than the book's budget (``augment.in_book`` false): its chapter then
    shows numbers written by this build rather than by an earlier ``pggan augment-study``.

    The notebooks and pages are the checkout's (``paths.repo_root``); ``out`` defaults to its
    ``_build/<profile>``. With ``check=True`` the site is then opened in headless chromium
    (see :mod:`pggan_book.browser_check`), screenshots go to ``out/screenshots``, and any
    problem raises BookError.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    for d in datasets:
        if d not in DATASETS:
            raise ConfigError(f"unknown dataset {d!r}: choose one of {', '.join(DATASETS)}")
    root = repo_root()  # the notebooks and pages; data and runs go to paths.home()
    out = Path(out or root / "_build" / profile).resolve()
    src, html = out / "src", out / "html"
    _require_vendor(root)
    started = time.perf_counter()
    for folder in (src, html, out / "doctrees", out / "screenshots"):
        shutil.rmtree(folder, ignore_errors=True)  # a failed build leaves no stale site behind
    src.mkdir(parents=True)

    sources = {d: str(Path(f).resolve()) for d, f in (sources or {}).items()}
    unknown = sorted(set(sources) - set(datasets))
    if unknown:
        raise ConfigError(f"--source given for {', '.join(unknown)}, which this build does "
                          f"not include ({', '.join(datasets)})")
    parameters: dict[str, Any] = {"profile": profile, "seed": seed, "datasets": list(datasets),
                                  "train_here": train_here, "sources": sources,
                                  "run_study": augmentation}
    prose_notebooks = []
    for page in sorted(p for p in (root / "book").rglob("*") if p.is_file()):
        if _is_notebook(page):
            prose_notebooks.append(page)  # run after the notebooks: they read their results
            continue
        dest = src / page.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(page, dest)

    notebooks = discover_notebooks(root)
    stages: list[tuple[str, float]] = []
    with _timer("training (or installing the shipped) runs in parallel lanes", stages):
        runs = pretrain(profile, tuple(datasets), seed, train_here=train_here,
                        sources=sources)
    shipped = [run for run in runs if pretrained_note(run)]
    weights = ("trained in this build" if not shipped else
               "from the runs shipped with the repository (verified by sha256)"
               if len(shipped) == len(runs) else
               f"{len(shipped)} of {len(runs)} shipped with the repository, the rest trained "
               "in this build")
    stems = {d: [s.stem for s in notebooks if d in notebook_datasets(s)] for d in datasets}
    for d in datasets:
        for source in (s for s in notebooks if s.stem in stems[d]):
            dest = src / "notebooks" / f"{source.stem}_{d}.ipynb"
            with _timer(f"{source.name} [{d}]", stages, notebook=dest):
                execute_notebook(source, dest, {**parameters, "dataset": d,
                                                "source": sources.get(d)}, root)
            executed = nbformat.read(dest, as_version=4)
            _title_for_dataset(executed, source.stem, d)
            nbformat.write(executed, dest)
    for page in prose_notebooks:
        dest = (src / page.relative_to(root)).with_suffix(".ipynb")
        with _timer(page.name, stages, notebook=dest):
            execute_notebook(page, dest, parameters, root, show_parameters=False)

    root_toc = yaml.safe_load((root / "_toc.yml").read_text())
    root_config = yaml.safe_load((root / "_config.yml").read_text())
    (src / "_toc.yml").write_text(yaml.safe_dump(
        staged_toc(root_toc, stems, datasets), sort_keys=False))
    (src / "_config.yml").write_text(yaml.safe_dump(
        staged_config(root_config, profile, seed, root, weights,
                      data_summary(datasets, sources)), sort_keys=False))
    with _timer("sphinx", stages):
        run_sphinx(src, html, out / "doctrees")
    print(stage_summary(stages), flush=True)
    print(f"book ({profile}) built in {clock(time.perf_counter() - started)}: "
          f"{html / 'index.html'}")

    if check:
        from pggan_book.browser_check import check_book

        with _timer("checking every page in headless Chromium", []):
            problems = check_book(html, screenshots=out / "screenshots")
        if problems:
            raise BookError("the built book has problems:\n" + "\n".join(problems))
    return html


def run_sphinx(src: Path, html: Path, doctrees: Path) -> None:
    """``jupyter-book config sphinx`` then ``sphinx-build -W``; BookError with its warnings."""
    bin_dir = Path(sys.executable).parent
    config = subprocess.run([str(bin_dir / "jupyter-book"), "config", "sphinx", str(src)],
                            capture_output=True, text=True)
    if config.returncode:
        raise BookError(f"{src / '_config.yml'}: jupyter-book config failed:\n{config.stderr}")
    shutil.rmtree(html, ignore_errors=True)
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(doctrees), str(src), str(html)], capture_output=True, text=True)
    if build.returncode:
        raise BookError(f"sphinx-build failed (warnings are errors):\n{build.stderr.strip()}")


HEARTBEAT_S = 30.0  # the longest a build stays silent, whatever a stage prints itself


@contextmanager
def _timer(label: str, stages: list[tuple[str, float]], notebook: Path | None = None
           ) -> Iterator[None]:
    """A line when a stage starts and when it ends, a line every ``HEARTBEAT_S`` while it runs
    (with the cell it is in when it executes ``notebook``, which papermill saves as it goes),
    and its wall time into ``stages``."""
    print(f"-> {label} ...", flush=True)
    started = time.perf_counter()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_S):
            where = _notebook_position(notebook) if notebook is not None else ""
            print(f"   {label}: still running, {clock(time.perf_counter() - started)}"
                  f"{where}", flush=True)

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    try:
        yield
    finally:
        done.set()
        beat.join()
    stages.append((label, time.perf_counter() - started))
    print(f"   {label}: {clock(stages[-1][1])}", flush=True)


def _notebook_position(path: Path) -> str:
    """", cell 7 of 12" for a notebook papermill is executing into ``path`` ("" if unknown)."""
    try:
        cells = nbformat.read(path, as_version=4).cells
    except Exception:  # not written yet, or caught mid-write: say nothing this time
        return ""
    code = [c for c in cells if c.cell_type == "code"]
    running = next((i for i, c in enumerate(code, 1)
                    if c.get("metadata", {}).get("papermill", {}).get("status") == "running"),
                   None)
    return f", cell {running} of {len(code)}" if running else ""


def stage_summary(stages: list[tuple[str, float]]) -> str:
    """The closing table of a build: every stage's wall time, longest first, and the total."""
    width = max(len(label) for label, _ in stages)
    lines = [f"  {label:<{width}}  {clock(seconds):>8}"
             for label, seconds in sorted(stages, key=lambda s: -s[1])]
    total = sum(seconds for _, seconds in stages)
    return "\n".join(["wall time by stage:", *lines, f"  {'total':<{width}}  {clock(total):>8}"])
