"""The results page's table: each claim of the paper, this build's numbers beside their
references, and whether the claim was reproduced, by a rule stated with it.

Every number is read from the result files of the book's runs (``RESULT_FILES``) at build time,
and only when the file still holds for the run as it is now (``provenance``: the generator's
weights, the code that computed it, the settings it read); a file that no longer holds is
named, never quoted. A claim's verdict is one of ``VERDICTS``, computed from the numbers by
the claim's ``rule`` (its ``rule_text`` is printed under the table).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pggan_core.config import DATASETS
from pggan_core.datasets import dataset_spec
from pggan_core.errors import BookError
from pggan_core.evaluation.registry import METRICS, Metric
from pggan_core.runs.folder import RunSpec

NOT_COMPUTED = "not computed in this build"
NOT_MEASURED = "not measured at this scale"
VERDICTS = ("yes", "partly", "no", NOT_MEASURED)

INDOMAIN = "indomain_"  # the in-domain encoder's results: every key prefixed with this

# Result files a run folder gains: (kind in provenance.SECTIONS, key renames or a
# prefix for every key, the command that writes it again).
RESULT_FILES: dict[str, tuple[str, dict[str, str] | str, str]] = {
    "metrics.json": ("metrics", {}, "pggan evaluate --run {run}"),
    "encoder.json": ("encoder", {"r2": "encoder_r2"}, "pggan encode --run {run}"),
    "latent_space.json": ("latent_space", {}, "pggan latent --run {run}"),
    "inversion.json": ("inversion", INDOMAIN, "pggan invert --run {run}"),
    "latent_space_indomain.json": ("latent_space", INDOMAIN,
                                   "pggan latent --run {run} --encoder indomain"),
    "ablation.json": ("ablation", {}, "the segmentation-ablation chapter (notebook 05)"),
    "ablation_seeds.json": ("ablation", "seeds_",
                            "pggan ablation-seeds --dataset {dataset} --profile {profile}"),
    "augmentation.json": ("augmentation", {},
                          "pggan augment-study --dataset {dataset} --profile {profile}"),
}
STALE = "_stale"  # the merged results' note of files that no longer hold, {file: why}
FILES = "_files"  # each current file's own values, {file: values}


def read_results(dataset: str, profile: str, root: Path | None = None,
                 source: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Every current result of the (dataset, profile, seed) run on ``source`` (None: the phantom)
    merged into one dict ({} if none yet); ``encoder.json``'s ``r2`` reads ``encoder_r2``.

    A file whose recorded derivation does not hold for the run now (``runs.folder.
    stale_result``), or a run folder with no generator to check it against, contributes no
    number: it is listed under ``STALE`` with the reason, so the table names it instead.
    """
    from pggan_core.runs.folder import run_generator, stale_result
    from pggan_core.training.checkpoint import has_generator

    folder = RunSpec(dataset, profile, seed=seed, source=source).folder(root)
    merged: dict[str, Any] = {STALE: {}, FILES: {}}
    generator = run_generator(folder) if has_generator(folder) else None  # hashed once
    for name, (kind, renames, command) in RESULT_FILES.items():
        path = folder / name
        if not path.is_file():
            continue
        fix = command.format(run=folder, dataset=dataset, profile=profile)
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise BookError(f"{path}: not valid JSON ({error}); write it again with `{fix}`"
                            ) from error
        reason = (stale_result(folder, kind, values.get("derivation"), generator)
                  if generator else "the run folder holds no generator to check it against")
        if reason is None and kind == "ablation":  # it read the run without segmentation too
            reason = _other_generator_differs(
                RunSpec(dataset, profile, False, seed, source).folder(root),
                                              values.get("noseg_generator_sha256"))
        if reason is not None:
            merged[STALE][name] = f"{reason}; write it again with `{fix}`"
            continue
        merged.update({(renames + k if isinstance(renames, str) else renames.get(k, k)): v
                       for k, v in values.items()})
        merged[FILES][name] = values
    return merged


