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

The site needs no internet: plotly outputs get an HTML rendering that calls the site's own
``plotly.min.js`` (copied from the installed plotly package); the widget manager (require.js +
@jupyter-widgets/html-manager) and MathJax are served from ``_build/vendor/``, filled once by
:func:`fetch_offline_js` (fetched by the first ``pggan book``; needs npm).
This module is also the Sphinx extension that serves those files.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import papermill
import yaml
from jupyter_book.config import get_default_sphinx_config

from pggan_core.config import DATASETS, PROFILES, load_config
from pggan_core.errors import ConfigError, PgganError
from pggan_core.paths import checkout_root, prepared_dir, repo_root, run_dir
from pggan_core.pretrained import NOTE_WIDTH, pretrained_note
from pggan_core.runs import pretrain, recorded_data

DATASET_TITLES = {"rop": "Fundus photographs (ROP)", "brats": "Glioma MRI (BraTS)"}
DATASET_SHORT = {"rop": "ROP", "brats": "BraTS"}
NOTEBOOK_PARAMETERS = ("dataset", "profile", "seed", "source")
NOTEBOOK_GLOB = "[0-9][0-9]_*.md"
# The widget manager myst-nb would otherwise load from cdnjs / jsdelivr (versions it pins).
REQUIREJS = "requirejs@2.3.4"
HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.6"
HTML_MANAGER_DIST = "@jupyter-widgets/html-manager/dist"
MATHJAX = "mathjax@3.2.2"  # Sphinx's default MathJax 3, served from the site for math pages
VENDOR_SUFFIXES = (".woff", ".woff2", ".ttf", ".eot", ".svg")  # fonts its CSS refers to


class BookError(PgganError):
    """A notebook raised, or Sphinx reported an error or warning, while building the book."""


# ---------------------------------------------------------------------------------------------
# provenance


def provenance(profile: str, seed: int, root: Path | None = None) -> dict[str, str]:
    """Profile, seed, git commit (with ``+dirty`` for local changes) and UTC build time."""
    root = root or checkout_root()
    try:
        commit = _git(root, "rev-parse", "--short", "HEAD")
        if _git(root, "status", "--porcelain", "--untracked-files=no"):
            commit += "+dirty"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    built = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"profile": profile, "seed": str(seed), "commit": commit, "built": built}


def provenance_banner(profile: str, seed: int, dataset: str | None = None,
                      source: str | Path | None = None) -> str:
    """A line for the top of a page or a notebook's output, e.g.
    ``dataset rop · profile demo · seed 0 · commit 1a2b3c4 · built 2026-01-01 12:00 UTC`` (two
    when it would not fit the output's width), the data the page shows (``data_caption``), and
    a paragraph when the dataset's run is a shipped one (``pretrained.pretrained_note``)."""
    facts = provenance(profile, seed)
    parts = [f"dataset {dataset}"] if dataset else []
    parts += [f"profile {facts['profile']}", f"seed {facts['seed']}",
              f"commit {facts['commit']}", f"built {facts['built']}"]
    lines = [parts[0]]
    for part in parts[1:]:  # as many facts per line as a code cell's output shows unscrolled
        if len(lines[-1]) + 3 + len(part) <= NOTE_WIDTH:
            lines[-1] += f" · {part}"
        else:
            lines.append(part)
    if dataset:
        lines.append(textwrap.fill(f"data: {data_caption(dataset, profile, source)}",
                                   NOTE_WIDTH, break_long_words=False, break_on_hyphens=False,
                                   subsequent_indent="  "))
    note = pretrained_note(run_dir(dataset, profile, "seg", source=source)) if dataset else None
    return "\n".join(lines) + (f"\nGAN {note}" if note else "")


def data_record(dataset: str, profile: str, source: str | Path | None = None,
                root: Path | None = None) -> dict[str, Any] | None:
    """What the book's (dataset, profile) run on ``source`` was trained on (its ``run.json``),
    or the prepared dataset's record before there is a run; None when neither exists yet."""
    from pggan_core.data.store import PreparedDataset

    recorded = recorded_data(run_dir(dataset, profile, "seg", root, source))
    if recorded:
        return recorded
    prepared = prepared_dir(dataset, profile, root, source)
    return PreparedDataset(prepared).data_record() if (prepared / "dataset.json").is_file() \
        else None


