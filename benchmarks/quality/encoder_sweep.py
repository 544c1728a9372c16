"""Figure 4's encoder as the paper trained it: wider encoders, longer, with the GAN's Adam.

The paper's encoder has "the same network architecture as the discriminator" and trains
"for 20,000 iterations under the same training conditions as the primary PGGAN". The demo's
encoder inherits the demo critic's widths (16 feature maps at 64 px for the fundus run, where
the paper's critic has 128 below 256 px) and trains 4,000 iterations with beta1 0.9. This sweep
holds the generator fixed (a finished run's) and trains encoders whose feature maps are the
critic's times ``--widths`` (1, 2, 4: 16 -> 32 -> 64 maps at 64 px), one training per width
scored at every count of ``--iterations``, with the GAN's learning rate, betas and epsilon
(``train.*``).

Each encoder is scored as ``pggan encode`` scores the run's own (``latent.encoder``):
- ``recovery``: image-space recovery on 256 generated images, 1 - MSE(G(E(G(z))), G(z)) / MSE
  between random generated pairs (the issue's goal: >= 0.85);
- ``own_first``: the held-out reconstructions' label channel (the U-Net's vessel map) at the
  arcades' scale, ranked against every held-out input of the same laterality: the share whose
  own input correlates best (goal >= 0.5; chance about 1/30);
- ``r2``: R² on z, a secondary number: the generator barely uses most directions of z, so R²
  has a ceiling well below 1 (``encoder.json``'s ``latent_spectrum``);
- ``heldout_mse``: pixel error of the held-out reconstructions;
- Figure 5's question for this encoder (``latent.attributes``): which attribute the encoded
  training images and E(G(z)) separate first (by t-SNE silhouette and by 5-NN gain over
  chance, on the unit sphere), and laterality's silhouette and gain: does a wider or longer
  trained encoder make laterality primary?

    python -m benchmarks.quality.encoder_sweep --run runs/rop/demo/seg --widths 1 2 4 \\
        --iterations 1000 2000 4000 --threads 2

Prints a table and writes ``benchmarks/results/encoder_sweep.json`` after every row, so a
stopped sweep keeps what it measured and a rerun skips the rows already there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pggan_core.atomic import write_text_atomic
from pggan_core.datasets import dataset_spec, hook
from pggan_core.generate import images_from_latents
from pggan_core.latent.attributes import (
    VIEWS,
    attribute_scores,
    attribute_views,
    primary_attribute,
)
from pggan_core.latent.encoder import (
    encode,
    generated_recovery,
    latent_r2,
    reconstruction_mse,
    train_encoder,
)
from pggan_core.latent.probes import GENERATED_IMAGES
from pggan_core.latent.reconstruction import coarse_label_maps, coarse_label_retrieval
from pggan_core.latent.space import PIXEL_CONTROL_RESOLUTION, fold_groups
from pggan_core.provenance import hardware
from pggan_core.runs.folder import open_run
from pggan_core.settings import Config

from .results import machine

RESULTS = Path(__file__).parents[1] / "results" / "encoder_sweep.json"


def widened(config: Config, width: float) -> Config:
    """``config`` with the encoder's feature maps ``width`` times the critic's and the GAN's
    Adam settings (the paper's "same training conditions")."""
    maps = {res: max(1, round(n * width)) for res, n in config.model.feature_maps.items()}
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, feature_maps=maps),
        encoder=dataclasses.replace(config.encoder, lr=config.train.lr,
                                    betas=tuple(config.train.betas)))


