"""The book builder: tables read at build time, staging, failures, offline pages, and (e2e) the
smoke book for both datasets checked in headless chromium."""

import importlib
import json
import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from pggan_book import browser_check
from pggan_book.browser_check import check_book, expectations
from pggan_book.build import build_book, parse_sources, run_sphinx, staged_config, staged_toc
from pggan_book.captions import provenance_banner
from pggan_book.execute import (
    add_plotly_html,
    discover_notebooks,
    execute_notebook,
    notebook_datasets,
)
from pggan_book.facts import (
    METHOD,
    as_markdown,
    config_value,
    images_per_resolution,
    method_table,
    profile_table,
    read_phase_curves,
)
from pggan_book.offline_js import TABLES_CSS, TABLES_CSS_FILE
from pggan_book.results_table import (
    CLAIMS,
    NOT_COMPUTED,
    NOT_MEASURED,
    VERDICTS,
    claims_table,
    rules_table,
)
from pggan_core.config import load_config
from pggan_core.errors import BookError, ConfigError
from pggan_core.runs.folder import RunSpec
from pggan_core.runs.shipped import NOTE_WIDTH

ROOT = Path(__file__).resolve().parents[1]  # the checkout: notebooks, book/, _config.yml
HEADER = """---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---
# A page
"""


def code_cell(source: str, tags: str = "") -> str:
    tag_line = f":tags: [{tags}]\n\n" if tags else ""
    return f"\n```{{code-cell}} ipython3\n{tag_line}{source}\n```\n"


@pytest.fixture
def results_hold(monkeypatch):
    """Result files in a bare folder (no generator to check them against) taken as holding:
    these tests are about reading and judging numbers (tests/test_derived.py checks them)."""
    from pggan_core.runs import folder
    from pggan_core.training import checkpoint

    monkeypatch.setattr(folder, "stale_result", lambda *args: None)
    monkeypatch.setattr(folder, "run_generator", lambda run: ("", None))
    monkeypatch.setattr(checkpoint, "has_generator", lambda run: True)


def test_claims_table_reads_the_results_judges_them_and_marks_the_rest(tmp_path: Path,
                                                                       results_hold):
    folder = RunSpec("rop", "smoke").folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({
        "vessel_agreement_auc": 0.91234, "vessel_agreement_auc_reference": 0.97,
        "swd_mean": float("nan"), "ms_ssim_generated": 0.30, "ms_ssim_real": 0.33}))
    def lead(silhouette, gain):
        return {"by_silhouette": silhouette, "by_knn_gain": gain,
                "primary": silhouette if silhouette == gain else None}

    (folder / "latent_space.json").write_text(json.dumps({
        "knn_laterality_accuracy": 0.7, "knn_laterality_chance": 0.55,
        "knn_laterality_pixels": 0.99, "attributes": {
            "label": "laterality",
            "scores": [{"view": "encoded reals", "attribute": "laterality",
                        "silhouette": 0.05, "knn_gain": 0.25},
                       {"view": "encoded reals", "attribute": "brightness",
                        "silhouette": 0.02, "knn_gain": 0.30}],
            "primary": {"encoded reals": lead("laterality", "brightness"),
                        "E(G(z))": lead("brightness", "brightness"),
                        "z": lead("brightness", "brightness")}}}))
    table = claims_table("smoke", ("rop", "brats"), root=tmp_path)
    assert list(table.columns) == ["claim", "paper", "ROP", "BraTS", "reproduced?"]
    row = {c.claim.split(" (")[0]: i for i, c in enumerate(CLAIMS)}
    auc = table.iloc[row["The GAN's vessel channel predicts the vessels a U-Net finds in its "
                        "photograph"]]
    assert auc["ROP"] == "0.912 (held-out real with true masks 0.970)"
    assert auc["paper"] == "0.97" and auc["BraTS"] == "n/a"  # a fundus-only claim
    assert auc["reproduced?"] == "yes"  # >= 0.90
    swd = table.iloc[row["Generated images look like real ones"]]
    assert swd["ROP"] == NOT_COMPUTED  # NaN is not a result
    assert swd["BraTS"] == NOT_COMPUTED  # file missing
    assert swd["reproduced?"] == f"ROP: {NOT_MEASURED}; BraTS: {NOT_MEASURED}"
    variety = table.iloc[row["Generated images are as varied as real ones"]]
    assert variety["reproduced?"].startswith("ROP: yes")  # within 0.05 of real pairs
    eyes = table.iloc[row["Left/right eye is primary in the latent space"]]
    assert eyes["ROP"].startswith("laterality: silhouette 0.050, 5-NN gain 0.250; ")
    assert "E(G(z)): brightness" in eyes["ROP"] and "encoded reals: none" in eyes["ROP"]
    assert eyes["reproduced?"] == "partly"  # first by silhouette only, in the encoded reals
    assert {v.split(": ")[-1] for v in table["reproduced?"] for v in v.split("; ")} <= {
        *VERDICTS, "n/a"}
    assert len(rules_table()) == len(CLAIMS)


