"""The book's tables: the paper's claims against this build's numbers, the quality study, the
scale of each profile and the method sentence by sentence (read by ``book/results.md``,
``book/quality.md``, ``book/method.md`` and ``book/limitations.md`` at build time).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pggan_core.book.captions import DATASET_SHORT
from pggan_core.config import DATASETS, PROFILES, load_config
from pggan_core.errors import BookError
from pggan_core.paths import checkout_root, run_dir


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
    Claim("Synthetic labelled pairs amplify a small dataset: a segmenter trained on the "
          "fewest real labelled items plus the GAN's pairs, scored on held-out real images "
          "(vessel Dice / whole-tumour Dice, mean ± sd over seeds)", "Abstract, Introduction",
          "proposed, not measured", "augmentation_real_synthetic_scarce", DATASETS),
    Claim("Reference: the same segmenter on those real items alone", "—", "not reported",
          "augmentation_real_scarce", DATASETS),
    Claim("Reference: those real items with classic augmentation (rotations, flips, "
          "contrast) instead", "—", "not reported", "augmentation_classic_scarce", DATASETS),
    Claim("Synthetic pairs alone, no real label", "—", "not reported",
          "augmentation_synthetic_only", DATASETS),
    Claim("Every real training label, without and with the synthetic pairs", "—",
          "not reported", "augmentation_real_all", DATASETS),
    Claim("Every real training label plus the synthetic pairs", "—", "not reported",
          "augmentation_real_synthetic_all", DATASETS),
)


NOT_COMPUTED = "not computed in this build"


# Results files a run folder gains, and how their keys are named in the claims table.
# file: (key renames, the command that writes it again)
RESULT_FILES = {
    "metrics.json": ({}, "pggan evaluate --run {run}"),
    "encoder.json": ({"r2": "encoder_r2"}, "pggan encode --run {run}"),
    "latent_space.json": ({}, "pggan latent --run {run}"),
    "augmentation.json": ({}, "pggan augment-study --dataset {dataset} --profile {profile}"),
}


def read_metrics(dataset: str, profile: str, root: Path | None = None,
                 source: str | Path | None = None) -> dict[str, Any]:
    """Every result of the (dataset, profile) run on ``source`` (None: the phantom) merged
    into one dict ({} if none yet).

    ``metrics.json`` (evaluation), ``encoder.json`` (its ``r2`` as ``encoder_r2``),
    ``latent_space.json`` (k-NN accuracies) and ``augmentation.json`` (the augmentation
    study's ``augmentation_*`` values).
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
                            f"`{command.format(run=folder, dataset=dataset, profile=profile)}`"
                            ) from error
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
               "pggan_core.data.vessels:segment_by_patches"),
    MethodStep("with an overlap of 8 pixels in the x and y directions",
               "ROP Dataset; a stride of 8 in the authors' code", "vessels.stride",
               "pggan_core.data.vessels:segment_by_patches"),
    MethodStep("We preprocessed each MR volume to have zero mean and unit variance",
               "BraTS Dataset", "data.z_clip", "pggan_core.data.preprocess:zscore_volume"),
    MethodStep("two-dimensional magnetic resonance images",
               "Introduction; the slice rule is ours", "data.slices_per_subject",
               "pggan_core.data.preprocess:select_slices"),
    MethodStep("we included segmentation maps previously described as additional channels",
               "Effect of Segmentation Channels", None, "pggan_core.data.store:CHANNELS"),
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
               "upsampling followed by the newly-added pair of convolutional layers",
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
    MethodStep("segmentation maps generated from the GAN could accurately predict the "
               "segmentation maps generated from the segmentation algorithm with the AUC of "
               "0.97", "Image Quality", None,
               "pggan_core.evaluation.vessel_agreement:vessel_agreement_auc"),
    MethodStep("Each point has been color-coded according to whether its image represents a "
               "right eye or left eye", "Latent Space Expression", "eval.tsne_perplexity",
               "pggan_core.evaluation.neighbours:nearest_neighbours"),
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
