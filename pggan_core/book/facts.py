"""The book's tables: the quality study, the scale of each profile and the method sentence by
sentence (read by ``book/quality.md``, ``book/method.md`` and ``book/limitations.md`` at build
time); the paper's claims against this build's numbers are ``results_table``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from pggan_core.book.results_table import NOT_COMPUTED
from pggan_core.config import DATASETS, PROFILES, load_config
from pggan_core.datasets import dataset_ids, dataset_spec
from pggan_core.errors import BookError
from pggan_core.evaluation.evaluate import METRICS  # importing it registers the built-in ones
from pggan_core.paths import checkout_root
from pggan_core.runs.folder import RunSpec

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


FIGURES_ROUND = "q_"  # the candidates of the study's Figures 3-5 round (short schedule)


def budget_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The study's budget rows (with segmentation, growing budgets), not the Figures round."""
    return [r for r in rows if not r["candidate"].startswith(FIGURES_ROUND)
            and r.get("variant", "seg") == "seg"]


def figures_round_table(rows: Sequence[dict[str, Any]]):
    """The Figures 3-5 round of the quality study, and the book's own runs last: one line per
    configuration, variant and seed, with what the figures need of a generator (image-channel
    SWD over its floor, the vessel U-Net's reading of its photographs as ratios to real, what
    z encodes)."""
    import pandas as pd

    round_rows = [r for r in rows if r["candidate"].startswith(FIGURES_ROUND)]
    # the book's own runs beside them, scored the same way, on the round's datasets
    datasets = {r["dataset"] for r in round_rows}
    picked = sorted(round_rows + [r for r in rows if r["candidate"] == "demo"
                                  and r["dataset"] in datasets and "variant" in r],
                    key=lambda r: (r["dataset"], r["candidate"] == "demo", r["candidate"],
                                   r["variant"], r["seed"]))
    # short headers: twelve columns must fit the page's content column at 1280 px
    several = len({r["dataset"] for r in picked}) > 1
    table = pd.DataFrame([{
        "run": (f"{dataset_spec(r['dataset']).short} " if several else "") + f"{r['candidate']}, "
               f"{'seg.' if r['variant'] == 'seg' else 'no seg.'}, seed {r['seed']}",
        "train min": round(r["train_seconds"] * r.get("threads", 1) / 60),
        "image SWD / floor": r["swd_image_over_floor"],
        "vessel density": r.get("structure_vessel_density_ratio"),
        "junc- tions": r.get("structure_branch_points_ratio"),
        "side from z": r.get("generated_z_probe"),
        "z dims": r.get("participation_ratio"),
        "enc. R²": r.get("encoder_r2"),
        "k-NN side": r.get("knn_laterality_accuracy"),
    } for r in picked])
    return table.round(2).astype(object).fillna("—")


ROUND_MEASURES = (  # (key in a study row, what it is: lower SWD, ratios nearer 1, higher rest)
    ("swd_image_over_floor", "image-channel SWD / floor"),
    ("structure_vessel_density_ratio", "vessel density vs real"),
    ("structure_branch_points_ratio", "junctions vs real"),
    ("generated_z_probe", "laterality from true z"),
    ("encoder_r2", "encoder R²"),
    ("knn_laterality_accuracy", "k-NN laterality"),
)


def figures_round_summary(rows: Sequence[dict[str, Any]], baseline: str = "q_base"
                          ) -> list[str]:
    """One line per configuration of the Figures round against ``baseline``: each measure's
    mean over seeds (the spread beside it where there are several), with and without the
    segmentation channels. Read from the rows, so the page says what was measured."""
    import numpy as np

    picked = [r for r in rows if r["candidate"].startswith(FIGURES_ROUND)]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in picked:
        groups.setdefault((r["candidate"], r["variant"]), []).append(r)

    def cell(candidate: str, variant: str, key: str) -> str | None:
        group = groups.get((candidate, variant), [])
        values = [r[key] for r in group if r.get(key) is not None]
        if not values:
            return None
        if len(values) > 1:
            spread = f" (seeds {min(values):.2f}-{max(values):.2f})"
        else:  # scored on one seed of several (the encoder is not run on every seed)
            spread = f" (seed {next(r['seed'] for r in group if r.get(key) is not None)})" \
                if len(group) > 1 else ""
        return f"{np.mean(values):.2f}{spread}"

    lines = []
    for candidate in sorted({c for c, _ in groups}, key=lambda c: (c != baseline, c)):
        parts = []
        for variant, label in (("seg", "with seg."), ("noseg", "image only")):
            shown = [f"{what} {value}" for key, what in ROUND_MEASURES
                     if (value := cell(candidate, variant, key)) is not None]
            if shown:
                n = len(groups[(candidate, variant)])
                parts.append(f"{label} ({n} seed{'s' * (n > 1)}): " + ", ".join(shown))
        why = next(r["why"] for r in picked if r["candidate"] == candidate)
        lines.append(f"**`{candidate}`** ({why}): " + "; ".join(parts))
    return lines