def data_caption(dataset: str, profile: str, source: str | Path | None = None,
                 root: Path | None = None) -> str:
    """The data a page shows, in words: the built-in phantom or the user's folder (its name,
    path and image count) and where its vessel maps or tumour labels come from."""
    record = data_record(dataset, profile, source, root)
    what = data_short(dataset, source) + ("" if source is None else f" ({source})")
    if record is None:
        return f"{what}, not prepared yet"
    unit = "slices" if dataset == "brats" else "images"
    text = f"{what}: {record['n_images']} {unit}"
    if dataset == "brats":
        return f"{text}, tumour labels from {'the phantom' if source is None else 'its seg files'}"
    vessels = {"mask": "the phantom's exact vessels" if source is None else
               "its manual vessel masks", "unet": "the vessel U-Net"}
    return f"{text}, vessel channel from {vessels.get(record.get('vessel_channel'), 'unknown')}"


def data_short(dataset: str, source: str | Path | None = None) -> str:
    """A few words for a figure title: ``the built-in fundus phantom`` or ``your folder
    DRIVE``."""
    if source is None:
        return f"the built-in {'fundus' if dataset == 'rop' else 'brain'} phantom"
    return f"your folder {Path(source).name}"


def data_summary(datasets: Sequence[str], sources: dict[str, str]) -> str:
    """The book-wide banner's words for its data, e.g. ``ROP: your folder DRIVE · BraTS: the
    built-in brain phantom``."""
    if not sources:
        return "built-in phantoms"
    return " · ".join(f"{DATASET_SHORT[d]}: {data_short(d, sources.get(d))}" for d in datasets)


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


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


# ---------------------------------------------------------------------------------------------
# results and scale tables (read at build time by book/results.md and book/limitations.md)


@dataclass(frozen=True)
class Claim:
    """One paper claim or figure and the metric our evaluation writes for it."""

    claim: str
    where: str  # section / figure of Beers et al. (2018)
    paper_value: str
    metric: str  # key in runs/<dataset>/<profile>/seg/metrics.json
    datasets: tuple[str, ...]


CLAIMS = (
    Claim("The GAN's own vessel channel predicts the vessels a U-Net segments from the "
          "synthetic photograph (AUC)", "Image Quality", "0.97", "vessel_agreement_auc",
          ("rop",)),
    Claim("Reference: the same AUC on held-out real images, their ground-truth vessel masks "
          "in place of the GAN's channel", "—", "not reported",
          "vessel_agreement_auc_reference", ("rop",)),
    Claim("Generated images look like the real ones (SWD ×10³ to real images, lower is "
          "closer)", "Image Quality, Figure 2", "qualitative only", "swd_mean", DATASETS),
    Claim("Reference: SWD ×10³ between two halves of the real images (the floor)", "—",
          "not reported", "swd_floor_mean", DATASETS),
    Claim("Generated images are varied (MS-SSIM of generated pairs, lower is more diverse)",
          "Image Variety, Figure 2", "qualitative only", "ms_ssim_generated", DATASETS),
    Claim("Reference: MS-SSIM of real pairs", "—", "not reported", "ms_ssim_real", DATASETS),
    Claim("Generated images are not copies (median distance to the nearest training image)",
          "—", "not reported", "nn_distance_generated_median", DATASETS),
    Claim("Reference: the same distance for held-out real images", "—", "not reported",
          "nn_distance_heldout_median", DATASETS),
    Claim("The encoder recovers the latent vector of generated images (R²)",
          "Network Architectures, Figure 4", "qualitative only", "encoder_r2", DATASETS),
    Claim("Left/right eye is primary in the latent space (k-NN accuracy on encoded latents)",
          "Latent Space Expression, Figure 5", "qualitative (t-SNE)",
          "knn_laterality_accuracy", ("rop",)),
    Claim("Reference: chance for that accuracy (the majority class)", "—", "not reported",
          "knn_laterality_chance", ("rop",)),
    Claim("Encoded slices can be traversed by axial position (Spearman of k-NN-predicted vs "
          "true slice position)", "Latent Space Expression (Supplement)", "qualitative",
          "knn_slice_position_spearman", ("brats",)),
    Claim("Tumour presence can be told from the encoded latent (k-NN accuracy)",
          "Latent Space Expression", "qualitative", "knn_tumour_accuracy", ("brats",)),
    Claim("Reference: chance for that accuracy (the majority class)", "—", "not reported",
          "knn_tumour_chance", ("brats",)),
)

