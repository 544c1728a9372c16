"""The study's figures: every configuration's scores against its training CPU-minutes, and the
Figures 3-5 measures against training compute with the lines and bands of ``trends``."""

from __future__ import annotations

from collections.abc import Sequence

from pggan_book.figures import plain_log_ticks
from pggan_core.datasets import dataset_ids, dataset_spec


def quality_compute_figure(rows: Sequence[dict], goals: dict[str, float],
                           marked: Sequence[str] = ()):
    """Quality against training compute, one panel per measure, both datasets.

    ``rows`` are the study's (``results.read_rows``): each a trained
    configuration with ``train_seconds``, ``threads`` and its scores. Points of one family
    (same name before ``_x<budget>``) are joined in order of compute and every point is named;
    ``marked`` candidates (the demo profile) are drawn as stars; dashed lines are the goals
    (``knn_laterality_accuracy`` / ``knn_tumour_accuracy`` per dataset for the k-NN panel).
    """
    import matplotlib.pyplot as plt

    panels = [("swd_over_floor", "SWD / real-vs-real floor (lower is better)"),
              ("ms_ssim_gap", "MS-SSIM of generated − real pairs"),
              ("vessel_agreement_auc", "vessel-agreement AUC (fundus)"),
              ("encoder_r2", "encoder R² on generated latents"),
              ("knn_accuracy", "k-NN laterality (fundus) / tumour (MRI)")]
    fig, axes = plt.subplots(3, 2, figsize=(11, 11))
    axes = axes.ravel()
    # one colour per registered dataset, its k-NN goal by its latent label
    styles = {spec.id: (colour, spec.short, spec.latent_label and
                        f"knn_{spec.latent_label.key}_accuracy")
              for spec, colour in zip((dataset_spec(d) for d in dataset_ids()),
                                      ("#c44e52", "#4c72b0", "#55a868", "#8172b2"),
                                      strict=False)}
    for ax, (key, title) in zip(axes, panels, strict=False):
        for dataset, (colour, label, knn_goal) in styles.items():
            points = [(r["train_seconds"] * r.get("threads", 1) / 60, _score(r, key), r)
                      for r in rows if r["dataset"] == dataset and _score(r, key) is not None]
            families: dict[str, list] = {}
            for point in points:  # a family: one configuration at growing budgets, one seed
                family = (point[2]["candidate"].rsplit("_x", 1)[0], point[2].get("seed", 0))
                families.setdefault(family, []).append(point)
            for members in families.values():
                members.sort(key=lambda p: p[0])
                ax.plot([p[0] for p in members], [p[1] for p in members], "-o", ms=4,
                        color=colour, alpha=0.8)
            for x, y, row in points:
                seed = row.get("seed", 0)
                ax.annotate(row["candidate"] + (f" s{seed}" if seed else ""), (x, y), fontsize=8,
                            color=colour,
                            textcoords="offset points", xytext=(3, 3))
                if row["candidate"] in marked:
                    ax.plot(x, y, "*", ms=15, color=colour, markeredgecolor="black")
            if points:
                ax.plot([], [], "-o", color=colour, label=label)
            goal = goals.get(knn_goal if key == "knn_accuracy" else key)
            if goal is not None and points:
                levels = (goal, -goal) if key == "ms_ssim_gap" else (goal,)
                for level in levels:
                    ax.axhline(level, color=colour if key == "knn_accuracy" else "grey",
                               ls="--", lw=1)
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
        ax.set(title=title, xlabel="training CPU-minutes (one core)")
        ax.title.set_fontsize(11)
    axes[0].plot([], [], "*", ms=12, color="white", markeredgecolor="black",
                 label="the demo profile")
    axes[0].plot([], [], "--", color="grey", label="goal")
    # the sixth panel holds the legend, where it hides no point
    axes[-1].legend(*axes[0].get_legend_handles_labels(), loc="center", fontsize=10)
    axes[-1].axis("off")
    fig.tight_layout()
    return fig


def figure_trends_figure(trends: Sequence, goals: Sequence[tuple[str, str, str]]):
    """Figures 3-5's measures against training compute, one panel per measure: the study's
    runs with and without the segmentation channels as points, each variant's fitted line
    (``trends.Trend``) with its prediction band, drawn from the smallest run to the line's
    reach (twice the largest run's compute) and no further, the goal dashed. ``goals``:
    (key, label, goal) as ``trends.FIGURE_GOALS``."""
    import matplotlib.pyplot as plt
    import numpy as np

    styles = {"seg": ("#c44e52", "with segmentation channels"),
              "noseg": ("#7f7f7f", "image channels only")}
    n_rows = -(-(len(goals) + 1) // 2)  # a panel per goal and one for the legend
    fig, axes = plt.subplots(n_rows, 2, figsize=(11, 4.2 * n_rows))
    axes = axes.ravel()
    for ax in axes[len(goals) + 1:]:
        ax.axis("off")
    for ax, (key, label, goal) in zip(axes, goals, strict=False):
        for t in (t for t in trends if t.key == key and t.points):
            colour, name = styles[t.variant]
            ax.plot([c for c, _ in t.points], [v for _, v in t.points], "o", ms=5,
                    color=colour, label=name)
            if t.fit is None:
                continue
            xs = np.geomspace(min(c for c, _ in t.points), t.reach, 60)
            ax.plot(xs, [t.at(x) for x in xs], "-", color=colour, lw=1.2)
            bands = np.array([t.band(x) for x in xs])
            ax.fill_between(xs, bands[:, 0], bands[:, 1], color=colour, alpha=0.15, lw=0)
        ax.axhline(float(goal.split()[-1]), color="black", ls="--", lw=1)
        ax.set_ylim(bottom=0)  # each measure is a ratio: below 0 the band is the line's, not data
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis, subs=(1.0, 2.0, 5.0))
        ax.set(title=f"{label} (goal {goal})",
               xlabel="training compute (10¹² multiply-adds, G + D forward)")
        ax.title.set_fontsize(10)
    handles, names = axes[0].get_legend_handles_labels()
    handles += [plt.Line2D([], [], color="grey", lw=1.2),
                plt.Rectangle((0, 0), 1, 1, color="grey", alpha=0.15),
                plt.Line2D([], [], color="black", ls="--")]
    names += ["least-squares line in log compute, to 2× the largest run",
              "95 % prediction band (where one more run would land)", "goal"]
    axes[len(goals)].legend(handles, names, loc="center", fontsize=10)
    axes[len(goals)].axis("off")
    fig.tight_layout()
    return fig


def _score(row: dict, key: str) -> float | None:
    if key == "knn_accuracy":
        return row.get("knn_laterality_accuracy", row.get("knn_tumour_accuracy"))
    return row.get(key)