# What Figures 3-5 ask of the demo's fundus GAN, drawn against its training compute (the
# project's goals at demo scale; the paper reports none of these numbers): (key in a study row,
# what it is, goal). The encoder's measures (R², laterality of encoded reals, Figure 4) are not
# drawn: every encoder of the study trained the same 4,000 iterations whatever its GAN's
# compute, so a line of them against the GAN's compute would credit the GAN with the encoder.
FIGURE_GOALS = (
    ("swd_image_over_floor", "image-channel SWD / floor", "≤ 1.5"),
    ("structure_vessel_density_ratio", "U-Net vessel density vs real", "≥ 0.9"),
    ("structure_branch_points_ratio", "U-Net junctions vs real", "≥ 0.8"),
)
# The paper's method at growing compute: the Figures round's base and wide configurations and
# the demo profile's own runs (wider and longer). The round's failed settings (q_lr1,
# q_ema999) are not on this path.
TREND_CANDIDATES = ("q_base", "q_wide", "demo")
REACH = 2.0  # no line is drawn or read beyond twice the largest compute a run measured
BAND = 0.95  # the prediction band: where a new run at that compute would land, 95 % of the time


@lru_cache(maxsize=64)
def _forward_multiply_adds(model_json: str, channels: int, resolution: int) -> float:
    """Multiply-adds of one forward pass of the generator and the critic for one image at
    ``resolution`` (``torch.utils.flop_counter`` counts two FLOPs per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from pggan_core.config import ModelConfig
    from pggan_core.training.architectures import build_network

    model = ModelConfig(**{**json.loads(model_json), "feature_maps": {
        int(k): v for k, v in json.loads(model_json)["feature_maps"].items()}})
    G = build_network("generator", model, channels, resolution)
    D = build_network("critic", model, channels, resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        D(G(torch.zeros(1, model.latent_dim), resolution, 1.0), resolution, 1.0)
    return counter.get_total_flops() / 2


def training_compute(row: dict[str, Any]) -> float:
    """A study row's training compute on an axis no machine changes, in 10¹² multiply-adds:
    one forward pass of its generator and critic per image, times the images the critic saw
    at each resolution, summed over the schedule (backward passes and the gradient penalty
    multiply it by about a constant)."""
    from pggan_core.config import config_from_dict

    config = config_from_dict(row["config"])
    spec = dataset_spec(row["dataset"])
    channels = (len(spec.channels) if row.get("variant", "seg") == "seg"
                else spec.image_channels)
    model_json = json.dumps(row["config"]["model"], sort_keys=True)
    return sum(images * _forward_multiply_adds(model_json, channels, resolution)
               for resolution, images in images_per_resolution(config).items()) / 1e12


@dataclass(frozen=True)
class Trend:
    """A measure against log2 training compute (``training_compute``) over the study's rows of
    one variant, fitted by least squares (``scipy.stats.linregress``) when there are three
    runs or more at two budgets or more: fewer leave no degree of freedom for its uncertainty,
    so no line is drawn."""

    key: str
    variant: str
    points: tuple[tuple[float, float], ...]  # (10¹² multiply-adds, value)

    @cached_property
    def fit(self) -> Any | None:
        """``linregress`` over (log2 compute, value): slope, intercept, stderr, pvalue."""
        from scipy.stats import linregress

        if len(self.points) < 3 or len({round(c, 6) for c, _ in self.points}) < 2:
            return None
        return linregress([math.log2(c) for c, _ in self.points], [v for _, v in self.points])

    @property
    def slope(self) -> float | None:
        return None if self.fit is None else float(self.fit.slope)

    @property
    def reach(self) -> float:
        """The largest compute the line may be read at: ``REACH`` times the largest run's."""
        return REACH * max(c for c, _ in self.points)

    def at(self, compute: float) -> float | None:
        """The fitted value at ``compute`` (None without a fit)."""
        return None if self.fit is None else float(
            self.fit.intercept + self.fit.slope * math.log2(compute))

    def band(self, compute: float) -> tuple[float, float] | None:
        """The ``BAND`` prediction interval at ``compute``: where one more run would land."""
        import numpy as np
        from scipy.stats import t as student

        if self.fit is None:
            return None
        x = np.log2([c for c, _ in self.points])
        y = np.array([v for _, v in self.points])
        n = len(x)
        residual = y - (self.fit.intercept + self.fit.slope * x)
        scale = math.sqrt(float(residual @ residual) / (n - 2))
        spread = ((math.log2(compute) - x.mean()) ** 2 / float(((x - x.mean()) ** 2).sum()))
        half = student.ppf((1 + BAND) / 2, n - 2) * scale * math.sqrt(1 + 1 / n + spread)
        centre = self.at(compute)
        return centre - half, centre + half

    def crossing(self, other: Trend) -> float | None:
        """Where this line crosses ``other`` beyond the largest compute either was trained at
        and within both lines' reach, or None: for the two variants, where Figure 3's verdict
        on the measure would turn if the lines held."""
        if self.fit is None or other.fit is None or self.slope == other.slope:
            return None
        doublings = (other.fit.intercept - self.fit.intercept) / (self.slope - other.slope)
        if doublings > math.log2(min(self.reach, other.reach)):
            return None
        cross = 2.0 ** doublings
        top = max(max(self.points)[0], max(other.points)[0])
        return cross if cross > top else None