def _other_generator_differs(folder: Path, recorded: str | None) -> str | None:
    """Why the generator in ``folder`` is not the one a result records (``recorded``)."""
    from pggan_core.training.checkpoint import has_generator, load_generator, weights_fingerprint

    if not has_generator(folder) or weights_fingerprint(load_generator(folder)[0]) != recorded:
        return f"the generator in {folder} differs from the one it was computed from"
    return None


# ---------------------------------------------------------------------------------------------
# numbers as text


def number(value: Any, digits: int = 3) -> str | None:
    """A finite number as text, None for anything else (missing, NaN, a sentence)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return f"{value:.{digits}f}"


def _ratio(r: dict[str, Any], key: str, floor: str) -> float | None:
    value, base = r.get(key), r.get(floor)
    if number(value) is None or number(base) is None or base == 0:
        return None
    return value / base


def _with_refs(r: dict[str, Any], key: str, refs: Sequence[tuple[str, str]]) -> str | None:
    """``r[key]`` followed by its references "(label value; ...)", or None without a value."""
    main = number(r.get(key))
    if main is None:
        return None
    shown = [f"{label} {number(r.get(k))}" for label, k in refs if number(r.get(k)) is not None]
    return main + (f" ({'; '.join(shown)})" if shown else "")


def _graded(value: float | None, yes: float, partly: float) -> str:
    """"yes" at or above ``yes``, "partly" at or above ``partly``, else "no"."""
    if value is None:
        return NOT_MEASURED
    return "yes" if value >= yes else "partly" if value >= partly else "no"


# ---------------------------------------------------------------------------------------------
# the claims, each with the numbers it shows and its rule


@dataclass(frozen=True)
class Claim:
    """A claim or figure of the paper, how our numbers show it, and the rule that judges it."""

    claim: str
    where: str  # section / figure of Beers et al. (2018)
    paper_value: str
    datasets: tuple[str, ...]
    show: Callable[[dict[str, Any]], str | None]  # a dataset's results -> the cell, or None
    rule: Callable[[dict[str, Any]], str]  # a dataset's results -> one of VERDICTS
    rule_text: str
    reads: str = "metrics.json"  # the result file its numbers come from (RESULT_FILES)


def _swd_cell(r: dict[str, Any]) -> str | None:
    ratio, image = _ratio(r, "swd_mean", "swd_floor_mean"), _ratio(
        r, "swd_image_mean", "swd_image_floor_mean")
    if ratio is None:
        return None
    text = f"{number(r['swd_mean'], 1)}, {ratio:.2f}× the floor {number(r['swd_floor_mean'], 1)}"
    if image is not None:
        text += f"; image channels alone {image:.2f}× their floor"
    return text


def _swd_rule(r: dict[str, Any]) -> str:
    ratios = [x for x in (_ratio(r, "swd_mean", "swd_floor_mean"),
                          _ratio(r, "swd_image_mean", "swd_image_floor_mean")) if x is not None]
    if not ratios:
        return NOT_MEASURED
    worst = max(ratios)
    return "yes" if worst <= 1.5 else "partly" if worst <= 3.0 else "no"


def _msssim_rule(r: dict[str, Any]) -> str:
    gen, real = r.get("ms_ssim_generated"), r.get("ms_ssim_real")
    if number(gen) is None or number(real) is None:
        return NOT_MEASURED
    gap = abs(gen - real)
    return "yes" if gap <= 0.05 else "partly" if gap <= 0.10 else "no"


def _ablation_verdicts(r: dict[str, Any]) -> list[str]:
    """The ablation's verdicts: over training seeds (``ablation_seeds.json``) where that
    holds, else the one pair's (``ablation.json``)."""
    files = r.get(FILES, {})
    ablation = files.get("ablation_seeds.json") or files.get("ablation.json", {})
    return [v.get("verdict", "") for v in ablation.get("verdicts") or [] if isinstance(v, dict)]


