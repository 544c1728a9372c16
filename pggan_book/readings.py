"""What the book says of the library's results: the chapters' readings, verdicts and tables.

The library measures (memorisation, Figure 3's ablation, the encoder and its reconstructions,
the latent space); these functions turn its results into the sentences and tables the pages
show, against the goals and margins the measuring modules define.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pggan_core.evaluation.ablation import AGAINST, MEASURE_NAMES, NOSEG, PAPER, SEG, UNCLEAR
from pggan_core.latent.attributes import VIEWS
from pggan_core.latent.encoder import HELD_R2, REDRAW_GAIN
from pggan_core.latent.indomain import VARIANTS
from pggan_core.latent.probes import latent_label
from pggan_core.latent.reconstruction import (
    DETAIL_GAP_NOISE,
    DETAIL_MOSTLY_KEPT,
    RETRIEVAL_ABOVE_CHANCE,
)
from pggan_core.latent.space import TIE_MARGIN, position_rows
from pggan_core.measures.memorisation import SETS

# ------------------------------------------------------------ pggan_core.measures.memorisation


def flagged_lines(report: dict[str, Any]) -> list[str]:
    """The report's flagged shares as lines of text, one per set of images (``SETS``), with
    their 95 % intervals, and for MRI the training subjects the flagged slices name."""
    lines = []
    for words, key in SETS:
        record = report.get(key) or {}
        if not record.get("n"):
            lines.append(f"{words:>31}: not measured (too few subjects or images)")
            continue
        low, high = record["interval"]
        lines.append(f"{words:>31}: {record['flagged']:>4} of {record['n']:>4} flagged "
                     f"({record['share']:.1%}, 95% interval {low:.1%} to {high:.1%})")
    if "flagged_subjects" in report:
        lines.append(f"training subjects re-identified by a flagged slice: "
                     f"{len(report['flagged_subjects'])} of {report['training_subjects']}, "
                     f"slices per subject: {report['flagged_subjects']}")
    return lines


# ------------------------------------------------------------ pggan_core.evaluation.ablation


def ablation_verdicts(result: dict[str, Any]) -> list[str]:
    """One sentence per measure (``ablation_table``'s rows): which model is closer to real, with the
    numbers, and the verdict with its interval, either way."""
    lines = []
    for record in result["verdicts"]:
        closer = "with" if record["seg_distance"] < record["noseg_distance"] else "without"
        low, high = record["interval"]
        verdict = f"interval of (without − with) [{low:.3g}, {high:.3g}]: {record['verdict']}."
        if record["measure"] == "swd_image_channels":
            lines.append(f"SWD to the real images (image channels, lower is closer): "
                         f"{record['seg']:.1f} with segmentation, {record['noseg']:.1f} "
                         f"without, floor {record['real']:.1f}: the model {closer} "
                         f"segmentation channels is closer; {verdict}")
            continue
        lines.append(f"{MEASURE_NAMES.get(record['measure'], record['measure'])}: real "
                     f"{record['real']:.3g}, with segmentation {record['seg']:.3g} "
                     f"({record['seg_ratio']:.2f}x real), without {record['noseg']:.3g} "
                     f"({record['noseg_ratio']:.2f}x): the model {closer} segmentation "
                     f"channels is closer to real; {verdict}")
    return lines


def swd_table(result: dict[str, Any]) -> pd.DataFrame:
    """SWD x1e3 to real of the image channels and of every generated channel, beside the
    real-vs-real floors: a gap between the rows shows what the label channels average away."""
    runs = result["runs"]
    return pd.DataFrame({
        f"{SEG}": [runs[SEG]["swd_image_channels_mean"], runs[SEG]["swd_all_channels_mean"]],
        f"{NOSEG}": [runs[NOSEG]["swd_image_channels_mean"],
                     runs[NOSEG]["swd_all_channels_mean"]],
        "real vs real (floor)": [result["swd_floor_image_channels_mean"],
                                 result["swd_floor_all_channels_mean"]],
    }, index=[f"image channels ({result['image_channels']})",
              f"all generated channels ({runs[SEG]['n_channels']} with, "
              f"{runs[NOSEG]['n_channels']} without)"])


def ablation_method(result: dict[str, Any]) -> str:
    """How ``compare_ablation`` measured, in words, from the result itself."""
    boot = result["bootstrap"]
    lines = [f"{result['n']} generated images per model against {result['n']} real ones "
             f"({result['dataset']}, {result['resolution']} px); structure on "
             f"{result['n_structure']} images per set."]
    reading = result.get("vessel_reading")
    if reading:
        lines.append(f"Vessel maps: {reading['path']} (threshold {reading['threshold']}).")
    lines.append(f"Distance to real: {result['distance']}; SWD: the SWD itself. Verdict: the "
                 f"{boot['confidence']:.0%} interval of (distance without − distance with "
                 f"segmentation) above 0 = \"{PAPER}\", below 0 = \"{AGAINST}\", else "
                 f"\"{UNCLEAR}\". Structure: {boot['n_resamples']} bootstrap resamples "
                 f"({boot['structure']}, seed {boot['seed']}); SWD: {boot['swd_repeats']} "
                 f"repeats ({boot['swd']}).")
    return "\n".join(lines)


def ablation_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per measure: real (the floor for SWD), each run's value and ratio to real,
    the interval of (distance without − distance with segmentation) and the verdict."""
    percent = f"{result['bootstrap']['confidence']:.0%}"

    def with_ratio(value: float, ratio: float) -> str:  # one column per model: fits a page
        return f"{value:.3g} ({ratio:.2f}×)"

    rows = {  # labels with spaces, so a narrow column can wrap them
        record["label"].replace("_", " "): {
            "real (mean)": f"{record['real']:.3g}",
            f"{SEG} (mean, × real)": with_ratio(record["seg"], record["seg_ratio"]),
            f"{NOSEG} (mean, × real)": with_ratio(record["noseg"], record["noseg_ratio"]),
            # of (distance without - distance with segmentation), as ablation_method says
            f"{percent} interval": "[{:.3g}, {:.3g}]".format(*record["interval"]),
            "verdict": record["verdict"],
        } for record in result["verdicts"]}
    return pd.DataFrame.from_dict(rows, orient="index")


# ------------------------------------------------------------ pggan_core.latent.encoder


def inversion_verdict(inversion: dict[str, float]) -> str:
    """One sentence reading ``inversion_r2``'s numbers: whose limit a low encoder R² is."""
    enc, opt = inversion["r2_encoder"], inversion["r2_optimised"]
    mse_enc, mse_opt = inversion["image_mse_encoder"], inversion["image_mse_optimised"]
    redrawn = mse_opt * REDRAW_GAIN <= mse_enc
    errors = f"pixel error {mse_enc:.4f} -> {mse_opt:.4f}"
    if opt >= HELD_R2:
        return (f"The images hold their latents (optimisation recovers R² {opt:.2f}, {errors}):"
                f" the encoder, at R² {enc:.2f}, is what falls short.")
    if redrawn:
        return (f"Optimisation redraws the images almost exactly ({errors}) yet recovers only "
                f"R² {opt:.2f} of the latent: the generator draws nearly the same picture from "
                "different latents, so part of z leaves little trace in the image. "
                "Optimisation finds one of those latents; an encoder trained with squared "
                f"error estimates their mean, which can score higher (here R² {enc:.2f}): "
                "neither bounds the other.")
    return (f"Optimisation neither redraws the images ({errors}) nor recovers the latent "
            f"(R² {opt:.2f}): the test is inconclusive at {inversion['steps']} steps.")


# ------------------------------------------------------------ pggan_core.latent.reconstruction


def reconstruction_verdict(summary: dict[str, Any]) -> str:
    """One sentence reading an ``encoder.json``'s reconstruction measures (the encoder's latent,
    with the refined one's retrieval beside it when there is one)."""
    retrieval = summary["reconstruction_retrieval"]
    chance = summary["reconstruction_retrieval_chance"]
    own = summary["reconstruction_detail_correlation"]["encoder"]
    unrelated = summary["reconstruction_detail_correlation_unrelated"]["encoder"]
    if retrieval["encoder"] is None or own is None or unrelated is None:
        return "Too few held-out images to measure the reconstructions."
    refined = (f"; {retrieval['refined']:.0%} after refinement"
               if retrieval.get("refined") is not None else "")
    identity = ("so it keeps part of what tells the images apart"
                if retrieval["encoder"] >= RETRIEVAL_ABOVE_CHANCE * chance
                else "no better than chance")
    if own >= DETAIL_MOSTLY_KEPT:
        detail = "most of the fine detail comes back"
    elif own - unrelated >= DETAIL_GAP_NOISE:
        detail = "a trace of the fine detail comes back, far from all of it"
    else:
        detail = "none of the fine detail comes back beyond what any two such images share"
    return (f"Regenerated from the encoder's latent, an image is closer to its own input than "
            f"to every other held-out image {retrieval['encoder']:.0%} of the time (chance "
            f"{chance:.0%}{refined}), {identity}; its fine detail correlates with its input's "
            f"at {own:.2f}, against {unrelated:.2f} for an unrelated image: {detail}.")


# ------------------------------------------------------------ pggan_core.latent.indomain


def indomain_reading(paper: dict[str, Any], indomain: dict[str, Any]) -> str:
    """The comparison read aloud from its own numbers: what the in-domain encoder changes,
    and whether the generator can draw the held-out images at all."""
    retrieval, detail = (paper["reconstruction_retrieval"],
                         paper["reconstruction_detail_correlation"])
    ours, ours_detail = (indomain["reconstruction_retrieval"],
                         indomain["reconstruction_detail_correlation"])
    unrelated = indomain["reconstruction_detail_correlation_unrelated"][VARIANTS[0]]
    needed = (ours[VARIANTS[0]], ours[VARIANTS[1]], ours_detail[VARIANTS[0]],
              ours_detail[VARIANTS[1]], retrieval["encoder"], detail["encoder"], unrelated)
    if any(value is None for value in needed):
        return "Too few held-out images to compare the two encoders' reconstructions."
    best = max(ours[VARIANTS[1]], retrieval.get("refined") or 0.0)
    best_detail = max(ours_detail[VARIANTS[1]], detail.get("refined") or 0.0)
    text = (f"Trained on real images too, the encoder brings each held-out image back nearest "
            f"its own input {ours[VARIANTS[0]]:.0%} of the time, against "
            f"{retrieval['encoder']:.0%} for the paper's encoder ({ours[VARIANTS[1]]:.0%} "
            f"after its regularised refinement); fine detail correlates at "
            f"{ours_detail[VARIANTS[0]]:.2f} against {detail['encoder']:.2f} (unrelated pairs "
            f"{unrelated:.2f}). ")
    if best >= 0.5 and best_detail >= 0.3:
        return text + ("Fitted to each image, the generator redraws most of it: the held-out "
                       "images lie within what it can draw, and reaching them is the "
                       "encoder's job.")
    return text + (f"Even with each latent fitted to its own image by gradient steps, at best "
                   f"{best:.0%} of the reconstructions are nearest their input and their fine "
                   f"detail correlates at {best_detail:.2f}: as far as these fits reach, this "
                   "generator does not draw the held-out images' fine detail, and a better "
                   "encoder alone would not bring it back.")


def reconstruction_comparison(paper: dict[str, Any], indomain: dict[str, Any]) -> pd.DataFrame:
    """Figure 4's measures for both encoders, one row per way of getting a latent:
    ``paper`` is ``encoder.json``, ``indomain`` ``inversion.json``."""
    steps = indomain["settings"]["refine_steps"]
    rows = {"paper's encoder": (paper, "encoder", paper["r2"]),
            f"paper's encoder + {paper['refine_steps']} refinement steps":
                (paper, "refined", None),
            "in-domain encoder": (indomain, VARIANTS[0], indomain["r2"]),
            f"in-domain + {steps} regularised refinement steps":
                (indomain, VARIANTS[1], None)}
    table = pd.DataFrame({
        label: {"own input nearest": source["reconstruction_retrieval"].get(variant),
                "detail correlation, own input":
                    source["reconstruction_detail_correlation"].get(variant),
                "detail correlation, unrelated input":
                    source["reconstruction_detail_correlation_unrelated"].get(variant),
                "held-out MSE": source.get(f"heldout_mse_{variant}"),
                "latent R² (generated images)": r2}
        for label, (source, variant, r2) in rows.items()}).T
    return table.astype(float).round(3).astype(object).fillna("—")


# ------------------------------------------------------------ pggan_core.latent.attributes


def attribute_table(attributes: dict[str, Any]) -> pd.DataFrame:
    """``latent_space.json``'s ``attributes`` narrow enough for a page: one row per (view,
    attribute), the paper's view first; silhouette, 5-NN gain over chance, linear probe."""
    scores = pd.DataFrame(attributes["scores"])
    names = {"silhouette": "silhouette", "knn_gain": "5-NN − chance", "probe": "probe"}
    order = list(dict.fromkeys(scores["attribute"]))
    scores = scores.assign(view=pd.Categorical(scores["view"], VIEWS, ordered=True),
                           attribute=pd.Categorical(scores["attribute"], order, ordered=True))
    table = scores.sort_values(["view", "attribute"]).set_index(["view", "attribute"])
    return table[list(names)].rename(columns=names).astype(float).round(3)


# ------------------------------------------------------------ pggan_core.latent.space


def score_table(result: dict[str, Any], dataset: str) -> pd.DataFrame:
    """``latent_space.json``'s scores, a row each: ``latents``, ``raw pixels`` (None without a
    control) and ``chance`` (what guessing scores; 0 for a silhouette or a Spearman)."""
    label = latent_label(dataset)
    name, position, words = label.key, label.position, label.words
    chance = result.get(f"knn_{name}_chance")
    table_rows = {
        f"k-NN accuracy ({words})": (result.get(f"knn_{name}_accuracy"),
                                     result.get(f"knn_{name}_pixels"), chance),
        f"linear probe accuracy ({words})": (result.get(f"probe_{name}_accuracy"),
                                             result.get(f"probe_{name}_pixels"), chance),
        f"t-SNE silhouette ({words})": (result.get(f"tsne_{name}_silhouette"),
                                        result.get(f"tsne_{name}_silhouette_pixels"), 0.0)}
    if position is not None:
        table_rows[f"k-NN Spearman ({position_rows(position)[0]})"] = (
            result.get(f"knn_{position}_spearman"),
            result.get(f"knn_{position}_spearman_pixels"), 0.0)
    table_rows[f"linear probe, true z of {result.get('generated_images', 0)} generated "
               "images"] = (result.get(f"probe_{name}_generated_z"), None,
                            result.get(f"probe_{name}_generated_z_chance"))
    table = pd.DataFrame.from_dict(table_rows, orient="index",
                                   columns=["latents", "raw pixels", "chance"])
    table.index.name = "score"
    return table


def score_reading(result: dict[str, Any], dataset: str) -> str:
    """``score_table`` in sentences: do latents or raw pixels carry the label better (k-NN and
    probe; within ``TIE_MARGIN``, a tie; MRI also slice position), and does the generator's z
    carry the label its images show."""
    spec = latent_label(dataset)
    name, position, label = spec.key, spec.position, spec.words
    pairs = [(result.get(f"{kind}_{name}_accuracy"), result.get(f"{kind}_{name}_pixels"))
             for kind in ("knn", "probe")]
    if any(v is None for pair in pairs for v in pair):
        first = f"The images carry a single {label} class, so there is nothing to compare."
    else:
        diffs = [latent - pixel for latent, pixel in pairs]
        numbers = (f"k-NN {pairs[0][0]:.2f} vs {pairs[0][1]:.2f} on pixels, probe "
                   f"{pairs[1][0]:.2f} vs {pairs[1][1]:.2f}")
        if all(d > TIE_MARGIN for d in diffs):
            first = (f"The latents carry {label} better than the raw pixels ({numbers}): "
                     "the encoder makes it more accessible than the images themselves do.")
        elif all(d < -TIE_MARGIN for d in diffs):
            first = (f"The raw pixels carry {label} better than the latents ({numbers}): the "
                     "latent space loses part of what the images show plainly, so the label "
                     "is not 'primary' in the latents beyond what the pixels already give.")
        else:
            first = (f"The latents and the raw pixels carry {label} about equally or "
                     f"inconsistently ({numbers}): the latents add nothing clear over the "
                     "pixels.")
    spearman = (result.get(f"knn_{position}_spearman"),
                result.get(f"knn_{position}_spearman_pixels"))
    if position is not None and None not in spearman:
        better = ("latent" if spearman[0] - spearman[1] > TIE_MARGIN else
                  "raw-pixel" if spearman[1] - spearman[0] > TIE_MARGIN else None)
        what = position_rows(position)[0].capitalize()
        first += (f" {what} follows {better} neighbours better" if better else
                  f" {what} follows latent and raw-pixel neighbours about equally") + \
            f" (Spearman {spearman[0]:.2f} on latents vs {spearman[1]:.2f} on pixels)."
    accuracy = result.get(f"probe_{name}_generated_z")
    chance = result.get(f"probe_{name}_generated_z_chance")
    n = result.get("generated_images", 0)
    if accuracy is None:
        second = f"The {n} generated images all showed one {label} class, so the generator's z " \
                 "could not be probed."
    else:
        verdict = ("is linearly encoded in the generator's z" if accuracy - chance > 0.1 else
                   "is barely, if at all, linearly encoded in the generator's z")
        second = (f"From the true z of {n} generated images a linear probe predicts the "
                  f"{label} each image shows with accuracy {accuracy:.2f} (chance {chance:.2f}): "
                  f"it {verdict}.")
    return f"{first} {second}"


def encoders_reading(paper: dict[str, Any], indomain: dict[str, Any], dataset: str) -> str:
    """In words, which encoder's latents make Figure 5's claim hold: label k-NN accuracy at least
    ``LatentLabel.goal`` (fundus laterality 0.90) or, without one (MRI), the raw pixels'."""
    label = latent_label(dataset)
    key = f"knn_{label.key}_accuracy"
    scores = {"the paper's encoder": paper.get(key), "the in-domain encoder": indomain.get(key)}
    if any(v is None for v in scores.values()):
        return "One of the encoders' scores is missing, so they cannot be compared."
    if label.goal is not None:
        bar, what = label.goal, f"k-NN {label.words} ≥ {label.goal:.2f}"
    else:
        bar = paper.get(f"knn_{label.key}_pixels") or 0.0
        what = f"k-NN {label.words} ≥ raw pixels"
    holds = [who for who, value in scores.items() if value >= bar]
    numbers = "; ".join(f"{who}: {value:.3f}" for who, value in scores.items())
    if len(holds) == 2:
        verdict = "both encoders' latents separate it that well"
    elif holds == ["the in-domain encoder"]:
        verdict = ("only the in-domain encoder's latents separate it that well, and it is not "
                   "the paper's method: training on real images is what does it here")
    elif holds:
        verdict = "the paper's encoder's latents separate it that well, the in-domain one's not"
    else:
        verdict = "neither encoder's latents separate it that well"
    # separating the label is not being primary: the attribute table asks that
    return (f"Judged by {what} ({numbers}), {verdict}; whether it is the first thing they "
            "separate is the question of the attribute table below.")


def encoders_table(paper: dict[str, Any], indomain: dict[str, Any], dataset: str
                   ) -> pd.DataFrame:
    """``score_table`` of both encoders' latents side by side (``latent_space.json`` and
    ``latent_space_indomain.json``), with the raw pixels and chance beside them."""
    table = score_table(paper, dataset).rename(columns={"latents": "paper's encoder"})
    table.insert(1, "in-domain encoder (after the paper)",
                 score_table(indomain, dataset)["latents"])
    return table
