"""Open every page of the built book in headless chromium and list what a reader would see broken.

The site is served from 127.0.0.1 and every other request is blocked and reported, so a page
that works here works offline. Per page: no console error (bar the known harmless ones), no
uncaught exception, no failed request, no broken image, no "Traceback" text; every notebook page
shows at least one figure; and pages named in PAGE_EXPECTATIONS show their interactive parts
(the t-SNE scatter has points, the widget slider exists). Uses Debian's chromium through
playwright (``pip install playwright``; no ``playwright install``).
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Console messages that do not affect what a reader sees (thebe's unset URL, a jupyter-widgets
# queue probe and the theme switcher, all logged by the book theme's own scripts).
HARMLESS_CONSOLE = ("THEBE_JS_URL", "reading 'Queue'", "Got invalid theme mode")
# Interactive parts a page must show, by notebook name (the page is <name>_<dataset>.html).
PAGE_EXPECTATIONS: dict[str, tuple[str, ...]] = {
    "07_latent_space": ("plotly_points", "widget_slider"),
}
SKIPPED_PAGES = ("genindex.html", "search.html")
WAIT_MS = 15_000

PLOTLY_POINTS_JS = """() => {
  let n = 0;
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const svg = gd.querySelectorAll('.scatterlayer .point').length;
    // WebGL traces draw on a canvas: count the data of a figure plotly has laid out.
    const data = gd._fullLayout ? (gd.data || []).reduce((s, t) => s + (t.x ? t.x.length : 0), 0)
                                : 0;
    n += svg || data;
  }
  return n;
}"""
BROKEN_IMAGES_JS = """() => Array.from(document.images)
  .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'))"""
FIGURES_JS = """() => Array.from(document.querySelectorAll('.cell_output img')).length
  + document.querySelectorAll('.js-plotly-plot').length"""


def book_pages(html_dir: Path) -> list[Path]:
    """The pages a reader can reach: the book's prose and notebook pages, plus the index."""
    html_dir = Path(html_dir)
    pages = [html_dir / "index.html"] if (html_dir / "index.html").is_file() else []
    for folder in ("book", "notebooks"):
        pages += sorted((html_dir / folder).rglob("*.html"))
    return [p for p in pages if p.name not in SKIPPED_PAGES]


def expectations(page: Path) -> tuple[str, ...]:
    """What ``page`` must show beyond the checks every page gets."""
    if page.parent.name != "notebooks":
        return ()
    wanted = ["figure"]
    for name, parts in PAGE_EXPECTATIONS.items():
        if page.stem.startswith(name + "_"):
            wanted += parts
    return tuple(wanted)


def check_book(html_dir: Path, screenshots: Path | None = None) -> list[str]:
    """Load every page in chromium; return the problems found ("page: what"), [] if none.

    A full-page PNG of each page goes to ``screenshots`` when given.
    """
    from playwright.sync_api import sync_playwright

    html_dir = Path(html_dir)
    if not (html_dir / "index.html").is_file():
        return [f"{html_dir}: no index.html; build the book first"]
    if screenshots:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with _serve(html_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        for page_path in book_pages(html_dir):
            name = page_path.relative_to(html_dir).as_posix()
            found = _check_page(context, base + name, expectations(page_path), screenshots)
            problems += [f"{name}: {p}" for p in found]
        browser.close()
    return problems


def _check_page(context, url: str, wanted: tuple[str, ...], screenshots: Path | None,
                ) -> list[str]:
    problems: list[str] = []
    page = context.new_page()
    base = url.split("/", 3)[:3]
    local = "/".join(base) + "/"

    def block_external(route) -> None:
        if route.request.url.startswith(local) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            problems.append(f"requests an external URL {route.request.url}")
            route.abort()

    def on_console(message) -> None:
        if message.type == "error" and not any(h in message.text for h in HARMLESS_CONSOLE):
            problems.append(f"console error: {message.text[:300]}")

    page.route("**/*", block_external)
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught exception: {error}"[:300]))
    page.on("response", lambda r: r.status >= 400 and not r.url.endswith("favicon.ico")
            and problems.append(f"HTTP {r.status} for {r.url}"))
    page.goto(url, wait_until="load")
    if "widget_slider" in wanted:
        _wait_for(page, ".widget-slider", problems, "no widget slider (.widget-slider)")
    if "plotly_points" in wanted:
        _wait_for(page, ".js-plotly-plot .main-svg", problems, "no rendered plotly figure")
        if page.evaluate(PLOTLY_POINTS_JS) == 0:
            problems.append("the plotly figure has no points")
    page.wait_for_timeout(500)  # let late scripts (widget manager, plotly) report errors
    if "figure" in wanted and page.evaluate(FIGURES_JS) == 0:
        problems.append("no figure (no output image and no plotly plot)")
    for src in page.evaluate(BROKEN_IMAGES_JS):
        problems.append(f"broken image {src}")
    if "Traceback" in page.inner_text("body"):
        problems.append("shows a Traceback")
    if screenshots:
        shot = url.removeprefix(local).replace("/", "__").removesuffix(".html") + ".png"
        page.screenshot(path=str(Path(screenshots) / shot), full_page=True)
    page.close()
    return problems


def _wait_for(page, selector: str, problems: list[str], message: str) -> None:
    try:
        page.wait_for_selector(selector, timeout=WAIT_MS)
    except Exception:  # playwright's TimeoutError; the page itself is still usable
        problems.append(message)


@contextmanager
def _serve(html_dir: Path) -> Iterator[str]:
    """Serve ``html_dir`` on a free localhost port for the duration; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base's signature)
        """Requests are checked in the browser, not logged."""