def figure_trends(rows: Sequence[dict[str, Any]], dataset: str = "rop",
                  candidates: Sequence[str] = TREND_CANDIDATES) -> list[Trend]:
    """One ``Trend`` per measure of ``FIGURE_GOALS`` and variant (with / without the
    segmentation channels), over the rows of ``candidates`` on ``dataset``, every seed a
    point."""
    return [Trend(key, variant, tuple(sorted(
                (training_compute(r), float(r[key])) for r in rows
                if r["candidate"] in candidates and r["dataset"] == dataset
                and r.get("variant", "seg") == variant and r.get(key) is not None)))
            for key, _, _ in FIGURE_GOALS for variant in ("seg", "noseg")]


def _p(value: float) -> str:
    return "p < 0.01" if value < 0.01 else f"p = {value:.2f}"


def _range(interval: tuple[float, float]) -> str:
    return f"{interval[0]:.2f} to {interval[1]:.2f}"


def figure_trend_table(trends: Sequence[Trend]):
    """Per measure and variant: the runs' compute, the value at the largest, the fitted change
    per doubling with its standard error and p-value, and the prediction band at the line's
    reach (twice the largest compute), against the goal."""
    import pandas as pd

    labels = {key: (label, goal) for key, label, goal in FIGURE_GOALS}
    table = []
    for t in trends:
        if not t.points:
            continue
        label, goal = labels[t.key]
        latest = max(t.points)
        band = t.band(t.reach)
        table.append({
            "measure": label, "goal": goal,
            "variant": "with seg." if t.variant == "seg" else "image only",
            "runs": len(t.points),
            "10¹² MAC": f"{min(t.points)[0]:.1f}–{latest[0]:.1f}",
            "at the largest": f"{latest[1]:.2f}",
            "per doubling": ("— (fewer than 3 runs)" if t.fit is None else
                             f"{t.slope:+.2f} ± {t.fit.stderr:.2f} ({_p(t.fit.pvalue)})"),
            f"{BAND:.0%} band at {REACH:g}× the largest": "—" if band is None else _range(band),
        })
    return pd.DataFrame(table)