def ablation_summary(r: dict[str, Any]) -> str | None:
    """The ablation's verdicts counted ("over 3 seeds, of 9 measures: 0 in the paper's
    direction, ..."), from a run's current results (``read_results``); None where neither
    ablation file holds any."""
    verdicts = _ablation_verdicts(r)
    if not verdicts:
        return None
    ours, against = verdicts.count("paper's direction"), verdicts.count("against")
    unclear = verdicts.count("no clear difference")
    seeds = r.get(FILES, {}).get("ablation_seeds.json", {}).get("seeds")
    return ((f"over {len(seeds)} training seeds, " if seeds else "one training seed, ") +
            f"of {len(verdicts)} measures: {ours} in the paper's direction, {against} "
            f"against, {unclear} no clear difference")


def _ablation_rule(r: dict[str, Any]) -> str:
    verdicts = _ablation_verdicts(r)
    if not verdicts:
        return NOT_MEASURED
    ours = verdicts.count("paper's direction")
    if ours == len(verdicts):
        return "yes"
    return "partly" if ours > verdicts.count("against") else "no"


def _by_latent(r: dict[str, Any], key: str, latent: str = "encoder") -> float | None:
    """``encoder.json``'s Figure 4 measure ``key`` for the encoder's latent or the refined one
    (stored as {"encoder": x, "refined": y})."""
    value = r.get(key)
    value = value.get(latent) if isinstance(value, dict) else value
    return value if number(value) is not None else None


def _retrieval_cell(r: dict[str, Any], prefix: str = "", latent: str = "encoder",
                    refined_latent: str = "refined") -> str | None:
    """Figure 4's numbers: retrieval (refined beside it) and detail correlation of the
    encoder's reconstructions (``prefix`` ``INDOMAIN``: the in-domain encoder's)."""
    retrieval = _by_latent(r, prefix + "reconstruction_retrieval", latent)
    if retrieval is None:
        return None
    text = (f"own input nearest: {retrieval:.3f} (chance "
            f"{number(r.get(prefix + 'reconstruction_retrieval_chance'))}")
    refined = _by_latent(r, prefix + "reconstruction_retrieval", refined_latent)
    text += f"; refined {refined:.3f})" if refined is not None else ")"
    detail = _by_latent(r, prefix + "reconstruction_detail_correlation", latent)
    if detail is not None:
        unrelated = _by_latent(r, prefix + "reconstruction_detail_correlation_unrelated", latent)
        text += f"; fine-detail correlation {detail:.3f} (unrelated pairs {number(unrelated)})"
    return text


def _retrieval_rule(r: dict[str, Any], prefix: str = "", latent: str = "encoder") -> str:
    retrieval = _by_latent(r, prefix + "reconstruction_retrieval", latent)
    detail = _by_latent(r, prefix + "reconstruction_detail_correlation", latent)
    if retrieval is None or detail is None:
        return NOT_MEASURED
    if retrieval >= 0.5 and detail >= 0.3:
        return "yes"
    return "partly" if retrieval >= 0.25 or detail >= 0.15 else "no"


def _memorised_reference(r: dict[str, Any]) -> tuple[str, float | None]:
    """What an image the generator never saw is flagged at: the training images left out in
    turn (hundreds), or, for a report without them, the few held-out images."""
    for words, key in (("unseen real", "memorised_unseen_share"),
                       ("held-out real", "memorised_heldout_share")):
        if number(r.get(key)) is not None:
            return words, r[key]
    return "held-out real", None


def _memorised_cell(r: dict[str, Any]) -> str | None:
    share, (low, high) = r.get("memorised_share"), r.get("memorised_interval") or (None, None)
    if number(share) is None:
        return None
    report = r.get("memorisation") or {}
    planted = (report.get("planted") or {}).get("found") or {}
    words, reference = _memorised_reference(r)
    text = (f"{share:.3f} of {report.get('generated_flagged', {}).get('n')} generated "
            f"[{low:.3f}, {high:.3f}] ({words} {reference:.3f}")
    if planted:
        text += f"; planted copies found {min(planted.values()):.2f} of the hardest kind"
    return text + ")"


