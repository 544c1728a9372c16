"""What a run writes into its folder as it trains (rank 0 alone).

    checkpoints/          the latest two checkpoints (checkpoint.py)
    config.yaml           the configuration it trains with (a resume must match it)
    run.json              what it trains on, how far it got, whether it finished (run_info.py)
    metrics.jsonl         the losses every ``train.log_every`` steps
    phase_metrics.jsonl   per phase: SWD of the EMA generator against reals, latent participation
                          ratio, images seen, training seconds (quality against compute)
    samples/              a grid of fixed latents at the end of every phase
    figures/progression.png (+ .npz)  one fixed latent at every resolution (the paper's Figure 1)

A resumed run first drops the log lines written after its checkpoint (``truncate_logs``), so its
logs read as if it had never stopped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from pggan_core.atomic import atomic_file, write_text_atomic
from pggan_core.data.store import PreparedDataset
from pggan_core.generate import latent_usage
from pggan_core.measures.swd import SWD_PATCH, sliced_wasserstein
from pggan_core.settings import Config
from pggan_core.training import checkpoint as ckpt
from pggan_core.training.schedule import Phase
from pggan_core.viz import plots

DISPLAY_MIN = 64  # sample tiles are enlarged (nearest) to at least this many pixels
# images per side of a phase-end SWD (and of its real-vs-real floor, given enough reals)
PHASE_SWD_IMAGES = 64
PHASE_SWD_SEED = 2_000_003  # latents and real images of the phase-end SWD: fixed for the run
LOGS = ("metrics.jsonl", "phase_metrics.jsonl")


class RunOutputs:
    """The files of one run folder, ``out_dir``, as they are written while it trains on
    ``data`` (its ``channels``). Nothing is written before ``start``."""

    def __init__(self, out_dir: Path, config: Config, data: PreparedDataset,
                 channels: list[str], device: torch.device) -> None:
        self.out_dir, self.config, self.data = out_dir, config, data
        self.channels, self.device = channels, device
        t = config.train
        # the fixed latents of every sample grid and of the progression strip
        self.fixed_z = torch.randn(t.sample_grid, config.model.latent_dim,
                                   generator=torch.Generator().manual_seed(t.seed))

    def start(self) -> None:
        """A new run: its folder, its ``config.yaml`` and empty logs."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out_dir / "config.yaml",
                          yaml.safe_dump(self.config.run_dict(), sort_keys=False))
        for name in LOGS:
            write_text_atomic(self.out_dir / name, "")

    def truncate_logs(self, step: int) -> None:
        """Drop log lines after ``step`` (the checkpoint resumed from) and any a kill cut short."""
        for path in (self.out_dir / name for name in LOGS):
            kept = []
            for line in path.read_text().splitlines() if path.exists() else []:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record["step"] <= step:
                    kept.append(line + "\n")
            write_text_atomic(path, "".join(kept))

    def log(self, record: dict[str, Any], name: str = "metrics.jsonl") -> None:
        """Append ``record`` to the log ``name`` as one JSON line."""
        with open(self.out_dir / name, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    @torch.no_grad()
    def end_of_phase(self, G: nn.Module, phase: Phase, step: int, images_seen: int,
                     train_seconds: float) -> None:
        """The fixed-latent sample grid of ``G`` (the EMA generator when there is one); after a
        stable phase, one column of the progression; the phase's SWD (``_log_phase_swd``)."""
        images = G(self.fixed_z.to(self.device), phase.resolution, 1.0).float().cpu().numpy()
        grid = plots.sample_grid(images, self.data.dataset,
                                 ncols=math.ceil(math.sqrt(len(images))),
                                 size=max(phase.resolution, DISPLAY_MIN))
        plots.save_png(grid, self.out_dir / "samples"
                       / f"res{phase.resolution:03d}_{phase.kind}.png")
        if phase.kind == "stable":
            self._add_progression(phase.resolution, images[0])
        self._log_phase_swd(G, phase, step, images_seen, train_seconds)

    def _log_phase_swd(self, G: nn.Module, phase: Phase, step: int, images_seen: int,
                       train_seconds: float) -> None:
        """Append to ``phase_metrics.jsonl`` the SWD of ``G`` against reals, the real-vs-real
        floor given enough reals (both None below 8 px, where a 7x7 patch does not fit) and the
        latent participation ratio (``generate.latent_usage``)."""
        res = phase.resolution
        record: dict[str, Any] = {
            "step": step, "resolution": res, "phase": phase.kind, "images_seen": images_seen,
            "train_seconds": round(train_seconds, 2), "threads": torch.get_num_threads(),
            "swd_mean": None, "swd_floor_mean": None}
        if res > SWD_PATCH:
            rng = np.random.default_rng(PHASE_SWD_SEED)
            train_idx = self.data.split_indices("train")
            picked = rng.permutation(train_idx)[:2 * PHASE_SWD_IMAGES]
            reals = self.data.batch(np.sort(picked), res)[:, :len(self.channels)]
            z = torch.randn(PHASE_SWD_IMAGES, self.config.model.latent_dim,
                            generator=torch.Generator().manual_seed(PHASE_SWD_SEED))
            fakes = G(z.to(self.device), res, 1.0).float().clamp(-1, 1).cpu().numpy()
            first, second = reals[:PHASE_SWD_IMAGES], reals[PHASE_SWD_IMAGES:]
            swd = {"seed": 0, "min_resolution": min(res, 16)}
            record["swd_mean"] = sliced_wasserstein(first, fakes, **swd)["swd_mean"]
            if len(second) == PHASE_SWD_IMAGES:
                record["swd_floor_mean"] = sliced_wasserstein(first, second, **swd)["swd_mean"]
        # on its own latent stream: the training draws are not touched
        record["latent_participation_ratio"] = latent_usage(G, res, 1.0)["participation_ratio"]
        self.log(record, "phase_metrics.jsonl")

    def checkpoint(self, state: dict[str, Any]) -> None:
        """Save ``state``, every tensor copied to the CPU, as the run's latest checkpoint."""
        ckpt.save_checkpoint(self.out_dir / "checkpoints", _to_cpu(state))

    def _add_progression(self, resolution: int, image: np.ndarray) -> None:
        path = self.out_dir / "figures" / "progression.npz"
        arrays: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path) as saved:
                arrays = {k: saved[k] for k in saved.files if k.startswith("res_")}
        arrays[f"res_{resolution:03d}"] = image
        with atomic_file(path) as fh:
            np.savez(fh, channels=np.array(self.channels), **arrays)
        strip = plots.progression_strip([arrays[k] for k in sorted(arrays)], self.data.dataset,
                                        size=max(self.config.schedule.max_resolution, 128))
        plots.save_png(strip, self.out_dir / "figures" / "progression.png")


def _to_cpu(state: Any) -> Any:
    """A (nested) state dict with every tensor copied to the CPU."""
    if isinstance(state, Tensor):
        return state.detach().cpu().clone()
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(_to_cpu(v) for v in state)
    return state