NOT_COMPUTED = "not computed in this build"


# Results files a run folder gains, and how their keys are named in the claims table.
# file: (key renames, the command that writes it again)
RESULT_FILES = {
    "metrics.json": ({}, "pggan evaluate --run {run}"),
    "encoder.json": ({"r2": "encoder_r2"}, "pggan encode --run {run}"),
    "latent_space.json": ({}, "pggan latent --run {run}"),
}


def read_metrics(dataset: str, profile: str, root: Path | None = None,
                 source: str | Path | None = None) -> dict[str, Any]:
    """Every result of the (dataset, profile) run on ``source`` (None: the phantom) merged
    into one dict ({} if none yet).

    ``metrics.json`` (evaluation), ``encoder.json`` (its ``r2`` as ``encoder_r2``) and
    ``latent_space.json`` (k-NN accuracies).
    """
    folder = run_dir(dataset, profile, "seg", root, source)
    merged: dict[str, Any] = {}
    for name, (renames, command) in RESULT_FILES.items():
        path = folder / name
        if not path.is_file():
            continue
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise BookError(f"{path}: not valid JSON ({error}); write it again with "
                            f"`{command.format(run=folder)}`") from error
        merged.update({renames.get(k, k): v for k, v in values.items()})
    return merged


def claims_table(profile: str, datasets: Sequence[str] = DATASETS,
                 root: Path | None = None, sources: dict[str, str] | None = None):
    """The results table: each claim, the paper's value, and ours per dataset, read from the
    runs' ``metrics.json`` (the runs on ``sources[dataset]`` where given, else on the
    phantom); a missing file or key reads "not computed in this build"."""
    import pandas as pd

    sources = sources or {}
    metrics = {d: read_metrics(d, profile, root, sources.get(d)) for d in datasets}
    rows = []
    for claim in CLAIMS:
        row = {"claim": claim.claim, "paper section": claim.where,
               "paper value": claim.paper_value, "metric": claim.metric}
        for d in datasets:
            value = metrics[d].get(claim.metric) if d in claim.datasets else "n/a"
            # a result file may say why a value does not exist ("<metric>_missing")
            value = metrics[d].get(f"{claim.metric}_missing") if value is None else value
            row[f"ours: {DATASET_SHORT[d]}"] = _format_value(value)
        rows.append(row)
    return pd.DataFrame(rows)


def _format_value(value: Any) -> str:
    if value is None:
        return NOT_COMPUTED
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return NOT_COMPUTED if math.isnan(value) else f"{value:.3f}"


# What the demo profile aims for (the project's goals for a 2-core build; the paper itself
# reports only the AUC of 0.97): the quality study and its book page measure against these.
DEMO_GOALS = {"swd_over_floor": 2.0, "ms_ssim_gap": 0.05, "vessel_agreement_auc": 0.90,
              "encoder_r2": 0.6, "knn_laterality_accuracy": 0.90, "knn_accuracy": 0.90,
              "knn_tumour_accuracy": 0.85}


def quality_study_path(root: Path | None = None) -> Path:
    """The quality study's results (``benchmarks/quality_study.py``), committed."""
    return (root or checkout_root()) / "benchmarks" / "results" / "quality_study.json"


def quality_study_rows(root: Path | None = None) -> list[dict[str, Any]]:
    """Every row of the quality study, or BookError naming the command that writes them."""
    path = quality_study_path(root)
    if not path.is_file():
        raise BookError(f"{path} is missing: run `python benchmarks/quality_study.py` (hours)")
    return json.loads(path.read_text())["rows"]