@dataclass
class Sweep:
    """A finished run opened once, with what every encoder of the sweep is scored on."""

    run: Path
    threads: int
    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    # a sweep continued (on another machine, say) keeps the first one's machine and baseline:
    # its rows that name no machine were measured there, against that run's own encoder
    kept: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        run = open_run(self.run)
        self.G, self.config, data, self.facts = run.G.eval(), run.config, run.data, run.facts
        self.data_fingerprint = data.fingerprint()[:12]
        self.hardware = hardware()  # what each row records it was measured on
        self.resolution, self.alpha = int(run.facts["resolution"]), float(run.facts["alpha"])
        self.spec = dataset_spec(self.config.data.dataset)
        n_channels = len(run.facts["channels"])
        heldout, train = data.split_indices("heldout"), data.split_indices("train")
        self.reals = np.asarray(data.view(heldout, self.resolution, n_channels)[:])
        label = self.spec.latent_label
        self.classes = (data.manifest[label.column].to_numpy()[heldout]
                        if label is not None and label.column in data.manifest
                        else np.zeros(len(heldout)))
        self.train_view = data.view(train, self.resolution, n_channels)
        read_at = min(self.resolution, PIXEL_CONTROL_RESOLUTION)
        self.train_images = data.batch(train, read_at)[:, :n_channels]
        self.groups = fold_groups(self.config.data.dataset, data.manifest.iloc[train])
        self.attributes = (hook(label.attributes) if label is not None and label.attributes
                           else None)

    def score(self, encoder: torch.nn.Module) -> dict[str, Any]:
        """The sweep's measures of one encoder (see the module's docstring)."""
        G, resolution, alpha = self.G, self.resolution, self.alpha
        redrawn = images_from_latents(G, encode(encoder, self.reals), resolution, alpha)
        n_image = self.spec.image_channels
        layout = coarse_label_retrieval(coarse_label_maps(self.reals, n_image),
                                        coarse_label_maps(redrawn, n_image), self.classes)
        row = {"recovery": generated_recovery(G, encoder, resolution, alpha)["recovery"],
               "own_first": layout["own_first"], "own_first_chance": layout["chance"],
               "r2": latent_r2(encoder, G, resolution, alpha),
               "heldout_mse": float(reconstruction_mse(self.reals, redrawn).mean())}
        if self.attributes is not None:
            row["figure5"] = self.figure5(encoder)
        return row

    def figure5(self, encoder: torch.nn.Module) -> dict[str, Any]:
        """Figure 5's attribute scores for one encoder, as ``latent.space`` scores the run's
        own: per view (encoded reals, E(G(z))), the primary attribute and every attribute's
        silhouette and 5-NN gain."""
        views = attribute_views(self.G, encoder, self.attributes, self.train_images,
                                encode(encoder, self.train_view), self.resolution, self.alpha,
                                self.config.model.latent_dim, GENERATED_IMAGES, 0,
                                self.train_images.shape[-1])
        del views[VIEWS[2]]  # z does not depend on the encoder
        table, _ = attribute_scores(views, self.config.eval.tsne_perplexity, 0,
                                    {VIEWS[0]: self.groups})
        out: dict[str, Any] = {}
        for view in views:
            lead = primary_attribute(table, view)
            mine = table[table["view"] == view].set_index("attribute")
            out[view] = {"primary": lead["primary"], "by_silhouette": lead["by_silhouette"],
                         "by_knn_gain": lead["by_knn_gain"],
                         "silhouette": mine["silhouette"].astype(float).round(4).to_dict(),
                         "knn_gain": mine["knn_gain"].astype(float).round(4).to_dict()}
        return out

    def width(self, width: float, counts: list[int]) -> None:
        """Train one encoder ``width`` times the critic's, scored after each of ``counts``
        updates (the global RNG is put back after scoring, so the training is the one it would
        have been unscored)."""
        wide = widened(self.config, width)
        started, scoring = time.perf_counter(), 0.0

        def checkpoint(step: int, encoder: torch.nn.Module) -> None:
            nonlocal scoring
            if step not in counts:
                return
            began, rng = time.perf_counter(), torch.get_rng_state()
            encoder.eval()
            with torch.no_grad():
                row = {"width": width, "feature_maps_at_top":
                       wide.model.feature_maps[self.resolution], "iterations": step,
                       "train_seconds": round(began - started - scoring, 1),
                       "parameters": sum(p.numel() for p in encoder.parameters()),
                       # rows added by a later sweep may come from another machine, on data
                       # it prepared itself: each row says where it was measured
                       "machine": self.hardware, "data_fingerprint": self.data_fingerprint,
                       **self.score(encoder)}
            encoder.train()
            torch.set_rng_state(rng)
            scoring += time.perf_counter() - began
            self.rows.append(row)
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in row.items() if k != "figure5"), flush=True)
            self.write()

        train_encoder(self.G, wide, self.resolution, self.alpha, max(counts), progress=False,
                      after_step=checkpoint)

    def write(self) -> None:
        """The rows so far, with what they were measured on."""
        config = self.config
        record = {
            "run": str(self.run), "generator_step": int(self.facts["step"]),
            "resolution": self.resolution, "heldout_images": len(self.reals),
            "adam": {"lr": config.train.lr, "betas": list(config.train.betas),
                     "eps": config.train.eps, "batch_size": config.encoder.batch_size},
            "threads": self.threads, "machine": machine(), "run_encoder": self.run_encoder()}
        record |= {key: self.kept[key] for key in ("threads", "machine", "run_encoder")
                   if key in self.kept}
        write_text_atomic(self.out, json.dumps({**record, "rows": self.rows}, indent=2))

    def run_encoder(self) -> dict[str, Any] | None:
        """The run's own encoder (``pggan encode``, the profile's settings) as the sweep's
        baseline: its measures from ``encoder.json`` and its primary attribute from
        ``latent_space.json``, where the run has them."""
        path = self.run / "encoder.json"
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        baseline = {"iterations": record["iterations"], "lr": record["lr"],
                    "betas": record["settings"]["betas"],
                    "recovery": record["generated_recovery"]["recovery"],
                    "own_first": record["coarse_label_retrieval"]["encoder"]["own_first"],
                    "r2": record["r2"], "heldout_mse": record["heldout_mse_encoder"]}
        latent = self.run / "latent_space.json"  # where `pggan latent` has scored it
        if latent.is_file():
            baseline["primary"] = (json.loads(latent.read_text())["attributes"]["primary"]
                                   [VIEWS[0]]["primary"])
        return baseline