def test_unreadable_metrics_json_names_the_file_and_the_fix(tmp_path: Path, results_hold):
    folder = RunSpec("brats", "smoke").folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text("{not json")
    with pytest.raises(BookError, match=r"metrics\.json.*pggan evaluate"):
        claims_table("smoke", ("brats",), root=tmp_path)


def test_method_table_points_at_real_code_and_real_config_keys():
    paper = load_config("paper", "rop")
    for step in METHOD:
        module, name = step.code.split(":")
        assert hasattr(importlib.import_module(module), name), step.code
    keys = [step.key for step in METHOD if step.key]  # the steps a config key governs
    assert keys and [key for key in keys if config_value(paper, key) in ("", "None")] == []
    assert config_value(paper, "model.feature_maps") == \
        "4–128 px: 128, 256 px: 64, 512 px: 16"  # the paper's table, in its words
    markdown = as_markdown(method_table("brats")).data
    assert markdown.count("\n") == len(METHOD) + 1 and "`schedule.max_resolution`" in markdown


def test_profile_table_shows_the_scale_gap():
    table = profile_table(("rop",)).set_index("profile")
    assert table.loc["paper", "fade + stable at the top"] == "20,000 + 20,000"
    assert table.loc["paper", "GAN iterations"] == "300,000"  # 8 resolutions, no fade at 4 px
    assert table.loc["paper", "images shown"] == f"{(300_000 - 40_000) * 16 + 40_000 * 8:,}"
    assert images_per_resolution(load_config("paper", "rop"))[64] == 640_000
    assert table.loc["paper", "resolution"] == "4 → 512 px"


def test_phase_curves_plot_only_what_a_log_axis_can_show(tmp_path: Path):
    import matplotlib
    matplotlib.use("Agg")
    from pggan_book import figures

    path = RunSpec("rop", "smoke").folder(tmp_path) / "phase_metrics.jsonl"
    path.parent.mkdir(parents=True)
    records = [{"images_seen": 0, "resolution": 4, "phase": "stable", "swd_mean": None,
                "swd_floor_mean": 1.0},
               {"images_seen": 640, "resolution": 8, "phase": "fade", "swd_mean": 3.0,
                "swd_floor_mean": 1.5}]
    path.write_text("\n".join(json.dumps(r) for r in records))
    curves = read_phase_curves("smoke", ["rop"], tmp_path)
    assert list(curves) == ["ROP"]
    (line,) = figures.phase_curves_figure(curves).axes[0].get_lines()[:1]
    assert list(line.get_xdata()) == [640] and list(line.get_ydata()) == [2.0]
    # A smoke run whose phases recorded nothing still gives a figure, not a crash.
    empty = figures.phase_curves_figure({"ROP": records[:1]})
    assert "no phase-end SWD" in empty.axes[0].texts[0].get_text()


def test_the_readme_picture_shows_fundus_phantoms_above_mr_slices():
    from pggan_book.figures import phantom_overview

    picture = phantom_overview(n=2, size=64)
    # two samples a row, photograph + vessels above (MR mosaic + labels on FLAIR) below
    assert picture.dtype == np.uint8 and picture.shape == (144, 280, 3)
    fundus, mr = picture[:72].astype(float), picture[72:].astype(float)
    assert fundus[..., 0].mean() > 1.5 * fundus[..., 2].mean()  # a red-orange fundus
    mosaic = mr[4:68, 4:68]  # the first slice's 2x2 grey mosaic of T1, T2, FLAIR, T1c
    assert np.abs(mosaic[..., 0] - mosaic[..., 2]).max() == 0 and mosaic.std() > 10


