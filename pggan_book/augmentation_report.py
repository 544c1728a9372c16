"""The augmentation study in words and tables, written from ``augmentation.json`` at build time so
the chapter states what this build measured, whichever way it came out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pggan_core.augmentation.study import (
    RESULT_FILE,
    STALE_FILE,
    label_counts,
    run_augmentation_study,
    summary_entry,
)
from pggan_core.runs.folder import RunSpec, require_trained_run, run_config, stale_result
from pggan_core.segmentation.segmenters import METRIC_NAMES
from pggan_core.training.run_info import read_run_info


def count_of(result: dict[str, Any], k: int) -> str:
    """``k`` items, in the singular for one: "1 subject", "5 subjects"."""
    real = result["real"]
    return f"{k} {real['item'] if k == 1 else real['items']}"


def protocol_table(result: dict[str, Any]) -> pd.DataFrame:
    """One line per arm: what its segmenters learn from and what the GAN behind its synthetic pairs
    was trained on, so "more labels" can be told from "more images"."""
    s, real, gan = result["settings"], result["real"], result["gan"]
    counts = label_counts(result)
    ks = ", ".join(str(k) for k in counts[:-1]) + f" or all {counts[-1]}"
    m = s["n_synthetic"]
    rows = [
        ("real", f"k = {ks} {real['items']}", "none", "—"),
        ("real + classic", f"the same k {real['items']}, rotated (± {s['rotation_degrees']:g}°)"
         f", flipped and contrast-jittered (± {s['intensity_jitter']:g}) on the fly", "none",
         "—"),
        ("real + synthetic", f"the same k {real['items']}", f"M = {m}", gan["trained_on"]),
        ("synthetic", "none", f"M = {m}", gan["trained_on"]),
    ]
    return pd.DataFrame([{"arm": arm, "real labelled training data": r,
                          "synthetic pairs": syn, "the GAN behind them was trained on": g,
                          "segmenter updates": s["iterations"]} for arm, r, syn, g in rows])


def study_table(result: dict[str, Any]) -> pd.DataFrame:
    """Per arm and k, each score on the held-out real images as mean ± sd over seeds."""
    items = result["real"]["items"]
    every = label_counts(result)[-1]
    rows = []
    for entry in result["summary"]:
        k = entry["k"]
        real = "none" if entry["arm"] == "synthetic" else (
            f"all {k} {items}" if k == every else count_of(result, k))
        row = {"arm": entry["arm"], "real labels": real, "seeds": entry["n_seeds"]}
        for metric in result["metrics"]:
            row[METRIC_NAMES[metric]] = (f"{entry[f'{metric}_mean']:.3f} ± "
                                         f"{entry[f'{metric}_sd']:.3f}")
        rows.append(row)
    return pd.DataFrame(rows)


def paired_difference(result: dict[str, Any], arm: str, baseline: str, k: int, metric: str,
                      baseline_k: int | None = None) -> tuple[float, float, int, int]:
    """``arm`` minus ``baseline`` (at ``baseline_k`` if given, else ``k``), seed by seed (same real
    items, same initialisation): the mean and sd of the differences, the seeds where ``arm`` was
    better, the number of seeds."""
    def by_seed(name: str, kk: int) -> dict[int, float]:
        return {r["seed"]: r[metric] for r in result["rows"] if r["arm"] == name
                and r["k"] == kk}

    ours, theirs = by_seed(arm, k), by_seed(baseline, k if baseline_k is None else baseline_k)
    diffs = np.array([ours[s] - theirs[s] for s in sorted(ours) if s in theirs], float)
    sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0
    return float(np.mean(diffs)), sd, int((diffs > 0).sum()), len(diffs)


def paired_verdict(mean: float, sd: float, better: int, n: int) -> str:
    """The chapter's rule: "better" or "worse" only when every seed agrees and the mean exceeds the
    spread, else "no consistent difference"."""
    if abs(mean) <= sd or better not in (0, n):
        return "no consistent difference"
    return "better" if mean > 0 else "worse"


def study_verdicts(result: dict[str, Any]) -> list[str]:
    """One sentence per comparison the chapter is about, in the lead metric: the paired difference
    over seeds, how many seeds agree, and the verdict (``paired_verdict``)."""
    metric = result["metrics"][0]
    name = METRIC_NAMES[metric]
    items = result["real"]["items"]
    counts = label_counts(result)
    m = result["settings"]["n_synthetic"]
    lines = []

    def sentence(what: str, arm: str, baseline: str, k: int, baseline_k: int | None = None
                 ) -> str:
        mean, sd, better, n = paired_difference(result, arm, baseline, k, metric, baseline_k)
        if not np.isfinite(mean):
            return f"{what}: {name} could not be measured (no foreground in the test set)."
        verdict = paired_verdict(mean, sd, better, n)
        return (f"{what}: {name} {mean:+.3f} ± {sd:.3f} (paired over {n} seeds; higher in "
                f"{better} of {n}): {verdict}.")

    def where(k: int) -> str:
        return f"all {k} {items}" if k == counts[-1] else f"k = {count_of(result, k)}"

    for k in counts:
        lines.append(sentence(f"Adding {m} synthetic pairs to {where(k)}", "real + synthetic",
                              "real", k))
        if k != counts[-1]:
            lines.append(sentence(f"Classic augmentation of {where(k)}", "real + classic",
                                  "real", k))
            lines.append(sentence(f"Synthetic pairs against classic augmentation at {where(k)}",
                                  "real + synthetic", "real + classic", k))
    for k in (counts[0], counts[-1]):
        lines.append(sentence(f"{m} synthetic pairs alone against {where(k)}", "synthetic",
                              "real", 0, baseline_k=k))
    return lines


def headline(result: dict[str, Any]) -> str:
    """The study's answer at the fewest real labels, in one sentence."""
    metric = result["metrics"][0]
    k = label_counts(result)[0]
    real = summary_entry(result, "real", k)
    synth = summary_entry(result, "real + synthetic", k)
    classic = summary_entry(result, "real + classic", k)
    mean = f"{metric}_mean"
    return (f"With {count_of(result, k)} labelled, {METRIC_NAMES[metric]} on "
            f"held-out real images was {real[mean]:.3f} from the real pairs alone, "
            f"{synth[mean]:.3f} with {result['settings']['n_synthetic']} synthetic pairs added "
            f"and {classic[mean]:.3f} with classic augmentation (means over "
            f"{real['n_seeds']} seeds).")


