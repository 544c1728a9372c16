"""Offline JavaScript for the book, and the Sphinx extension that serves it.

The site needs no internet: plotly outputs get an HTML rendering that calls the site's own
``plotly.min.js`` (copied from the installed plotly package); the widget manager (require.js +
@jupyter-widgets/html-manager) and MathJax are served from ``_build/vendor/``, filled once by
:func:`fetch_offline_js` (fetched by the first ``pggan book``; needs npm).
This module is also the Sphinx extension that serves those files (``pggan_book.offline_js``),
and the one style rule the theme lacks (``TABLES_CSS``).
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from pggan_core.errors import BookError
from pggan_core.paths import repo_root

# The widget manager myst-nb would otherwise load from cdnjs / jsdelivr (versions it pins).
REQUIREJS = "requirejs@2.3.4"


HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.6"


HTML_MANAGER_DIST = "@jupyter-widgets/html-manager/dist"


MATHJAX = "mathjax@3.2.2"  # Sphinx's default MathJax 3, served from the site for math pages


VENDOR_SUFFIXES = (".woff", ".woff2", ".ttf", ".eot", ".svg")  # fonts its CSS refers to


def vendor_dir(root: Path | None = None) -> Path:
    """Where :func:`fetch_offline_js` puts require.js, the widget html-manager and MathJax."""
    return (root or repo_root()) / "_build" / "vendor"


def fetch_offline_js(dest: Path | None = None) -> Path:
    """Download require.js, @jupyter-widgets/html-manager and MathJax with ``npm pack``.

    This is the book's setup step. None of them ships in a Python package and embed-amd.js
    alone is 4.4 MB, so they are fetched, not committed. Needs npm and the npm registry; the
    book build itself never downloads.
    """
    dest = dest or vendor_dir()
    if shutil.which("npm") is None:
        raise BookError("npm not found: install Node.js (e.g. apt-get install -y npm), then "
                        "run `pggan book` again")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", "--silent", REQUIREJS, HTML_MANAGER, MATHJAX], cwd=tmp,
                       check=True, capture_output=True)
        packages = {}
        for tarball in Path(tmp).glob("*.tgz"):
            with tarfile.open(tarball) as archive:
                archive.extractall(Path(tmp) / tarball.stem, filter="data")
            packages[tarball.stem.rsplit("-", 1)[0]] = Path(tmp) / tarball.stem / "package"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(packages["requirejs"] / "require.js", dest / "require-2.3.4.js")
        manager = packages["jupyter-widgets-html-manager"] / "dist"
        # The CDN's layout: the bundles find their icon fonts next to the module ids
        # "@jupyter-widgets/html-manager/dist/..." and "@jupyter-widgets/controls".
        for folder in (dest / HTML_MANAGER_DIST, dest / "@jupyter-widgets"):
            folder.mkdir(parents=True, exist_ok=True)
            for file in manager.iterdir():
                if file.suffix in VENDOR_SUFFIXES:
                    shutil.copy2(file, folder / file.name)
        shutil.copy2(manager / "embed-amd.js", dest / HTML_MANAGER_DIST / "embed-amd.js")
        # MathJax loads its fonts and TeX extensions relative to its own script.
        es5 = packages["mathjax"] / "es5"
        for part in ("output/chtml/fonts/woff-v2", "input/tex/extensions"):
            shutil.copytree(es5 / part, dest / "mathjax" / part, dirs_exist_ok=True)
        shutil.copy2(es5 / "tex-mml-chtml.js", dest / "mathjax" / "tex-mml-chtml.js")
    return dest


def _require_vendor(root: Path) -> None:
    """Fetch the offline JavaScript on the first build (the only step that uses a registry)."""
    if not (vendor_dir(root) / "mathjax" / "tex-mml-chtml.js").is_file():
        print(f"first build: fetching require.js, the widget manager and MathJax into "
              f"{vendor_dir(root)} (npm pack, once)", flush=True)
        fetch_offline_js(vendor_dir(root))


# Module paths and config keys in code spans do not wrap, so a table naming them grew wider than
# the page's column and hid its last columns behind a sideways scroll (the method page's three).
# Only code may break anywhere: prose in the other cells keeps its words whole, and a first
# column of names keeps room for a short one (data.resolution) on one line.
TABLES_CSS_FILE = "pggan-tables.css"
TABLES_CSS = """.pst-scrollable-table-container td code,
.pst-scrollable-table-container td span.pre { white-space: normal; overflow-wrap: anywhere; }
.pst-scrollable-table-container td:first-child:has(code) { min-width: 9em; }
"""


def setup(app) -> dict[str, Any]:
    """Sphinx extension: serve plotly.js, the widget manager and MathJax from
    ``_static/offline-js/``, adding plotly.js only to pages that draw a plotly figure; and
    ``TABLES_CSS`` on every page."""
    app.add_config_value("pggan_vendor_dir", "", "html")
    app.add_css_file(TABLES_CSS_FILE)
    app.connect("html-page-context", _add_page_js)
    app.connect("build-finished", _copy_vendor_js)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def _add_page_js(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    body = context.get("body", "")
    # Only pages with a figure pay for the 4.8 MB; priority 200 loads it before require.js
    # (myst-nb's 500), else plotly registers as an anonymous AMD module and `Plotly` is unset.
    if "Plotly.newPlot" in body:
        app.add_js_file("offline-js/plotly.min.js", priority=200)
    # require.js reads a global `require` object as its config: resolving module ids from
    # offline-js/ makes the widget bundles find their fonts there, not next to the page.
    if "application/vnd.jupyter.widget-view+json" in body:
        base = context["pathto"]("_static/offline-js/", 1)
        app.add_js_file(None, body=f'var require = {{baseUrl: "{base}"}};', priority=300)


def _copy_vendor_js(app, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    import plotly

    (Path(app.outdir) / "_static" / TABLES_CSS_FILE).write_text(TABLES_CSS)
    static = Path(app.outdir) / "_static" / "offline-js"
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static)
    shutil.copytree(app.config.pggan_vendor_dir, static, dirs_exist_ok=True)