def _memorised_rule(r: dict[str, Any]) -> str:
    share, interval = r.get("memorised_share"), r.get("memorised_interval")
    reference = _memorised_reference(r)[1]
    if number(share) is None or not interval or reference is None:
        return NOT_MEASURED
    if interval[0] <= reference:
        return "yes"
    return "partly" if share <= 0.05 else "no"


def _figure4_numbers(r: dict[str, Any]) -> tuple[float | None, float | None]:
    """Image-space recovery of generated images and the held-out reconstructions' coarse
    label retrieval (own input first), from ``encoder.json``."""
    recovery = (r.get("generated_recovery") or {}).get("recovery")
    layout = ((r.get("coarse_label_retrieval") or {}).get("encoder") or {}).get("own_first")
    return (recovery if number(recovery) is not None else None,
            layout if number(layout) is not None else None)


def _figure4_cell(r: dict[str, Any]) -> str | None:
    recovery, layout = _figure4_numbers(r)
    if recovery is None:
        return None
    text = f"recovery of generated images {recovery:.3f}"
    coarse = r.get("coarse_label_retrieval") or {}
    if layout is not None:
        text += (f"; own input first at the layout's scale {layout:.3f} (chance "
                 f"{number(coarse['encoder']['chance'])}; refined "
                 f"{number((coarse.get('refined') or {}).get('own_first'))})")
    old = _retrieval_cell(r)
    return text + (f"; pixel retrieval and fine detail: {old}" if old else "")


def _figure4_rule(r: dict[str, Any]) -> str:
    recovery, layout = _figure4_numbers(r)
    if recovery is None:
        return NOT_MEASURED
    if recovery >= 0.85 and layout is not None and layout >= 0.5:
        return "yes"
    return "partly" if recovery >= 0.6 or (layout or 0.0) >= 0.25 else "no"


def _laterality_cell(r: dict[str, Any], prefix: str = "") -> str | None:
    return _with_refs(r, prefix + "knn_laterality_accuracy", [
        ("linear probe", prefix + "probe_laterality_accuracy"),
        ("raw pixels", prefix + "knn_laterality_pixels"),
        ("chance", prefix + "knn_laterality_chance"),
        ("t-SNE silhouette", prefix + "tsne_laterality_silhouette")])


def _primary_leads(r: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]] | None:
    """The label the latent space is scored by, and per view who leads
    (``latent.attributes.primary_attribute``), from ``latent_space.json``'s attributes."""
    attributes = r.get("attributes")
    if not isinstance(attributes, dict) or not attributes.get("primary"):
        return None
    return attributes["label"], attributes["primary"]


def _primary_cell(r: dict[str, Any]) -> str | None:
    found = _primary_leads(r)
    if found is None:
        return None
    label, leads = found
    scores = {(row["view"], row["attribute"]): row for row in r["attributes"]["scores"]}
    own = scores.get(("encoded reals", label), {})
    parts = [f"{view}: {lead['primary'] or 'none'} (silhouette {lead['by_silhouette']}, "
             f"5-NN gain {lead['by_knn_gain']})" for view, lead in leads.items()]
    return (f"{label}: silhouette {number(own.get('silhouette'))}, 5-NN gain "
            f"{number(own.get('knn_gain'))}; first separated, " + "; ".join(parts))


def _primary_rule(r: dict[str, Any]) -> str:
    found = _primary_leads(r)
    if found is None:
        return NOT_MEASURED
    label, leads = found
    paper_view = leads.get("encoded reals", {})
    if paper_view.get("primary") == label:
        return "yes"
    if label in (paper_view.get("by_silhouette"), paper_view.get("by_knn_gain")) or any(
            lead.get("primary") == label for lead in leads.values()):
        return "partly"
    return "no"


