"""The study's candidates: demo configurations, each its overrides on the demo profile, and the
variants (with or without the segmentation channels) every one of them can be trained in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BASE_PROFILE = "demo"

# The demo profile before this study (commit 77746b3), spelt out so the row stays comparable
# however demo.yaml changes: 64 px, 8 maps at 64 px, 400 + 400 iterations everywhere.
DEMO_V1 = {
    "model": {"latent_dim": 128,
              "feature_maps": {4: 32, 8: 32, 16: 32, 32: 16, 64: 8, 128: 8, 256: 8, 512: 8}},
    "schedule": {"fade_iterations": 400, "stable_iterations": 400,
                 "iterations": {}, "batch_size": {4: 16, 8: 16, 16: 16, 32: 16, 64: 16,
                                                  128: 8, 256: 8, 512: 8}},
    "train": {"lr": 0.001, "ema_beta": 0.99},
    "encoder": {"iterations": 500, "lr": 0.003, "betas": [0.0, 0.99]},
}


@dataclass(frozen=True)
class Candidate:
    """A demo configuration: what it tries, and its overrides on the demo profile."""

    why: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # a change to the prepared images no config key makes (``levers.DATA_LEVERS``' names)
    data_lever: str | None = None


def _merge(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            out.setdefault(section, {}).update(values)
    return out


def budget(factor: int) -> dict[str, dict[str, Any]]:
    """DEMO_V1's schedule with ``factor`` times its iterations at every resolution."""
    n = 400 * factor
    return {"schedule": {"iterations": {4: (0, n), **{r: (n, n) for r in (8, 16, 32, 64)}}}}


LR3 = _merge(DEMO_V1, {"train": {"lr": 0.003}})

CANDIDATES: dict[str, Candidate] = {
    "demo_v1": Candidate("the demo before this study", DEMO_V1),
    "lr3_x1": Candidate("Adam step 3e-3 instead of 1e-3 (NVIDIA's value is for 40x longer "
                        "phases)", LR3),
    "lr3_x2": Candidate("lr3, twice the iterations", _merge(LR3, budget(2))),
    "lr3_x4": Candidate("lr3, four times the iterations", _merge(LR3, budget(4))),
    "lr3_z32_x2": Candidate("lr3 x2 with a 32-d latent (does a smaller z help the encoder?)",
                            _merge(LR3, budget(2), {"model": {"latent_dim": 32}})),
    "demo": Candidate("the demo profile as it is now (no overrides)"),
}

# The Figures 3-5 round: what buys quality at a sixth of a 90-minute run, fundus first. Every
# candidate keeps the demo profile (32-d latent, lr 3e-3, EMA 0.99, batch 16) except what its
# name changes, on one shortened schedule (7,600 steps; the demo: 16,000). Widths are spelt
# out: the demo profile's fundus section took q_wide's after this round, so "the demo's" no
# longer names q_base's.
FIGURES_ROUND = "q_"  # the name of every candidate of the round starts so
STUDY_SCHEDULE = {"schedule": {"iterations": {4: (0, 400), 8: (400, 600), 16: (600, 800),
                                              32: (800, 800), 64: (1000, 1000)}}}
BASE = _merge(STUDY_SCHEDULE, {"model": {"feature_maps": {
    4: 32, 8: 32, 16: 32, 32: 16, 64: 8, 128: 8, 256: 8, 512: 8}}})
WIDE = _merge(STUDY_SCHEDULE, {"model": {"feature_maps": {
    4: 32, 8: 32, 16: 32, 32: 32, 64: 16, 128: 8, 256: 8, 512: 8}}})
CANDIDATES |= {
    "q_base": Candidate("the demo's widths then (16 maps at 32 px, 8 at 64 px), short schedule",
                        BASE),
    "q_wide": Candidate("twice the maps at 32 and 64 px (32, 16): each 64 px step 2x slower",
                        WIDE),
    "q_lr1": Candidate("Adam step 1e-3 (NVIDIA's) instead of 3e-3",
                       _merge(BASE, {"train": {"lr": 0.001}})),
    "q_ema999": Candidate("generator EMA 0.999 (NVIDIA's) instead of 0.99",
                          _merge(BASE, {"train": {"ema_beta": 0.999}})),
}
# Two more of the levers, on q_wide (the widths the book's fundus runs took from this
# round, and a configuration with two seeds to read a difference against). Batch per
# resolution: NVIDIA's code (progressive_growing_of_gans, config.py, one-GPU preset) takes 128
# images a step at 4-16 px, 64 at 32 px and 32 at 64 px, i.e. 4x / 2x its top batch below the
# top; q_batch keeps that shape over the demo's 16 and q_wide's steps, so it sees 4x / 2x the
# images there and pays for them. 128 px at the top: q_wide plus a 128 px phase of the same
# length (8 maps, the demo's batch of 8 at 128 px), so the vessel U-Net reads its photographs
# at their own scale.
CANDIDATES |= {
    "q_batch": Candidate("q_wide with NVIDIA's batch shape: 64 images a step at 4-16 px, 32 at "
                         "32 px, 16 at 64 px (same steps, so 4x / 2x the images there)",
                         _merge(WIDE, {"schedule": {
                             "batch_size": {4: 64, 8: 64, 16: 64, 32: 32, 64: 16, 128: 8,
                                            256: 8, 512: 8}}})),
    "q_128": Candidate("q_wide grown one more step, to 128 px (1,000 + 1,000 steps of 8 "
                       "images, 8 maps)",
                       _merge(WIDE, {"schedule": {
                           "max_resolution": 128,
                           "iterations": {**STUDY_SCHEDULE["schedule"]["iterations"],
                                          128: (1000, 1000)}}})),
}
# Figure 5's levers: is laterality primary in the latent space when the generator's latent is
# the paper's 128 (its 4 px feature maps; the demo keeps the ratio with 32), or when the
# photographs' brightness, which the shipped fundus run's latents separate first, no longer
# varies? q_base's widths and schedule, the only way three runs with encoders fit one lane of
# one session; its data as the book's fundus runs are now (the U-Net's vessel channel, where
# the round's first rows took the phantom's exact mask), hence a baseline of its own.
CANDIDATES |= {
    "q_f5": Candidate("q_base on the book's data (the U-Net's vessel channel): the baseline of "
                      "Figure 5's levers", BASE),
    "q_f5_z128": Candidate("q_f5 with the paper's 128-d latent instead of 32",
                           _merge(BASE, {"model": {"latent_dim": 128}})),
    "q_f5_flat": Candidate("q_f5 on photographs of one brightness (each scaled to the "
                           "training set's median brightness in its field of view)", BASE,
                           data_lever="one_brightness"),
}
VARIANTS = {"seg": True, "noseg": False}  # variant -> with_segmentation


def study_config(candidate: str, dataset: str, seed: int = 0):
    """The resolved Config of ``candidate`` for ``dataset``, trained with ``seed`` (the data
    keep seed 0: every seed of a candidate sees the same images)."""
    from pggan_core.config import load_config

    overrides = _merge(CANDIDATES[candidate].overrides, {"train": {"seed": seed}} if seed else {})
    return load_config(BASE_PROFILE, dataset, overrides)