def read_sweep(path: Path = RESULTS) -> dict[str, Any] | None:
    """The sweep's record (``benchmarks/results/encoder_sweep.json``), None before it ran."""
    return json.loads(path.read_text()) if path.is_file() else None


def measured_on(sweep: dict[str, Any]) -> str:
    """Where the sweep's rows were measured: each machine with its rows' count (a row that
    names none was measured on the sweep's own), and the data fingerprints they read."""
    default = f"{sweep['machine']['cpu']}, ATEN_CPU_CAPABILITY=" \
              f"{sweep['machine']['ATEN_CPU_CAPABILITY']}"
    counts: dict[str, int] = {}
    for row in sweep["rows"]:
        where = row.get("machine", default)
        counts[where] = counts.get(where, 0) + 1
    data = sorted({row["data_fingerprint"] for row in sweep["rows"] if "data_fingerprint" in row})
    machines = "; ".join(f"{where} ({n} row{'s' * (n != 1)})" for where, n in counts.items())
    return (f"measured on: {machines}; {sweep['threads']} thread(s)"
            + (f"; rows with a machine of their own read the prepared data {', '.join(data)}"
               if data else ""))


def sweep_table(sweep: dict[str, Any]) -> pd.DataFrame:
    """One row per (width, iterations): the Figure 4 measures and Figure 5's primary
    attribute of the encoded reals, with laterality's and brightness's silhouettes there."""
    table = []
    for row in sorted(sweep["rows"], key=lambda r: (r["width"], r["iterations"])):
        reals = row.get("figure5", {}).get(VIEWS[0], {})
        table.append({
            "maps at 64 px": row["feature_maps_at_top"], "iterations": row["iterations"],
            "recovery (goal ≥ 0.85)": row["recovery"],
            "own input first (goal ≥ 0.5)": row["own_first"], "R² on z": row["r2"],
            "held-out MSE": row["heldout_mse"],
            "primary (encoded reals)": reals.get("primary") or "none",
            "laterality silhouette": reals.get("silhouette", {}).get("laterality"),
            "brightness silhouette": reals.get("silhouette", {}).get("brightness")})
    return pd.DataFrame(table).set_index(["maps at 64 px", "iterations"]).round(3)