def _above_chance_rule(key: str, chance: str, yes: float) -> Callable[[dict[str, Any]], str]:
    def rule(r: dict[str, Any]) -> str:
        value, base = r.get(key), r.get(chance)
        if number(value) is None or number(base) is None:
            return NOT_MEASURED
        return "yes" if value >= yes else "partly" if value >= base + 0.1 else "no"
    return rule


def _tumour_rule(r: dict[str, Any]) -> str:
    value, pixels, chance = (r.get(k) for k in ("knn_tumour_accuracy", "knn_tumour_pixels",
                                                "knn_tumour_chance"))
    if number(value) is None or number(chance) is None:
        return NOT_MEASURED
    if number(pixels) is not None and value >= pixels and value >= chance + 0.1:
        return "yes"
    return "partly" if value >= chance + 0.05 else "no"


def _augmentation_cell(r: dict[str, Any]) -> str | None:
    if r.get("augmentation_real_synthetic_scarce") is None:
        return None
    return (f"{r.get('augmentation_metric', 'score')}: real + synthetic "
            f"{r['augmentation_real_synthetic_scarce']} against real alone "
            f"{r.get('augmentation_real_scarce')}; classic augmentation "
            f"{r.get('augmentation_classic_scarce')}; synthetic alone "
            f"{r.get('augmentation_synthetic_only')}; every real label "
            f"{r.get('augmentation_real_all')}, with synthetic "
            f"{r.get('augmentation_real_synthetic_all')}")


def _augmentation_rule(r: dict[str, Any]) -> str:
    from pggan_book.augmentation_report import paired_difference, paired_verdict
    from pggan_core.augmentation.study import label_counts

    study = r.get(FILES, {}).get("augmentation.json")
    if not study or not study.get("rows"):
        return NOT_MEASURED
    fewest = label_counts(study)[0]
    mean, sd, better, n = paired_difference(study, "real + synthetic", "real", fewest,
                                            study["metrics"][0])
    if not math.isfinite(mean):
        return NOT_MEASURED
    verdict = paired_verdict(mean, sd, better, n)
    return {"better": "yes", "worse": "no"}.get(verdict, "partly" if mean > 0 else "no")