def origin_text(result: dict[str, Any] | None, origin: str, dataset: str, profile: str
                ) -> str:
    """Where the chapter's numbers come from (this build, or an earlier ``pggan augment-study`` of
    the same generator) and the settings they were made with; with no study, the two commands that
    make one."""
    if result is None:
        return (f"The augmentation study was not run for this page ({origin}). Run `pggan "
                f"augment-study --dataset {dataset} --profile {profile}` and build again, or "
                f"build with `pggan book --profile {profile} --augmentation`.")
    s = result["settings"]
    return (f"Augmentation study {origin}: {len(result['rows'])} segmenters ({s['seeds']} seeds"
            f", {s['iterations']} updates of {s['batch_size']} each, M = {s['n_synthetic']} "
            f"synthetic pairs) trained and scored in {result['seconds'] / 60:.1f} min, "
            f"{result['lanes']} at a time.")


def study_for_book(dataset: str, profile: str, seed: int = 0,
                   source: str | Path | None = None, run_study: bool = False
                   ) -> tuple[dict[str, Any] | None, str]:
    """The chapter's study and where it comes from: run here when asked (``pggan book
    --augmentation``) or when the profile's study fits the book (``augment.in_book``), else the
    current one in the run folder (``current_study``)."""
    cfg = run_config(dataset, profile, seed)
    if run_study or cfg.augment.in_book:
        return (run_augmentation_study(dataset, profile, seed=seed, source=source),
                "written by this build")
    return current_study(require_trained_run(RunSpec(dataset, profile, seed=seed,
                                                     source=source)))


def current_study(run: str | Path) -> tuple[dict[str, Any] | None, str]:
    """The study in ``run`` and where it comes from, in a sentence, while it holds (its
    ``derivation``: the generator now in ``run``, the study's code, the run's data and vessel
    settings, whatever ``augment`` settings it records); else None and why, the study moved aside to
    ``STALE_FILE`` so that no page, the results table included, quotes it."""
    path = Path(run) / RESULT_FILE
    if not path.is_file():
        return None, f"no {RESULT_FILE} in {run}"
    result = json.loads(path.read_text())
    reason = stale_result(run, "augmentation", result.get("derivation"))
    if reason is None:
        shipped = RESULT_FILE in ((read_run_info(run).pretrained or {}).get("files") or {})
        by = ("shipped with the repository beside the run's weights (`pggan augment-study`, "
              "then `pggan weights ship-results`)" if shipped else
              "by an earlier `pggan augment-study` or `pggan book --augmentation`")
        return result, (f"made on {result['written']} (commit {result['commit']}) {by}, not "
                        "by this build; its generator, code and settings checked against "
                        "this run")
    path.replace(path.with_name(STALE_FILE))
    return None, (f"{path} no longer holds for the run in {run}: {reason}; moved aside to "
                  f"{STALE_FILE}; write it again with `pggan augment-study`")