def quality_study_table(rows: Sequence[dict[str, Any]]):
    """One line per trained configuration: its budget and each measure, goals in the header."""
    import pandas as pd

    g = DEMO_GOALS
    table = pd.DataFrame([{
        "dataset": DATASET_SHORT[r["dataset"]], "configuration": r["candidate"],
        "CPU-min": r["train_seconds"] * r.get("threads", 1) / 60,
        "images seen (k)": r["images_seen"] / 1000,
        f"SWD/floor (≤ {g['swd_over_floor']})": r["swd_over_floor"],
        f"MS-SSIM gap (±{g['ms_ssim_gap']})": r["ms_ssim_gap"],
        f"vessel AUC (≥ {g['vessel_agreement_auc']})": r.get("vessel_agreement_auc"),
        "AUC reference": r.get("vessel_agreement_auc_reference"),
        f"encoder R² (≥ {g['encoder_r2']})": r["encoder_r2"],
        # only rows scored since the inversion test existed carry it
        "R² by optimisation": r.get("encoder_r2_optimised"),
        f"k-NN (≥ {g['knn_laterality_accuracy']} / {g['knn_tumour_accuracy']})":
            r.get("knn_laterality_accuracy", r.get("knn_tumour_accuracy")),
        "k-NN chance": r.get("knn_laterality_chance", r.get("knn_tumour_chance")),
    } for r in sorted(rows, key=lambda r: (r["dataset"] != "rop", r["train_seconds"]))])
    # a measure a row has no value for (the vessel AUC of MRI) reads as a dash, not "nan"
    return table.round(3).astype(object).fillna("—")


GOAL_ROWS = (  # (measure, key in a study row, goal, datasets)
    ("vessel-agreement AUC, paper direction", "vessel_agreement_auc", "≥ 0.90", ("rop",)),
    ("SWD ×10³ generated vs real, over the real-vs-real floor", "swd_over_floor", "≤ 2",
     ("rop", "brats")),
    ("MS-SSIM of generated pairs minus real pairs", "ms_ssim_gap", "within ±0.05",
     ("rop", "brats")),
    ("encoder R² on held-out generated latents", "encoder_r2", "≥ 0.6", ("rop", "brats")),
    ("k-NN laterality of encoded real latents", "knn_laterality_accuracy", "≥ 0.90", ("rop",)),
    ("k-NN tumour presence of encoded real latents", "knn_tumour_accuracy", "≥ 0.85",
     ("brats",)),
)


def _meets(value: float, goal: str) -> bool:
    number = float(goal.split()[-1].lstrip("±"))
    if goal.startswith("≥"):
        return value >= number
    if goal.startswith("≤"):
        return value <= number
    return abs(value) <= number


def quality_goal_table(rows: Sequence[dict[str, Any]], candidate: str):
    """The demo's goals against one configuration of the quality study, both datasets: the
    measured value and whether it meets the goal, per measure."""
    import pandas as pd

    by_dataset = {r["dataset"]: r for r in rows if r["candidate"] == candidate}
    table = []
    for measure, key, goal, datasets in GOAL_ROWS:
        line = {"measure": measure, "goal": goal}
        for d in DATASETS:
            value = by_dataset.get(d, {}).get(key) if d in datasets else None
            verdict = "" if value is None else "met" if _meets(value, goal) else "not met"
            line[DATASET_SHORT[d]] = ("n/a" if d not in datasets else NOT_COMPUTED
                                      if value is None else f"{value:.3f} ({verdict})")
        table.append(line)
    return pd.DataFrame(table)


def read_phase_curves(profile: str, datasets: Sequence[str] = DATASETS,
                      root: Path | None = None, sources: dict[str, str] | None = None
                      ) -> dict[str, list[dict[str, Any]]]:
    """The phase-end records (``phase_metrics.jsonl``) of the book's runs (on
    ``sources[dataset]`` where given), by run label."""
    curves = {}
    for d in datasets:
        for variant, label in (("seg", ""), ("noseg", ", no segmentation")):
            source = (sources or {}).get(d)
            path = run_dir(d, profile, variant, root, source) / "phase_metrics.jsonl"
            if path.is_file():
                curves[f"{DATASET_SHORT[d]}{label}"] = [
                    json.loads(line) for line in path.read_text().splitlines()]
    return curves


