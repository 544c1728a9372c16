"""The study's tables, as the book's quality page shows them and as the runner prints them: the
budgets round against the demo's goals, the Figures 3-5 round, and the lines of ``trends``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pggan_book.results_table import NOT_COMPUTED
from pggan_core.config import DATASETS
from pggan_core.datasets import dataset_ids, dataset_spec

from .candidates import FIGURES_ROUND
from .trends import BAND, FIGURE_GOALS, REACH, Trend

# What the demo profile aims for (the project's goals for a 2-core build; the paper itself
# reports only the AUC of 0.97): the study and its book page measure against these.
DEMO_GOALS = {"swd_over_floor": 2.0, "ms_ssim_gap": 0.05, "vessel_agreement_auc": 0.90,
              "encoder_r2": 0.6, "knn_laterality_accuracy": 0.90, "knn_accuracy": 0.90,
              "knn_tumour_accuracy": 0.85}


def budget_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The study's budget rows (with segmentation, growing budgets), not the Figures round."""
    return [r for r in rows if not r["candidate"].startswith(FIGURES_ROUND)
            and r.get("variant", "seg") == "seg"]


def quality_study_table(rows: Sequence[dict[str, Any]]):
    """One line per trained configuration: its budget and each measure, goals in the header, a
    measure's reference (ground truth, optimisation, chance) in brackets beside it so eight
    columns fit the page's content column."""
    import pandas as pd

    g = DEMO_GOALS

    def with_reference(value: float | None, reference: float | None) -> str:
        if value is None:  # a measure a row has none of (the vessel AUC of MRI): a dash
            return "—"
        return f"{value:.3f}" + ("" if reference is None else f" ({reference:.3f})")

    table = pd.DataFrame([{
        "run": f"{dataset_spec(r['dataset']).short} {r['candidate']}, seed {r.get('seed', 0)}",
        "CPU-min": round(r["train_seconds"] * r.get("threads", 1) / 60, 1),
        "images seen (k)": r["images_seen"] / 1000,
        f"SWD / floor (≤ {g['swd_over_floor']})": round(r["swd_over_floor"], 3),
        f"MS-SSIM gap (± {g['ms_ssim_gap']})": round(r["ms_ssim_gap"], 3),
        f"vessel AUC (≥ {g['vessel_agreement_auc']}; ground truth)": with_reference(
            r.get("vessel_agreement_auc"), r.get("vessel_agreement_auc_reference")),
        # only rows scored since the inversion test existed carry the optimised R²
        f"encoder R² (≥ {g['encoder_r2']}; by optimisation)": with_reference(
            r["encoder_r2"], r.get("encoder_r2_optimised")),
        f"k-NN (≥ {g['knn_laterality_accuracy']} / {g['knn_tumour_accuracy']}; chance)":
            with_reference(r.get("knn_laterality_accuracy", r.get("knn_tumour_accuracy")),
                           r.get("knn_laterality_chance", r.get("knn_tumour_chance"))),
    } for r in sorted(rows, key=lambda r: (dataset_ids().index(r["dataset"]), r["train_seconds"]))])
    return table


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


LEVERS = "q_f5"  # the names of Figure 5's levers start so (candidates.py)


def figure5_lever_table(rows: Sequence[dict[str, Any]]):
    """Figure 5's levers: per run and view of the latent space (``latent.attributes.VIEWS``),
    the attribute first by t-SNE silhouette and by 5-NN gain over chance (primary where they
    agree), with laterality's and brightness's own silhouette and gain beside them; six
    columns, to fit the page's content column."""
    import pandas as pd

    def pair(score: dict[str, Any]) -> str:
        if score.get("silhouette") is None:
            return "—"
        return f"{score['silhouette']:.3f} / {score['knn_gain']:+.2f}"

    table = []
    for r in _lever_rows(rows):
        scores = {(s["view"], s["attribute"]): s for s in r["attributes"]["scores"]}
        for view, lead in r["attributes"]["primary"].items():
            table.append({
                "run": r["candidate"] + (f" (seed {r['seed']})" if r["seed"] else ""),
                "view": view, "primary": lead["primary"] or "none",
                "first by silhouette / 5-NN gain": f"{lead['by_silhouette']} / "
                                                   f"{lead['by_knn_gain']}",
                **{f"{attribute}: silhouette / gain": pair(scores.get((view, attribute), {}))
                   for attribute in ("laterality", "brightness")}})
    return pd.DataFrame(table)


def figure5_lever_reading(rows: Sequence[dict[str, Any]]) -> str:
    """Figure 5's levers in a sentence per run, from the rows: which attribute the encoded
    reals (the paper's view) and the generated images' own z (a perfect encoder's) separate
    first, and whether that is laterality."""
    levers = _lever_rows(rows)
    if not levers:
        return "The levers have not been run in this checkout."
    parts = []
    for r in levers:
        views = "; ".join(
            f"{view}: " + (lead["primary"] or f"none ({lead['by_silhouette']} by silhouette, "
                                              f"{lead['by_knn_gain']} by 5-NN gain)")
            for view, lead in r["attributes"]["primary"].items() if view != "E(G(z))")
        parts.append(f"`{r['candidate']}` (seed {r['seed']}) — {views}")
    lateral = sum(r["attributes"]["primary"]["encoded reals"]["primary"] == "laterality"
                  for r in levers)
    return (f"Laterality is primary in the encoded reals of {lateral} of the {len(levers)} "
            "runs. " + ". ".join(parts) + ".")


def _lever_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of Figure 5's levers that carry an attribute table, by candidate and seed."""
    return sorted((r for r in rows if r["candidate"].startswith(LEVERS) and r.get("attributes")),
                  key=lambda r: (r["candidate"], r["seed"]))


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


def text_table(rows: list[dict[str, Any]]) -> str:
    """One line per row: budget and every goal of the study (the runner's printed table)."""
    head = (f"{'candidate':<12} {'data':<5} {'var':<5} {'s':>1} {'train s':>7} "
            f"{'SWD/fl':>6} {'img/fl':>6} {'MS-SSIM':>7} {'AUC':>6} {'dens':>5} {'soft':>5} "
            f"{'junc':>5} {'z-probe':>7} {'share':>5} {'PR':>4} {'enc R2':>6} {'k-NN':>6}")
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda r: (r["dataset"], r["candidate"], r.get("variant", "seg"),
                                         r.get("seed", 0))):
        knn = r.get("knn_laterality_accuracy", r.get("knn_tumour_accuracy"))
        image = r.get("swd_image_over_floor")
        density = r.get("structure_vessel_density_ratio",
                        r.get("structure_flair_hyperintense_fraction_ratio"))
        share = r.get("generated_label_share") or {}
        lines.append(
            f"{r['candidate']:<12} {r['dataset']:<5} {r.get('variant', 'seg'):<5} "
            f"{r.get('seed', 0):>1} {r['train_seconds']:>7.0f} {r['swd_over_floor']:>6.2f} "
            f"{_num(image, 2):>6} {r['ms_ssim_gap']:>+7.3f} {_num(r['vessel_agreement_auc']):>6} "
            f"{_num(density, 2):>5} {_num(r.get('structure_vessel_density_soft_ratio'), 2):>5} "
            f"{_num(r.get('structure_branch_points_ratio'), 2):>5} "
            f"{_num(r.get('generated_z_probe')):>7} "
            f"{_num(min(share.values()) if len(share) > 1 else 0.0, 2):>5} "
            f"{_num(r.get('participation_ratio'), 1):>4} {_num(r.get('encoder_r2')):>6} "
            f"{_num(knn):>6}")
    return "\n".join(lines)


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