def figure_trend_lines(trends: Sequence[Trend]) -> list[str]:
    """One sentence per measure, only what the fits carry: where each variant stands at its
    largest compute, its change per doubling with the p-value, where a run at twice that
    compute would land (the band) against the goal, and (Figure 3) whether the two variants'
    bands there overlap."""
    by_key: dict[str, dict[str, Trend]] = {}
    for t in trends:
        if t.points:
            by_key.setdefault(t.key, {})[t.variant] = t
    lines = []
    for key, label, goal in FIGURE_GOALS:
        variants = by_key.get(key, {})
        if not variants:
            continue
        parts = []
        for variant, t in variants.items():
            name = "with the channels" if variant == "seg" else "image only"
            compute, value = max(t.points)
            text = f"{name} {value:.2f} at {compute:.1f}×10¹² MAC"
            if t.fit is None:
                text += f" ({len(t.points)} runs: no line)"
            else:
                low, high = t.band(t.reach)
                level = float(goal.split()[-1])
                verdict = ("inside the band" if low <= level <= high else
                           "met by all of it" if _meets(low, goal) and _meets(high, goal) else
                           "outside it")
                text += (f", {t.slope:+.2f} ± {t.fit.stderr:.2f} per doubling "
                         f"({_p(t.fit.pvalue)}, {len(t.points)} runs); at {REACH:g}× that "
                         f"compute a run would land at {_range((low, high))} ({BAND:.0%}), "
                         f"the goal {verdict}")
            parts.append(text)
        sentence = f"**{label}** (goal {goal}): " + "; ".join(parts) + "."
        seg, noseg = variants.get("seg"), variants.get("noseg")
        if seg and noseg and seg.fit is not None and noseg.fit is not None:
            reach = min(seg.reach, noseg.reach)
            (a, b), (c, d) = seg.band(reach), noseg.band(reach)
            sentence += (" The two variants' bands there " +
                         ("overlap: the lines do not tell them apart." if a <= d and c <= b
                          else "do not overlap."))
            cross = seg.crossing(noseg)
            if cross is not None:
                sentence += f" Their lines cross at {cross:.1f}×10¹² MAC, within reach."
        lines.append(sentence)
    return lines


def quality_study_table(rows: Sequence[dict[str, Any]]):
    """One line per trained configuration: its budget and each measure, goals in the header."""
    import pandas as pd

    g = DEMO_GOALS
    table = pd.DataFrame([{
        "dataset": dataset_spec(r["dataset"]).short, "configuration": r["candidate"],
        "seed": r.get("seed", 0), "CPU-min": r["train_seconds"] * r.get("threads", 1) / 60,
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
    } for r in sorted(rows, key=lambda r: (dataset_ids().index(r["dataset"]), r["train_seconds"]))])
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

    by_dataset = {r["dataset"]: r for r in rows if r["candidate"] == candidate
                  and r.get("variant", "seg") == "seg" and r.get("seed", 0) == 0}
    table = []
    for measure, key, goal, datasets in GOAL_ROWS:
        line = {"measure": measure, "goal": goal}
        for d in DATASETS:
            value = by_dataset.get(d, {}).get(key) if d in datasets else None
            verdict = "" if value is None else "met" if _meets(value, goal) else "not met"
            line[dataset_spec(d).short] = ("n/a" if d not in datasets else NOT_COMPUTED
                                      if value is None else f"{value:.3f} ({verdict})")
        table.append(line)
    return pd.DataFrame(table)