def images_per_resolution(config: Any) -> dict[int, int]:
    """Images the critic sees at each resolution (fade and stable) under ``config``."""
    from pggan_core.train import build_phases

    shown: dict[int, int] = {}
    for phase in build_phases(config):
        batch = config.schedule.batch_size[phase.resolution]
        shown[phase.resolution] = shown.get(phase.resolution, 0) + phase.iterations * batch
    return shown


def profile_table(datasets: Sequence[str] = DATASETS):
    """What each profile trains, side by side: the scale gap between the book and the paper."""
    import pandas as pd

    from pggan_core.train import build_phases

    rows = []
    for profile in PROFILES:
        for d in datasets:
            c = load_config(profile, d)
            s = c.schedule
            phases = build_phases(c)
            top = [p for p in phases if p.resolution == s.max_resolution]
            images = sum(images_per_resolution(c).values())
            rows.append({
                "profile": profile, "dataset": DATASET_SHORT[d],
                "images": f"{c.data.n_images:,}",
                "resolution": f"{s.start_resolution} → {s.max_resolution} px",
                "feature maps at the top": c.model.feature_maps[s.max_resolution],
                "latent": c.model.latent_dim,
                "fade + stable at the top": " + ".join(f"{p.iterations:,}" for p in top),
                "GAN iterations": f"{sum(p.iterations for p in phases):,}",
                "images shown": f"{images:,}",
                "encoder iterations": f"{c.encoder.iterations:,}",
            })
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class MethodStep:
    """One sentence of the paper, the config key that holds its number, the code that does it."""

    quote: str  # Beers et al. (2018), verbatim or nearly
    section: str
    key: str | None  # "section.field" in Config, None where the step has no number
    code: str  # "module:name" in pggan_core, checked importable by the tests