def sweep_figure(sweep: dict[str, Any]):
    """Recovery, own input first and laterality's silhouette in the encoded reals against
    updates, one line per width joining its measured points (nothing fitted or drawn past
    them), the run's own encoder as a star, goals and chance dashed."""
    import matplotlib.pyplot as plt

    panels = (("recovery", "image-space recovery", 0.85),
              ("own_first", "own input first (same eye)", 0.5),
              ("laterality", "laterality silhouette, encoded reals", None))
    # two by two, the legend in the fourth place: each panel wide enough to read in the
    # page's column
    fig, grid = plt.subplots(2, 2, figsize=(10, 7.6))
    axes = grid.ravel()[:3]
    widths = sorted({r["feature_maps_at_top"] for r in sweep["rows"]})
    colours = dict(zip(widths, ("#4c72b0", "#dd8452", "#55a868", "#c44e52"), strict=False))

    def value(row: dict[str, Any], key: str) -> float | None:
        if key == "laterality":
            return row.get("figure5", {}).get(VIEWS[0], {}).get("silhouette", {}).get(key)
        return row[key]

    for ax, (key, title, goal) in zip(axes, panels, strict=True):
        for maps in widths:
            rows = sorted((r for r in sweep["rows"] if r["feature_maps_at_top"] == maps),
                          key=lambda r: r["iterations"])
            ax.plot([r["iterations"] for r in rows], [value(r, key) for r in rows], "o-",
                    color=colours[maps], label=f"{maps} maps at 64 px, the GAN's Adam")
        base = sweep.get("run_encoder")
        if base is not None and key in base:
            ax.plot([base["iterations"]], [base[key]], "*", ms=12, color="black",
                    label="the run's own encoder (16 maps, β₁ 0.9, lr 1e-3)")
        if goal is not None:
            ax.axhline(goal, color="black", ls="--", lw=1)
        if key == "own_first":
            chance = sweep["rows"][0]["own_first_chance"]
            ax.axhline(chance, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        # the measured counts, each at most half the next one (log axis: labels apart), the
        # largest kept
        ticks: list[int] = []
        for n in sorted({r["iterations"] for r in sweep["rows"]}, reverse=True):
            if not ticks or n * 2 <= ticks[-1]:
                ticks.append(n)
        ax.set_xticks(ticks, [f"{n:,}" for n in ticks])
        ax.minorticks_off()
        ax.set(title=title, xlabel="encoder updates (batches of 16)", ylim=(0, 1))
        ax.title.set_fontsize(11)
    grid[1, 1].axis("off")
    grid[1, 1].legend(*axes[0].get_legend_handles_labels(), loc="center", fontsize=10)
    fig.tight_layout()
    return fig


def sweep_reading(sweep: dict[str, Any]) -> str:
    """What the sweep shows, from its rows: the best recovery and own-input share against
    their goals, and whether any encoder made laterality primary."""
    rows = sweep["rows"]
    best = max(rows, key=lambda r: r["recovery"])
    own = max(rows, key=lambda r: r["own_first"] or 0.0)
    lateral = [r for r in rows
               if r.get("figure5", {}).get(VIEWS[0], {}).get("primary") == "laterality"]
    chance = own["own_first_chance"]
    base = sweep.get("run_encoder")
    baseline = ("" if base is None else
                f" The run's own encoder ({base['iterations']:,} updates, lr {base['lr']:g}, "
                f"betas {tuple(base['betas'])}, the critic's widths): recovery "
                f"{base['recovery']:.2f}, own input first {base['own_first']:.2f}"
                + (f", primary in the encoded reals: {base['primary'] or 'none'}."
                   if "primary" in base else "."))
    course = "; ".join(
        f"{maps} maps: " + ", ".join(
            f"{r['figure5'][VIEWS[0]]['primary'] or 'none'} ({r['iterations']:,})"
            for r in sorted(rows, key=lambda r: r["iterations"])
            if r["feature_maps_at_top"] == maps and "figure5" in r)
        for maps in sorted({r["feature_maps_at_top"] for r in rows}))
    return (
        f"Best image-space recovery {best['recovery']:.2f} (goal 0.85) with "
        f"{best['feature_maps_at_top']} maps after {best['iterations']:,} updates; best "
        f"own-input share {own['own_first']:.2f} (goal 0.5, chance {chance:.2f}) with "
        f"{own['feature_maps_at_top']} maps after {own['iterations']:,}. "
        + (f"Laterality is primary in the encoded reals for {len(lateral)} of {len(rows)} "
           "encoders." if lateral else
           f"No encoder of the {len(rows)} made laterality primary in the encoded reals.")
        + f" Primary in the encoded reals as each encoder trains (updates): {course}."
        + baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/rop/demo/seg"),
                        help="a finished run folder")
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sweep = Sweep(args.run, args.threads, args.out)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    if previous.get("run") == str(args.run):  # a stopped or shorter sweep: keep its rows
        sweep.rows, sweep.kept = previous["rows"], previous
    for width in args.widths:
        done = {row["iterations"] for row in sweep.rows if row["width"] == width}
        counts = sorted(set(args.iterations) - done)
        if counts:
            sweep.width(width, counts)
    sweep.write()  # also after a sweep with nothing left to train: the baseline and machine

    print(f"\n{'width':>5} {'maps':>5} {'its':>6} {'s':>7} {'recovery':>9} {'own first':>10}"
          f" {'R²':>6} {'MSE':>7}  primary (encoded reals / E(G(z)))")
    for row in sorted(sweep.rows, key=lambda r: (r["width"], r["iterations"])):
        own = row["own_first"] if row["own_first"] is not None else float("nan")
        print(f"{row['width']:>5} {row['feature_maps_at_top']:>5} {row['iterations']:>6}"
              f" {row['train_seconds']:>7.0f} {row['recovery']:>9.3f} {own:>10.3f}"
              f" {row['r2']:>6.3f} {row['heldout_mse']:>7.4f}  "
              + " / ".join(str(view["primary"]) for view in row.get("figure5", {}).values()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