def read_phase_curves(profile: str, datasets: Sequence[str] = DATASETS,
                      root: Path | None = None, sources: dict[str, str] | None = None,
                      seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """The phase-end records (``phase_metrics.jsonl``) of the book's runs of ``seed`` (on
    ``sources[dataset]`` where given), by run label."""
    curves = {}
    for d in datasets:
        for with_segmentation, label in ((True, ""), (False, ", no segmentation")):
            source = (sources or {}).get(d)
            run = RunSpec(d, profile, with_segmentation, seed, source)
            path = run.folder(root) / "phase_metrics.jsonl"
            if path.is_file():
                curves[f"{dataset_spec(d).short}{label}"] = [
                    json.loads(line) for line in path.read_text().splitlines()]
    return curves


def images_per_resolution(config: Any) -> dict[int, int]:
    """Images the critic sees at each resolution (fade and stable) under ``config``."""
    from pggan_core.training.schedule import build_phases

    shown: dict[int, int] = {}
    for phase in build_phases(config):
        batch = config.schedule.batch_size[phase.resolution]
        shown[phase.resolution] = shown.get(phase.resolution, 0) + phase.iterations * batch
    return shown


def profile_table(datasets: Sequence[str] = DATASETS):
    """What each profile trains, side by side: the scale gap between the book and the paper."""
    import pandas as pd

    from pggan_core.training.schedule import build_phases

    rows = []
    for profile in PROFILES:
        for d in datasets:
            c = load_config(profile, d)
            s = c.schedule
            phases = build_phases(c)
            top = [p for p in phases if p.resolution == s.max_resolution]
            images = sum(images_per_resolution(c).values())
            per_phase = sorted({p.iterations for p in phases})
            rows.append({
                "profile": profile, "dataset": dataset_spec(d).short,
                "images": f"{c.data.n_images:,}",
                "resolution": f"{s.start_resolution} → {s.max_resolution} px",
                "feature maps, bottom → top": f"{c.model.feature_maps[s.start_resolution]} → "
                                              f"{c.model.feature_maps[s.max_resolution]}",
                "latent": c.model.latent_dim,
                "iterations per phase": "–".join(f"{n:,}" for n in
                                                 dict.fromkeys((per_phase[0], per_phase[-1]))),
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
               "vessels.n_train_images", "pggan_core.segmentation.vessels:train_vessel_unet"),
    MethodStep("operates on 48 × 48 pixel patches", "ROP Dataset", "vessels.patch",
               "pggan_core.segmentation.vessels:segment_by_patches"),
    MethodStep("with an overlap of 8 pixels in the x and y directions",
               "ROP Dataset; a stride of 8 in the authors' code", "vessels.stride",
               "pggan_core.segmentation.vessels:segment_by_patches"),
    MethodStep("We preprocessed each MR volume to have zero mean and unit variance",
               "BraTS Dataset", "data.z_clip", "pggan_core.data.preprocess:zscore_volume"),
    MethodStep("two-dimensional magnetic resonance images",
               "Introduction; the slice rule is ours", "data.slices_per_subject",
               "pggan_core.data.preprocess:select_slices"),
    MethodStep("we included segmentation maps previously described as additional channels",
               "Effect of Segmentation Channels", None, "pggan_core.datasets:DatasetSpec"),
    MethodStep("produce realistic downsampled images at 4x4 pixel resolution",
               "Network Architectures", "schedule.start_resolution",
               "pggan_core.training.schedule:build_phases"),
    MethodStep("from a 128-vector latent space", "Network Architectures", "model.latent_dim",
               "pggan_core.training.networks:Generator"),
    MethodStep("For the retinopathy of prematurity dataset, we trained up to 512 pixel "
               "resolution, while for the glioma dataset, we trained up to 256",
               "Network Architectures", "schedule.max_resolution",
               "pggan_core.training.schedule:build_phases"),
    MethodStep("we interpolate between nearest neighbor upsampling alone, and nearest neighbor "
               "upsampling followed by the newly-added pair of convolutional layers ... with "
               "20,000 iterations spent on the interpolation phase",
               "Network Architectures", "schedule.fade_iterations",
               "pggan_core.training.networks:upsample"),
    MethodStep("20,000 iterations training without interpolation", "Network Architectures",
               "schedule.stable_iterations", "pggan_core.training.trainer:Trainer"),
    MethodStep("Convolutional layers below 256 pixel resolution are set at 128 filters, while "
               "layers at and above 256 are set to 64 and 16 layers respectively",
               "Network Architectures", "model.feature_maps",
               "pggan_core.training.networks:Generator"),
    MethodStep("Training stages at resolutions below 512 pixels are trained with a 16 image "
               "batch size, while resolutions equal to and above 512 pixels are trained with an "
               "8 image batch size",
               "Network Architectures", "schedule.batch_size",
               "pggan_core.training.trainer:Trainer"),
    MethodStep("trained using an Adam optimizer", "Network Architectures", "train.lr",
               "pggan_core.training.trainer:Trainer"),
    MethodStep("We evaluated the loss for the GAN using a Wasserstein loss",
               "Network Architectures; WGAN-GP with drift, after Karras et al.",
               "train.gp_lambda",
               "pggan_core.training.losses:discriminator_loss"),
    MethodStep("trained the generator and discriminator in equal proportion",
               "Network Architectures", "train.d_steps_per_g_step",
               "pggan_core.training.losses:generator_loss"),
    MethodStep("a network for encoding images using the same network architecture as the "
               "discriminator ... terminating in a 128-vector", "Network Architectures",
               "model.latent_dim", "pggan_core.training.networks:Encoder"),
    MethodStep("trained in a non-progressive manner for 20,000 iterations",
               "Network Architectures", "encoder.iterations",
               "pggan_core.training.networks:Encoder"),
    MethodStep("It was trained ... under the same training conditions as the primary PGGAN",
               "Network Architectures; the GAN's Adam β₁ = 0, β₂ = 0.99 are NVIDIA's",
               "encoder.betas", "pggan_core.latent.encoder:train_encoder"),
    MethodStep("segmentation maps generated from the GAN could accurately predict the "
               "segmentation maps generated from the segmentation algorithm with the AUC of "
               "0.97", "Image Quality", None,
               "pggan_core.evaluation.vessel_agreement:vessel_agreement_auc"),
    MethodStep("Each point has been color-coded according to whether its image represents a "
               "right eye or left eye", "Latent Space Expression", "eval.tsne_perplexity",
               "pggan_core.measures.neighbours:nearest_neighbours"),
)


def config_value(config: Any, key: str | None) -> str:
    """``config``'s value at ``"section.field"`` as short text ("—" for no key).

    A per-resolution table shows the resolutions the schedule trains, runs of equal values
    together. ``schedule.fade_iterations`` and ``schedule.stable_iterations`` show the
    iterations each phase actually trains (``build_phases``): a profile's
    ``schedule.iterations`` map overrides those two scalars resolution by resolution.
    """
    if key is None:
        return "—"
    if key in PHASE_KEYS:
        return per_resolution_text(phase_iterations(config, PHASE_KEYS[key]))
    section, name = key.split(".")
    value = getattr(getattr(config, section), name)
    if isinstance(value, dict):  # per-resolution tables: runs of equal values, used range only
        return per_resolution_text({res: v for res, v in value.items()
                                    if res <= config.schedule.max_resolution})
    if isinstance(value, list | tuple):  # Adam's betas: "0.9, 0.99"
        return ", ".join(str(v) for v in value)
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def method_table(dataset: str = "rop"):
    """The paper's method, sentence by sentence: config key, value per profile (as trained:
    ``config_value``), and code."""
    import pandas as pd

    configs = {p: load_config(p, dataset) for p in PROFILES}
    rows = []
    for step in METHOD:
        code = step.code.removeprefix("pggan_core.").replace(":", ".")
        keys = f"`{step.key}` " * bool(step.key)
        if step.key in PHASE_KEYS:  # the scalar is the default; the map wins per resolution
            keys += "(per resolution: `schedule.iterations`) "
        row = {"the paper says": f"“{step.quote}” ({step.section})",
               "config key, code in pggan_core": keys + f"`{code}`"}
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
# Facts the prose pages state, generated when the book is built so that they cannot disagree
# with the configuration or the results: the iterations each phase trains, the shipped runs'
# times (their manifest), a profile's scale in words, and what this build measured.

# method-table keys whose scalar a per-resolution ``schedule.iterations`` map overrides
PHASE_KEYS = {"schedule.fade_iterations": "fade", "schedule.stable_iterations": "stable"}


def per_resolution_text(values: dict[int, Any]) -> str:
    """``{4: 128, 8: 128, 256: 64}`` as "4–8 px: 128, 256 px: 64": resolutions in order,
    neighbours of equal value joined, integers with thousands separators ("—" when empty)."""
    runs: list[list[Any]] = []  # [first resolution, last resolution, value]
    for res in sorted(values):
        if runs and runs[-1][2] == values[res]:
            runs[-1][1] = res
        else:
            runs.append([res, res, values[res]])

    def text(value: Any) -> str:
        return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) \
            else str(value)

    return ", ".join(f"{a}–{b} px: {text(v)}" if a != b else f"{a} px: {text(v)}"
                     for a, b, v in runs) or "—"


