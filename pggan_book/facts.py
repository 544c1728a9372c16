"""The book's tables and facts: the scale of each profile, the method sentence by sentence and
the facts the prose pages state (read by ``book/method.md``, ``book/limitations.md`` and
``book/quality.md`` at build time); the paper's claims against this build's numbers are
``results_table``, the quality study's tables ``study.quality_study``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pggan_core.config import DATASETS, PROFILES, load_config
from pggan_core.datasets import dataset_spec
from pggan_core.evaluation.evaluate import METRICS  # importing it registers the built-in ones
from pggan_core.runs.folder import RunSpec


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
    from pggan_book.results_table import NOT_COMPUTED, ablation_summary, number, read_results

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