CLAIMS = (
    Claim("The GAN's vessel channel predicts the vessels a U-Net finds in its photograph "
          "(AUC; it scores only the vessels the U-Net finds: the Figure 3 row judges them)",
          "Image Quality", "0.97", ("rop",),
          lambda r: _with_refs(r, "vessel_agreement_auc",
                               [("held-out real with true masks",
                                 "vessel_agreement_auc_reference")]),
          lambda r: _graded(r.get("vessel_agreement_auc"), 0.90, 0.80),
          "yes: AUC ≥ 0.90; partly: ≥ 0.80; else no"),
    Claim("Generated images look like real ones (SWD ×10³ to real images, against the "
          "real-vs-real floor; all channels, and the image channels alone)",
          "Image Quality, Figure 2", "qualitative", DATASETS, _swd_cell, _swd_rule,
          "yes: both SWDs ≤ 1.5× their floor; partly: ≤ 3×; else no"),
    Claim("Generated images are as varied as real ones (MS-SSIM of random pairs, lower is "
          "more diverse)", "Image Variety, Figure 2", "qualitative", DATASETS,
          lambda r: _with_refs(r, "ms_ssim_generated", [("real pairs", "ms_ssim_real")]),
          _msssim_rule, "yes: within ±0.05 of real pairs; partly: ±0.10; else no"),
    Claim("Generated images are not copies of training images (the share of generated "
          "images flagged as near-copies, in pixels or up to shifts, mirroring and "
          "brightness, with its 95 % interval)", "implicit", "not reported", DATASETS,
          _memorised_cell, _memorised_rule,
          "yes: the flagged share's interval reaches down to the rate of real images the "
          "generator never saw (training images left out in turn, thresholds from the rest); "
          "partly: flagged share ≤ 5 %; else no"),
    Claim("Segmentation channels improve the synthetic images' anatomy (with vs without the "
          "channel, measure by measure, bootstrap intervals)",
          "Effect of Segmentation Channels, Figure 3", "qualitative", DATASETS,
          ablation_summary, _ablation_rule,
          "yes: every measure in the paper's direction beyond its uncertainty (over training "
          "seeds where they were trained, else over images); partly: more in the paper's "
          "direction than against; else no",
          reads="ablation.json"),
    Claim("The encoder recovers the latent vector of generated images (R² on held-out "
          "generated latents)", "Network Architectures", "qualitative", DATASETS,
          lambda r: _with_refs(r, "encoder_r2", [("by optimisation", "r2_optimised")]),
          lambda r: _graded(r.get("encoder_r2"), 0.5, 0.2),
          "yes: R² ≥ 0.5; partly: ≥ 0.2; else no",
          reads="encoder.json"),
    Claim("Reconstructions keep each image's global structure (generated images redrawn "
          "from their encoding; the label channel of held-out reconstructions at the "
          "layout's scale, against inputs of the same class)",
          "Figure 4", "qualitative", DATASETS, _figure4_cell, _figure4_rule,
          "from the encoder's latent (as the paper): yes: recovery ≥ 0.85 and own input "
          "first ≥ 50 %; partly: recovery ≥ 0.6 or own input first ≥ 25 %; else no",
          reads="encoder.json"),
    Claim("Left/right eye is primary in the latent space (of five attributes read off the "
          "images, the one the encoded real images separate first: t-SNE silhouette and 5-NN "
          "gain over chance, on the unit sphere)", "Latent Space Expression, Figure 5",
          "qualitative (t-SNE)", ("rop",), _primary_cell, _primary_rule,
          "yes: laterality leads both measures in the encoded reals; partly: it leads one of "
          "them there, or both in the generated images' own z or their encodings; else no",
          reads="latent_space.json"),
    # after the paper: the field's way of bringing real images into the generator's range
    Claim("Figure 4 with the in-domain encoder (fine-tuned to reconstruct real training "
          "images, then refined with the encoder as regulariser; Zhu et al. 2020, not the "
          "paper's method)", "after the paper, Figure 4", "—", DATASETS,
          lambda r: _retrieval_cell(r, INDOMAIN, "indomain", "indomain_refined"),
          lambda r: _retrieval_rule(r, INDOMAIN, "indomain"),
          "as the Figure 4 row, from the in-domain encoder's latent",
          reads="inversion.json"),
    Claim("Figure 5 with the in-domain encoder's latents (k-NN laterality of encoded real "
          "images; not the paper's method)", "after the paper, Figure 5", "—", ("rop",),
          lambda r: _laterality_cell(r, INDOMAIN),
          _above_chance_rule(INDOMAIN + "knn_laterality_accuracy",
                             INDOMAIN + "knn_laterality_chance", 0.90),
          "as the Figure 5 row",
          reads="latent_space_indomain.json"),
    Claim("Encoded slices can be traversed by axial position (Spearman of k-NN-predicted vs "
          "true slice position)", "Latent Space Expression", "qualitative", ("brats",),
          lambda r: _with_refs(r, "knn_slice_position_spearman",
                               [("raw pixels", "knn_slice_position_spearman_pixels")]),
          lambda r: _graded(r.get("knn_slice_position_spearman"), 0.8, 0.5),
          "yes: Spearman ≥ 0.8; partly: ≥ 0.5; else no",
          reads="latent_space.json"),
    Claim("Tumour presence can be told from the encoded latent (k-NN accuracy, folds grouped "
          "by subject)", "Latent Space Expression", "qualitative", ("brats",),
          lambda r: _with_refs(r, "knn_tumour_accuracy", [
              ("linear probe", "probe_tumour_accuracy"), ("raw pixels", "knn_tumour_pixels"),
              ("chance", "knn_tumour_chance")]),
          _tumour_rule,
          "yes: k-NN ≥ raw pixels and ≥ chance + 0.10; partly: ≥ chance + 0.05; else no",
          reads="latent_space.json"),
    Claim("Synthetic labelled pairs amplify a small dataset (a segmenter on the fewest real "
          "labels plus the GAN's pairs, scored on held-out real images; mean ± sd over "
          "seeds)", "Abstract, Introduction", "proposed, not measured", DATASETS,
          _augmentation_cell, _augmentation_rule,
          "yes: better than real labels alone in every seed, by more than the spread; "
          "partly: better on average only; else no",
          reads="augmentation.json"),
)