def test_staged_toc_has_one_part_per_dataset():
    root_toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    toc = staged_toc(root_toc, {"rop": ["01_data", "02_vessels", "03_train"],
                                     "brats": ["01_data", "03_train"]}, ("rop", "brats"))
    captions = [part["caption"] for part in toc["parts"]]
    assert captions[1:3] == ["Notebooks: Fundus photographs (ROP)",
                             "Notebooks: Glioma MRI (BraTS)"]
    assert len(toc["parts"][1]["chapters"]) == 3
    assert toc["parts"][2]["chapters"] == [{"file": "notebooks/01_data_brats"},
                                           {"file": "notebooks/03_train_brats"}]
    # the vessel chapter is built for the fundus only
    assert notebook_datasets(ROOT / "notebooks" / "02_vessel_segmentation.md") == ("rop",)
    assert notebook_datasets(ROOT / "notebooks" / "03_train.md") == ("rop", "brats")
    assert not any("glob" in ch for part in toc["parts"] for ch in part["chapters"])


def test_staged_config_runs_nothing_and_loads_nothing_from_the_internet():
    root_config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config = staged_config(root_config, "smoke", 7, ROOT)
    assert config["execute"]["execute_notebooks"] == "off"
    assert "profile <b>smoke</b> · seed 7 · commit " in config["html"]["announcement"]
    sphinx = config["sphinx"]["config"]
    assert "sphinx_thebe" not in sphinx["extensions"]
    assert {"pggan_book.offline_js", "sphinxcontrib.bibtex"} <= set(sphinx["extensions"])
    urls = [*sphinx["nb_ipywidgets_js"], sphinx["mathjax_path"]]
    assert not any("://" in url for url in urls)


def test_plotly_outputs_get_html_without_a_cdn():
    figure = {"data": [{"type": "scatter", "x": [1, 2], "y": [3, 4], "mode": "markers"}],
              "layout": {}}
    output = nbformat.v4.new_output("display_data", data={
        "application/vnd.plotly.v1+json": figure,
        "text/html": '<script src="https://cdn.plot.ly/plotly-3.0.0.min.js"></script>'})
    bootstrap = nbformat.v4.new_output("display_data", data={  # renderer "notebook_connected"
        "text/html": '<script>window.PlotlyConfig = {};</script><script type="module">'
                     'import "https://cdn.plot.ly/plotly-4.1.1.min"</script>'})
    cell = nbformat.v4.new_code_cell(outputs=[bootstrap, output])
    notebook = nbformat.v4.new_notebook(cells=[cell])
    assert add_plotly_html(notebook) == 2
    assert len(cell.outputs) == 1
    html = cell.outputs[0]["data"]["text/html"]
    assert "Plotly.newPlot" in html and "cdn" not in html and "<script src" not in html


def test_provenance_banner_names_profile_seed_commit_date_and_data(tmp_path, monkeypatch):
    monkeypatch.setenv("PGGAN_HOME", str(tmp_path))  # nothing prepared there
    banner = provenance_banner("demo", 3, "rop")
    facts = banner.split("\nGAN ")[0].splitlines()  # then the shipped run's note, if any
    assert all(len(line) <= NOTE_WIDTH for line in facts), banner
    assert re.fullmatch(r"dataset rop · profile demo · seed 3 · commit [0-9a-f]+\S* · built "
                        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC · data: the built-in fundus "
                        r"phantom, not prepared yet", " · ".join(facts)), banner
    mine = provenance_banner("demo", 3, "rop", tmp_path / "my folder")
    assert f"data: your folder my folder ({tmp_path / 'my folder'})" in " ".join(mine.split())


