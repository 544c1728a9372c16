"""The quality study (``benchmarks/quality``), as the book reads it: loaded from the checkout
by ``pggan_book.study.quality_study``, never imported by the library; its lines against
training compute, their bands and their reach."""

import ast
from pathlib import Path

import pytest

from pggan_book.study import quality_study

ROOT = Path(__file__).resolve().parents[1]
study = quality_study()


def test_the_book_reads_the_checkouts_study_and_the_library_never_imports_it():
    assert Path(study.__file__) == ROOT / "benchmarks" / "quality" / "__init__.py"
    assert quality_study() is study  # imported once
    assert {r["candidate"] for r in study.results.read_rows()} <= set(study.candidates.CANDIDATES)
    imports = [f"{path.relative_to(ROOT)}: {name}"
               for path in (ROOT / "pggan_core").rglob("*.py")
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Import | ast.ImportFrom)
               for name in ([a.name for a in node.names] if isinstance(node, ast.Import)
                            else [node.module or ""])
               if name.split(".")[0] == "benchmarks"]
    assert imports == []  # only quality_study loads it, by name, when a page asks


def test_figure_trends_fit_log_compute_with_bands_and_never_read_past_their_reach():
    from pggan_core.runs.folder import run_config

    config = run_config("rop", "smoke").to_dict()

    def row(candidate, doublings, variant, swd, seed=0):
        # the study's compute: the smoke schedule at 2^doublings times its images per step
        schedule = dict(config["schedule"], batch_size={
            r: b * 2 ** doublings for r, b in config["schedule"]["batch_size"].items()})
        return {"candidate": candidate, "dataset": "rop", "variant": variant, "seed": seed,
                "config": dict(config, schedule=schedule), "swd_image_over_floor": swd}

    # image SWD / floor falls 0.5 per doubling of compute, with a little scatter
    rows = [row("q_base", 0, "seg", 3.5), row("q_wide", 1, "seg", 3.1),
            row("q_wide", 1, "seg", 2.9, seed=1), row("demo", 2, "seg", 2.5),
            row("q_lr1", 1, "seg", 9.0), row("q_base", 0, "noseg", 1.4),
            row("q_wide", 1, "noseg", 1.6)]
    trends = {(t.key, t.variant): t for t in study.trends.figure_trends(rows)}
    swd, image_only = trends[("swd_image_over_floor", "seg")], trends[("swd_image_over_floor",
                                                                       "noseg")]
    assert len(swd.points) == 4  # both seeds, not the failed setting
    computes = [c for c, _ in swd.points]
    assert computes[1] == pytest.approx(2 * computes[0]) and computes[1] == computes[2]
    assert swd.slope == pytest.approx(-0.5) and swd.fit.pvalue < 0.05
    low, high = swd.band(swd.reach)
    assert low < swd.at(swd.reach) < high and swd.reach == pytest.approx(2 * computes[-1])
    assert swd.band(computes[-1])[1] - swd.band(computes[-1])[0] < high - low  # widens outward
    # two runs leave no degree of freedom: no line, no band
    assert image_only.fit is None and image_only.band(1.0) is None
    table = study.tables.figure_trend_table(trends.values()).set_index(["measure", "variant"])
    label = next(label for key, label, _ in study.trends.FIGURE_GOALS
                 if key == "swd_image_over_floor")
    assert table.loc[(label, "with seg."), "per doubling"].startswith("-0.50 ± ")
    assert table.loc[(label, "image only"), "per doubling"] == "— (fewer than 3 runs)"
    (swd_line,) = [line for line in study.tables.figure_trend_lines(trends.values())
                   if label in line]
    assert "at 2× that compute a run would land at" in swd_line and "(2 runs: no line)" in swd_line

    import matplotlib
    matplotlib.use("Agg")

    fig = study.figures.figure_trends_figure(list(trends.values()), study.trends.FIGURE_GOALS)
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "-"]
    assert line.get_xdata()[-1] == pytest.approx(swd.reach)  # never drawn past its reach
    assert len(fig.axes[0].collections) == 1  # one band, for the one line
    # two lines crossing beyond their reach are not said to cross
    steep = [row("q_base", 0, "noseg", 0.5), row("q_wide", 1, "noseg", 0.6),
             row("demo", 2, "noseg", 0.7)]
    (flat,) = [t for t in study.trends.figure_trends(steep) if t.key == "swd_image_over_floor"
               and t.variant == "noseg"]
    assert swd.crossing(flat) is None  # they meet 3 doublings past the top, beyond 2x