METHOD = (
    MethodStep("All images were resized to 512 × 512 pixels", "ROP Dataset",
               "data.resolution", "pggan_core.data.prepare:prepare_dataset"),
    MethodStep("converting images to grayscale and applying gamma adjustment", "ROP Dataset",
               "data.gamma", "pggan_core.data.preprocess:gamma_correct"),
    MethodStep("contrast-limited adaptive histogram equalization (CLAHE)", "ROP Dataset",
               "data.clahe_clip", "pggan_core.data.preprocess:clahe"),
    MethodStep("A U-net pre-trained on 200 manually segmented vessel images", "ROP Dataset",
               "vessels.n_train_images", "pggan_core.data.vessels:train_vessel_unet"),
    MethodStep("operates on 48 × 48 pixel patches", "ROP Dataset", "vessels.patch",
               "pggan_core.data.vessels:extract_patches"),
    MethodStep("with an overlap of 8 pixels in the x and y directions",
               "ROP Dataset; a stride of 8 in the authors' code", "vessels.stride",
               "pggan_core.data.vessels:stitch_patches"),
    MethodStep("We preprocessed each MR volume to have zero mean and unit variance",
               "BraTS Dataset", "data.z_clip", "pggan_core.data.preprocess:zscore_volume"),
    MethodStep("two-dimensional magnetic resonance images",
               "Introduction; the slice rule is ours", "data.slices_per_subject",
               "pggan_core.data.preprocess:select_slices"),
    MethodStep("we included segmentation maps previously described as additional channels",
               "Effect of Segmentation Channels", None, "pggan_core.data.store:CHANNELS"),
    MethodStep("produce realistic downsampled images at 4x4 pixel resolution",
               "Network Architectures", "schedule.start_resolution",
               "pggan_core.train:build_phases"),
    MethodStep("from a 128-vector latent space", "Network Architectures", "model.latent_dim",
               "pggan_core.networks:Generator"),
    MethodStep("For the retinopathy of prematurity dataset, we trained up to 512 pixel "
               "resolution, while for the glioma dataset, we trained up to 256",
               "Network Architectures", "schedule.max_resolution",
               "pggan_core.train:build_phases"),
    MethodStep("we interpolate between nearest neighbor upsampling alone, and nearest neighbor "
               "upsampling followed by the newly-added pair of convolutional layers",
               "Network Architectures", "schedule.fade_iterations",
               "pggan_core.networks:upsample"),
    MethodStep("20,000 iterations training without interpolation", "Network Architectures",
               "schedule.stable_iterations", "pggan_core.train:Trainer"),
    MethodStep("Convolutional layers below 256 pixel resolution are set at 128 filters, while "
               "layers at and above 256 are set to 64 and 16 layers respectively",
               "Network Architectures", "model.feature_maps", "pggan_core.networks:Generator"),
    MethodStep("Training stages at resolutions below 512 pixels are trained with a 16 image "
               "batch size, while resolutions equal to and above 512 pixels are trained with an "
               "8 image batch size",
               "Network Architectures", "schedule.batch_size", "pggan_core.train:Trainer"),
    MethodStep("trained using an Adam optimizer", "Network Architectures", "train.lr",
               "pggan_core.train:Trainer"),
    MethodStep("We evaluated the loss for the GAN using a Wasserstein loss",
               "Network Architectures; WGAN-GP with drift, after Karras et al.",
               "train.gp_lambda",
               "pggan_core.losses:discriminator_loss"),
    MethodStep("trained the generator and discriminator in equal proportion",
               "Network Architectures", "train.d_steps_per_g_step",
               "pggan_core.losses:generator_loss"),
    MethodStep("a network for encoding images using the same network architecture as the "
               "discriminator ... terminating in a 128-vector", "Network Architectures",
               "model.latent_dim", "pggan_core.networks:Encoder"),
    MethodStep("trained in a non-progressive manner for 20,000 iterations",
               "Network Architectures", "encoder.iterations", "pggan_core.networks:Encoder"),
    MethodStep("segmentation maps generated from the GAN could accurately predict the "
               "segmentation maps generated from the segmentation algorithm with the AUC of "
               "0.97", "Image Quality", None, "pggan_core.metrics:vessel_agreement_auc"),
    MethodStep("Each point has been color-coded according to whether its image represents a "
               "right eye or left eye", "Latent Space Expression", "eval.tsne_perplexity",
               "pggan_core.metrics:nearest_neighbours"),
)


def config_value(config: Any, key: str | None) -> str:
    """``config``'s value at ``"section.field"`` as short text ("—" for no key)."""
    if key is None:
        return "—"
    section, name = key.split(".")
    value = getattr(getattr(config, section), name)
    if isinstance(value, dict):  # per-resolution tables: runs of equal values, used range only
        runs: list[list[Any]] = []  # [first resolution, last resolution, value]
        for res in sorted(r for r in value if r <= config.schedule.max_resolution):
            if runs and runs[-1][2] == value[res]:
                runs[-1][1] = res
            else:
                runs.append([res, res, value[res]])
        return ", ".join(f"{a}–{b} px: {v}" if a != b else f"{a} px: {v}" for a, b, v in runs)
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def method_table(dataset: str = "rop"):
    """The paper's method, sentence by sentence: config key, value per profile, and code."""
    import pandas as pd

    configs = {p: load_config(p, dataset) for p in PROFILES}
    rows = []
    for step in METHOD:
        code = step.code.removeprefix("pggan_core.").replace(":", ".")
        row = {"the paper says": f"“{step.quote}” ({step.section})",
               "config key, code in pggan_core": f"`{step.key}` " * bool(step.key) + f"`{code}`"}
        for profile in ("paper", "demo", "smoke"):
            row[profile] = config_value(configs[profile], step.key)
        rows.append(row)
    return pd.DataFrame(rows)


def as_markdown(table) -> Any:
    """A DataFrame as a Markdown table, so the book styles and wraps it like its prose tables."""
    from IPython.display import Markdown

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return Markdown("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# executing notebooks


def discover_notebooks(root: Path) -> list[Path]:
    """The book's notebooks, ``notebooks/NN_name.md``, in number order."""
    return sorted((root / "notebooks").glob(NOTEBOOK_GLOB))


def notebook_datasets(source: Path) -> tuple[str, ...]:
    """The datasets a notebook is built for: its front matter's ``pggan: {datasets: [...]}``,
    or every dataset (the vessel chapter, say, concerns the fundus only)."""
    front = jupytext.read(source).metadata.get("pggan", {})
    return tuple(front.get("datasets", DATASETS))


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
                                   progress_bar=False, kernel_name="python3")
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
    suffix = f" ({DATASET_SHORT[dataset]})"
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