def _metric_claim(metric: Metric) -> Claim:
    """The results-table row of a registered metric's claim (``registry.MetricClaim``)."""
    judged = metric.claim
    assert judged is not None
    return Claim(judged.text, judged.where, judged.paper_value, metric.datasets or DATASETS,
                 lambda r: number(r.get(judged.key)),
                 lambda r: (NOT_MEASURED if number(r.get(judged.key)) is None
                            else judged.rule(r[judged.key])),
                 judged.rule_text)


def all_claims() -> tuple[Claim, ...]:
    """``CLAIMS``, then the claim of every registered metric that judges one
    (``evaluation.registry.register_metric``): what the results table lists."""
    return CLAIMS + tuple(_metric_claim(m) for m in METRICS.values() if m.claim is not None)


def claims_table(profile: str, datasets: Sequence[str] = DATASETS,
                 root: Path | None = None, sources: dict[str, str] | None = None,
                 seed: int = 0):
    """The results table: each claim, the paper's value, ours per dataset (with references
    beside it) and the verdict per dataset, from the runs' current result files (the runs on
    ``sources[dataset]`` where given, else on the phantom)."""
    import pandas as pd

    sources = sources or {}
    results = {d: read_results(d, profile, root, sources.get(d), seed) for d in datasets}
    rows = []
    for claim in all_claims():
        row = {"claim": f"{claim.claim} ({claim.where})", "paper": claim.paper_value}
        verdicts = []
        for d in datasets:
            if d not in claim.datasets:
                row[dataset_spec(d).short] = "n/a"
                continue
            cell = claim.show(results[d])
            row[dataset_spec(d).short] = (cell if cell is not None
                                     else _missing(results[d], claim.reads))
            verdicts.append(f"{dataset_spec(d).short}: {claim.rule(results[d])}"
                            if len(claim.datasets) > 1 and len(datasets) > 1
                            else claim.rule(results[d]))
        row["reproduced?"] = "; ".join(verdicts) or "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


def _missing(results: dict[str, Any], reads: str) -> str:
    """The cell of a number this build has not got, naming its result file ``reads`` when
    that no longer holds (so a reader is never shown a number computed from other weights or
    code)."""
    why = (results.get(STALE) or {}).get(reads)
    return NOT_COMPUTED if why is None else f"{NOT_COMPUTED} ({reads} set aside: {why})"


def rules_table():
    """Each claim's rule for its verdict, for the text under the results table."""
    import pandas as pd

    return pd.DataFrame([{"claim": c.claim.split(" (")[0].split(". ")[0], "rule": c.rule_text}
                         for c in all_claims()])


def stale_notes(profile: str, datasets: Sequence[str] = DATASETS, root: Path | None = None,
                sources: dict[str, str] | None = None, seed: int = 0) -> list[str]:
    """A line per result file that was set aside because it no longer holds."""
    sources = sources or {}
    return [f"{dataset_spec(d).short}: {name}: {why}" for d in datasets
            for name, why in read_results(d, profile, root, sources.get(d), seed)[STALE].items()]