def test_the_encoder_sweep_reads_every_row_and_names_the_primary_attribute_as_it_trains():
    def row(maps, iterations, recovery, own, primary):
        return {"width": maps / 16, "feature_maps_at_top": maps, "iterations": iterations,
                "recovery": recovery, "own_first": own, "own_first_chance": 0.05, "r2": 0.2,
                "heldout_mse": 0.05,
                "figure5": {"encoded reals": {"primary": primary,
                                              "silhouette": {"laterality": 0.3,
                                                             "brightness": 0.1}}}}

    sweep = {"rows": [row(32, 1000, 0.7, 0.2, None), row(16, 1000, 0.5, 0.1, "laterality"),
                      row(16, 500, 0.4, 0.3, "brightness")],
             "run_encoder": {"iterations": 4000, "lr": 0.001, "betas": [0.9, 0.99],
                             "recovery": 0.54, "own_first": 0.07, "primary": None}}
    from benchmarks.quality import encoder_sweep

    table = encoder_sweep.sweep_table(sweep)
    assert list(table.index) == [(16, 500), (16, 1000), (32, 1000)]
    assert table.loc[(32, 1000), "primary (encoded reals)"] == "none"
    reading = encoder_sweep.sweep_reading(sweep)
    assert "recovery 0.70 (goal 0.85) with 32 maps after 1,000" in reading
    assert "own-input share 0.30 (goal 0.5, chance 0.05) with 16 maps after 500" in reading
    assert "Laterality is primary in the encoded reals for 1 of 3 encoders" in reading
    assert "16 maps: brightness (500), laterality (1,000); 32 maps: none (1,000)" in reading
    assert "The run's own encoder (4,000 updates, lr 0.001" in reading
    figure = encoder_sweep.sweep_figure(sweep)
    # widths, star, goal, chance; the fourth place holds the legend
    assert [len(ax.lines) for ax in figure.axes] == [4, 5, 2, 0]
    # a row added later on another machine says so; the others are the sweep's own machine's
    sweep |= {"machine": {"cpu": "Xeon", "ATEN_CPU_CAPABILITY": "avx2"}, "threads": 1}
    sweep["rows"][0] |= {"machine": "EPYC", "data_fingerprint": "f87eae0557fe"}
    assert encoder_sweep.measured_on(sweep) == (
        "measured on: EPYC (1 row); Xeon, ATEN_CPU_CAPABILITY=avx2 (2 rows); 1 thread(s); rows "
        "with a machine of their own read the prepared data f87eae0557fe")


def test_one_brightness_evens_the_photographs_brightness_and_leaves_the_rest(tmp_path):
    import numpy as np

    from pggan_core.data.store import DatasetWriter, PreparedDataset

    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "ds", "rop", 6, 16) as writer:
        for i in range(6):  # a field of view of differing brightness, a vessel channel
            image = np.full((4, 16, 16), -1.0, np.float32)
            image[:3, 2:14, 2:14] = rng.uniform(-0.6, 0.4) + rng.uniform(-0.05, 0.05, (3, 12, 12))
            image[3] = rng.uniform(-1, 1, (16, 16))
            writer.add(i, image, {"split": "train" if i < 5 else "heldout", "laterality": "OD"})
    study.levers.one_brightness(tmp_path / "ds", tmp_path / "flat")
    before, after = PreparedDataset(tmp_path / "ds"), PreparedDataset(tmp_path / "flat")
    for resolution in (16, 8):
        old, new = before.images(resolution), after.images(resolution)
        spread = [np.ptp(study.levers.field_brightness(x)) for x in (old, new)]
        assert spread[1] < 0.05 * spread[0]  # one brightness, at every level
        assert np.array_equal(old[:, 3], new[:, 3])  # the vessel channel as it was
    target = np.median(study.levers.field_brightness(before.images(16))[:5])
    assert study.levers.field_brightness(after.images(16)) == pytest.approx(target, abs=1.0)
    # a run trained on it records other data than the book's
    assert before.data_record()["manifest_sha256"] != after.data_record()["manifest_sha256"]
    assert after.manifest["study_lever"].str.startswith("one brightness").all()


def test_figure5_lever_table_names_each_views_leaders_and_reads_laterality_beside_them():
    def row(candidate, seed, leaders):
        scores = [{"view": view, "attribute": a, "silhouette": s, "knn_gain": g}
                  for view, by in leaders.items() for a, (s, g) in by.items()]
        primary = {view: {"by_silhouette": max(by, key=lambda a: by[a][0]),
                          "by_knn_gain": max(by, key=lambda a: by[a][1])} for view, by in
                   leaders.items()}
        for lead in primary.values():
            lead["primary"] = lead["by_silhouette"] if lead["by_silhouette"] == \
                lead["by_knn_gain"] else None
        return {"candidate": candidate, "seed": seed,
                "attributes": {"scores": scores, "primary": primary}}

    rows = [row("q_f5_z128", 0, {"encoded reals": {"laterality": (0.2, 0.3),
                                                   "brightness": (0.1, 0.1)}}),
            row("q_f5", 0, {"encoded reals": {"laterality": (0.05, 0.3),
                                              "brightness": (0.1, 0.2)}}),
            {"candidate": "q_wide", "seed": 0}]  # not a lever: left out
    table = study.tables.figure5_lever_table(rows)
    assert list(table["run"]) == ["q_f5", "q_f5_z128"]
    assert list(table["primary"]) == ["none", "laterality"]
    assert list(table["first by silhouette / 5-NN gain"]) == ["brightness / laterality",
                                                             "laterality / laterality"]
    assert table["laterality: silhouette / gain"].tolist() == ["0.050 / +0.30", "0.200 / +0.30"]
    assert len(table.columns) == 6  # narrow enough for the page's content column
    reading = study.tables.figure5_lever_reading(rows)
    assert reading.startswith("Laterality is primary in the encoded reals of 1 of the 2 runs")
    assert "`q_f5` (seed 0) — encoded reals: none (brightness by silhouette, laterality by " \
        "5-NN gain)" in reading