def phase_iterations(config: Any, kind: str) -> dict[int, int]:
    """The iterations ``config`` trains per resolution in its ``kind`` ("fade" or "stable")
    phases, as ``build_phases`` lays them out (``schedule.iterations`` included)."""
    from pggan_core.training.schedule import build_phases

    return {p.resolution: p.iterations for p in build_phases(config) if p.kind == kind}


def shipped_run_minutes(profile: str, root: Path | None = None
                        ) -> dict[str, dict[str, float]] | None:
    """Per shipped run of ``profile`` (``data/pretrained/<profile>/manifest.json``): its
    training minutes (``train``), the minutes of its whole recorded command, the encoder
    included where it ran (``wall``), and the CPU threads it ran on; None if none ship."""
    from pggan_core.runs.shipped import read_manifest

    manifest = read_manifest(profile, root)
    if not manifest or not manifest.get("runs"):
        return None
    return {key: {"train": run["train_seconds"] / 60, "wall": run["wall_seconds"] / 60,
                  "threads": run.get("threads") or 1}
            for key, run in sorted(manifest["runs"].items())}


def run_time_text(profile: str, root: Path | None = None) -> str | None:
    """How long the shipped runs of ``profile`` took, in words, from their manifest, e.g.
    "33–37 minutes of training each on one CPU core (up to 42 minutes with the encoder)";
    None when the profile ships no runs."""
    runs = shipped_run_minutes(profile, root)
    if runs is None:
        return None
    train = [r["train"] for r in runs.values()]
    wall = max(r["wall"] for r in runs.values())
    threads = [int(r["threads"]) for r in runs.values()]
    span = (f"{min(train):.0f}–{max(train):.0f}" if round(min(train)) != round(max(train))
            else f"{min(train):.0f}")
    # the manifest records the threads of a run's last attempt (a resumed run may have more)
    more = sum(t > 1 for t in threads)
    cores = "one CPU core" + (f" ({more} of them last resumed on {max(threads)} threads)"
                              if more else "")
    text = f"{span} minutes of training each on {cores}"
    if round(wall) > round(max(train)):
        text += f" (up to {wall:.0f} minutes with the encoder)"
    return text