# ---------------------------------------------------------------------------------------------
# staging: generated _toc.yml / _config.yml


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
                parts.append({"caption": f"Notebooks: {DATASET_TITLES[d]}",
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
        *sphinx.pop("extra_extensions", []), "pggan_core.book"]
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


# ---------------------------------------------------------------------------------------------
# the build


def build_book(profile: str = "demo", datasets: Sequence[str] = DATASETS,
               out: Path | None = None, check: bool = False, seed: int = 0,
               root: Path | None = None, train_here: bool = False,
               sources: dict[str, str] | None = None) -> Path:
    """Execute every notebook for each dataset, build the HTML, return ``out/html``.

    ``sources`` maps a dataset to the user's folder (``parse_sources``): its chapters, banner
    and claims then show runs trained on that folder, the phantom's stay for the others. The
    GANs are the profile's shipped runs where it has them (``pretrained``, verified; phantoms
    only), and are trained here otherwise, or all of them with ``train_here``.

    ``out`` defaults to ``_build/<profile>``. With ``check=True`` the site is then opened in
    headless chromium (see :mod:`pggan_core.browser_check`), screenshots go to
    ``out/screenshots``, and any problem raises BookError.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    for d in datasets:
        if d not in DATASETS:
            raise ConfigError(f"unknown dataset {d!r}: choose one of {', '.join(DATASETS)}")
    root = root or repo_root()
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
                                  "train_here": train_here, "sources": sources}
    prose_notebooks = []
    for page in sorted(p for p in (root / "book").rglob("*") if p.is_file()):
        if _is_notebook(page):
            prose_notebooks.append(page)  # run after the notebooks: they read their results
            continue
        dest = src / page.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(page, dest)

    notebooks = discover_notebooks(root)
    with _timer("training (or installing the shipped) runs in parallel lanes"):
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
            with _timer(f"{source.name} [{d}]"):
                execute_notebook(source, dest, {**parameters, "dataset": d,
                                                "source": sources.get(d)}, root)
            executed = nbformat.read(dest, as_version=4)
            _title_for_dataset(executed, source.stem, d)
            nbformat.write(executed, dest)
    for page in prose_notebooks:
        with _timer(page.name):
            execute_notebook(page, (src / page.relative_to(root)).with_suffix(".ipynb"),
                             parameters, root, show_parameters=False)

    root_toc = yaml.safe_load((root / "_toc.yml").read_text())
    root_config = yaml.safe_load((root / "_config.yml").read_text())
    (src / "_toc.yml").write_text(yaml.safe_dump(
        staged_toc(root_toc, stems, datasets), sort_keys=False))
    (src / "_config.yml").write_text(yaml.safe_dump(
        staged_config(root_config, profile, seed, root, weights,
                      data_summary(datasets, sources)), sort_keys=False))
    with _timer("sphinx"):
        run_sphinx(src, html, out / "doctrees")
    print(f"book ({profile}) built in {time.perf_counter() - started:.0f} s: "
          f"{html / 'index.html'}")

    if check:
        from pggan_core.browser_check import check_book

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


@contextmanager
def _timer(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


# ---------------------------------------------------------------------------------------------
# offline JavaScript: fetched once, served by the Sphinx extension below


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


def setup(app) -> dict[str, Any]:
    """Sphinx extension: serve plotly.js, the widget manager and MathJax from
    ``_static/offline-js/``, adding plotly.js only to pages that draw a plotly figure."""
    app.add_config_value("pggan_vendor_dir", "", "html")
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

    static = Path(app.outdir) / "_static" / "offline-js"
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static)
    shutil.copytree(app.config.pggan_vendor_dir, static, dirs_exist_ok=True)