def test_a_notebook_without_the_book_parameters_is_a_config_error(tmp_path: Path):
    (tmp_path / "notebooks").mkdir()
    source = tmp_path / "notebooks" / "01_x.md"
    source.write_text(HEADER + code_cell('dataset = "rop"', "parameters"))
    with pytest.raises(ConfigError, match=r"01_x\.md.*lacks profile, seed"):
        execute_notebook(source, tmp_path / "out.ipynb", {"dataset": "rop"}, tmp_path)


@pytest.mark.slow
def test_a_failing_notebook_reports_cell_and_traceback(tmp_path: Path):
    source = tmp_path / "page.md"
    source.write_text(HEADER + code_cell("profile = 'demo'", "parameters")
                      + code_cell("raise ValueError(f'boom on {profile}')"))
    with pytest.raises(BookError) as error:
        execute_notebook(source, tmp_path / "out.ipynb", {"profile": "smoke"}, tmp_path)
    message = str(error.value)
    assert "page.md failed with {'profile': 'smoke'}" in message
    assert "raise ValueError(f'boom on {profile}')" in message  # the cell
    assert "ValueError: boom on smoke" in message  # the traceback, ANSI colours stripped
    assert "\x1b[" not in message


@pytest.mark.slow
def test_a_sphinx_warning_fails_the_build(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "_config.yml").write_text("title: t\nexecute: {execute_notebooks: 'off'}\n")
    (src / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (src / "index.md").write_text("# Index\n\nSee {doc}`a page that is not there <missing>`.\n")
    with pytest.raises(BookError, match="unknown document"):
        run_sphinx(src, tmp_path / "html", tmp_path / "doctrees")


@pytest.mark.slow
def test_browser_check_finds_what_a_reader_would_see_broken(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(browser_check, "WAIT_MS", 500)  # nothing will appear on this page
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "index.html").write_text("<html><body><p>fine</p></body></html>")
    (tmp_path / "notebooks" / "07_latent_space_rop.html").write_text(
        '<html><body><script src="https://cdn.example.org/x.js"></script>'
        "<script>undefined_function()</script><img src='missing.png'>"
        "<pre>Traceback (most recent call last)</pre></body></html>")
    problems = check_book(tmp_path, screenshots=tmp_path / "shots")
    found = "\n".join(problems)
    assert not any(p.startswith("index.html") for p in problems)
    for expected in ("requests an external URL https://cdn.example.org/x.js",
                     "uncaught exception", "broken image missing.png", "shows a Traceback",
                     "no widget slider", "no rendered plotly figure"):
        assert expected in found, found
    assert (tmp_path / "shots" / "notebooks__07_latent_space_rop.png").is_file()


@pytest.mark.slow
@pytest.mark.e2e
def test_smoke_book_builds_for_both_datasets_and_reads_well(tmp_path: Path, capfd):
    """CI's book check: every notebook x both datasets on smoke, then every page in chromium.
    Its runs and data go to the session's scratch PGGAN_HOME; the book's sources are the
    checkout's (``paths.repo_root``: ROOT, where the tests run from)."""
    out = tmp_path / "smoke"
    html = build_book("smoke", ("rop", "brats"), out=out, check=False)
    notebooks = discover_notebooks(ROOT)
    assert notebooks, "no notebooks/NN_*.md found"
    # what a user sees with stdout to a file (as here, and in CI logs): progress lines, not bars
    shown = capfd.readouterr()
    screen = shown.out + shown.err
    for run in ("rop/smoke/noseg", "brats/smoke/seg", "brats/smoke/noseg"):  # trained here
        assert re.search(rf"^{run}: .* step (\d+)/\1 \(100 %\)", screen, re.M), run
    for source in notebooks:
        for dataset in notebook_datasets(source):
            assert f"-> {source.name} [{dataset}] ..." in screen
    assert "wall time by stage:" in screen
    assert "without encryption" not in screen  # the kernels' transport warning stays hidden
    for source in notebooks:
        for dataset in ("rop", "brats"):
            page = html / "notebooks" / f"{source.stem}_{dataset}.html"
            assert page.is_file() == (dataset in notebook_datasets(source)), page
    page = html / "notebooks" / "07_latent_space_rop.html"  # the t-SNE and widget page
    assert {"plotly_points", "widget_slider"} <= set(expectations(page))
    assert (html / "book" / "quality.html").is_file()
    for dataset in ("rop", "brats"):  # the smoke study is in every smoke book (in_book)
        study = (html / "notebooks" / f"08_augmentation_{dataset}.html").read_text()
        assert "Augmentation study written by this build" in study
        assert (RunSpec(dataset, "smoke").folder() / "augmentation.json").is_file()
    results = (html / "book" / "results.html").read_text()
    assert "against real alone" in results  # the augmentation row, with its numbers
    # every result of this build holds for its runs: none is named as set aside
    assert not re.search(r"no longer holds: \w|\.json set aside:", results)
    for page in html.rglob("*.html"):
        external = re.findall(r'(?:src|href)="(https?://[^"]+\.(?:js|css))"', page.read_text())
        assert not external, f"{page}: {external}"
    assert "Built with profile <b>smoke</b>" in (html / "book" / "index.html").read_text()
    # the rule that lets long code names in table cells wrap, linked from every page
    assert (html / "_static" / TABLES_CSS_FILE).read_text() == TABLES_CSS
    assert f"_static/{TABLES_CSS_FILE}" in (html / "book" / "method.html").read_text()
    problems = check_book(html, screenshots=out / "screenshots")
    assert problems == [], "\n".join(problems)
    shutil.rmtree(out / "src")  # the executed notebooks are large; the HTML is what counts


def test_sources_are_parsed_and_bad_ones_named(tmp_path: Path):
    assert parse_sources([f"rop={tmp_path}"]) == {"rop": str(tmp_path.resolve())}
    for item, named in (("rop", "DATASET=FOLDER"), ("mri=" + str(tmp_path), "unknown dataset"),
                        (f"rop={tmp_path / 'missing'}", "is not a folder")):
        with pytest.raises(ConfigError, match=named):
            parse_sources([item])
    with pytest.raises(ConfigError, match="given twice"):
        parse_sources([f"rop={tmp_path}", f"rop={tmp_path}"])
    from pggan_core.cli import main

    assert main(["book", "--profile", "smoke", "--source", "rop"]) == 2


@pytest.mark.slow
@pytest.mark.e2e
def test_smoke_book_on_your_own_folders_says_which_data_it_shows(
        tmp_path: Path, monkeypatch, drive_folder: Path, brats_folder: Path):
    """``pggan book --profile smoke --source rop=DIR --source brats=DIR`` on a DRIVE-layout
    folder and a BraTS 2017 download: every page names the folder, not the phantom."""
    monkeypatch.setenv("PGGAN_HOME", str(tmp_path / "home"))  # runs and data land there
    sources = parse_sources([f"rop={drive_folder}", f"brats={brats_folder}"])
    html = build_book("smoke", ("rop", "brats"), out=tmp_path / "out", sources=sources)
    home = tmp_path / "home"
    for dataset, folder in sources.items():
        run = RunSpec(dataset, "smoke", source=folder).folder(home)
        info = json.loads((run / "run.json").read_text())
        assert info["finished"] and info["data"]["source"] == folder
        assert (run / "metrics.json").is_file()
        assert not RunSpec(dataset, "smoke").folder(home).exists()  # no phantom run made
    text = {page.stem: " ".join(page.read_text().split())  # the banner wraps its lines
            for page in (html / "notebooks").glob("*.html")}
    for stem, page in text.items():
        folder = "DRIVE" if stem.endswith("_rop") else "MICCAI_BraTS17_Data_Training"
        assert f"data: your folder {folder} (" in page, stem  # the banner's data line
        assert "data: the built-in" not in page, stem
    assert "12 images" in text["04_image_quality_rop"]  # the DRIVE folder's 12 photographs
    assert "vessel channel from its manual vessel masks" in text["04_image_quality_rop"]
    results = " ".join((html / "book" / "results.html").read_text().split())
    assert "rop data: your folder DRIVE (" in results  # the claims are read from these runs
    assert "brats data: your folder MICCAI_BraTS17_Data_Training (" in results
    assert "ROP: your folder DRIVE" in (html / "book" / "index.html").read_text()
    shutil.rmtree(tmp_path / "out" / "src")
