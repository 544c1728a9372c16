"""The study's measures against training compute: each run's compute on an axis no machine
changes, and one least-squares line per measure and variant with its prediction band, read no
further than twice the largest compute a run measured (the book's *What compute buys*)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from pggan_book.facts import images_per_resolution
from pggan_core.datasets import dataset_spec

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

    from pggan_core.settings import ModelConfig
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