def scale_text(profile: str, dataset: str = "rop") -> str:
    """A profile's scale in words, from its resolved config: latent, feature maps, the
    iterations of its phases and the top resolution."""
    config = load_config(profile, dataset)
    s, maps = config.schedule, config.model.feature_maps
    per_phase = sorted({n for kind in ("fade", "stable")
                        for n in phase_iterations(config, kind).values()})
    iterations = (f"{per_phase[0]:,}" if per_phase[0] == per_phase[-1]
                  else f"{per_phase[0]:,} to {per_phase[-1]:,}")
    return (f"a {config.model.latent_dim}-dimensional latent, {maps[s.start_resolution]} down "
            f"to {maps[s.max_resolution]} feature maps, {iterations} iterations per fade-in or "
            f"stable phase up to {s.max_resolution} × {s.max_resolution} pixels, and "
            f"an encoder trained for {config.encoder.iterations:,} iterations")


def findings_markdown(profile: str, datasets: Sequence[str] = DATASETS,
                      root: Path | None = None, sources: dict[str, str] | None = None,
                      seed: int = 0) -> str:
    """What this build measured of the paper's two comparative findings, one bullet per
    dataset and finding: the vessel-agreement AUC with its ground-truth reference and its
    caveat, and the ablation's verdicts counted; "not computed in this build" where a result
    file is missing or no longer holds. Read from the runs' current results, as the results
    page reads them, so the two pages cannot disagree."""
    from pggan_core.book.results_table import NOT_COMPUTED, ablation_summary, number, read_results

    sources = sources or {}
    lines = []
    for d in datasets:
        name = dataset_spec(d).short
        results = read_results(d, profile, root, sources.get(d), seed)
        if METRICS["vessel_agreement"].applies_to(d, with_segmentation=True):
            auc = number(results.get("vessel_agreement_auc"))
            if auc is None:
                lines.append(f"- **Vessel agreement ({name})**: {NOT_COMPUTED}.")
            else:
                reference = number(results.get("vessel_agreement_auc_reference")) or NOT_COMPUTED
                lines.append(
                    f"- **Vessel agreement ({name})**: AUC {auc} (the paper: 0.97; the same "
                    f"AUC on held-out real images with their true vessel masks: {reference}). "
                    "It scores only the vessels the U-Net finds in the generated photographs: "
                    "vessels the U-Net misses count as background, so a high AUC says the "
                    "vessel channel agrees with what the U-Net sees, not that every vessel "
                    "is drawn, or drawn plausibly.")
        summary = ablation_summary(results)
        lines.append(f"- **Segmentation-channel ablation ({name})**: "
                     f"{summary or NOT_COMPUTED}.")
    return "\n".join(lines)
