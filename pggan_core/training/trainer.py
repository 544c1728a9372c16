"""The progressive GAN trainer (Beers et al. 2018, "Network Architectures"; Karras et al. 2018).

The networks start at ``schedule.start_resolution`` and double up to ``max_resolution``. Each new
resolution first *fades in* for ``fade_iterations`` (alpha ramps linearly 0 -> 1, blending the new
block with the upsampled output of the previous one), then trains *stable* for
``stable_iterations``; the first resolution has no fade. Losses are WGAN-GP with a drift term, one
critic step per generator step, Adam (lr 1e-3, betas (0, 0.99), eps 1e-8) made anew at the start
of every phase, as NVIDIA's ``reset_opt_for_new_lod``. During a fade the reals (from the prepared
pyramid) are blended with their 2x down-up copy by the same alpha, so the critic sees reals as
blurry as the fakes it is shown.

Read top to bottom: ``train``, ``Trainer.__init__``, ``Trainer.run`` (the loop),
``Trainer.train_step``. guards.py keeps the run safe around the loop (locks, resume checks,
signals, NaNs, several ranks, ``torch.compile``); outputs.py writes its folder.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import random
import signal
import time
from pathlib import Path
from typing import NoReturn

import torch
from torch import Tensor, nn

from pggan_core import precision
from pggan_core.data.store import PreparedDataset
from pggan_core.datasets import dataset_spec
from pggan_core.errors import TrainingInterrupted
from pggan_core.progress import Progress
from pggan_core.settings import Config
from pggan_core.training import checkpoint as ckpt
from pggan_core.training import guards
from pggan_core.training.architectures import build_network
from pggan_core.training.losses import discriminator_loss, generator_loss
from pggan_core.training.networks import downsample, ema_update, upsample
from pggan_core.training.outputs import RunOutputs
from pggan_core.training.run_info import RunInfo, write_run_info
from pggan_core.training.schedule import Phase, build_phases


def train(config: Config, data_dir: str | Path, out_dir: str | Path,
          with_segmentation: bool = True, resume: bool = False, progress: bool = True,
          position: int | None = None) -> Path:
    """Train a progressive GAN on the prepared dataset ``data_dir``; return the run folder.

    ``with_segmentation=False`` keeps only the image channels (the paper's Figure 3 ablation).
    ``resume=True`` continues from ``out_dir/checkpoints`` (fresh if there is none); without it
    an ``out_dir`` holding checkpoints is an error, never overwritten. Raises TrainingDiverged on
    a NaN or infinite loss (the last checkpoint is kept), TrainingInterrupted after SIGINT or
    SIGTERM (with a checkpoint of that step), StorageError when a checkpoint cannot be written
    (the previous one is kept) and RunInUseError while another process trains into ``out_dir``.
    """
    with guards.process_group(config.train.device) as runtime:
        trainer = Trainer(config, Path(data_dir), Path(out_dir), with_segmentation, runtime)
        try:
            # rank 0 alone writes the folder, so locks it; torchrun stops the others on a refusal
            with guards.run_lock(out_dir) if runtime.is_main else contextlib.nullcontext():
                trainer.run(resume=resume, progress=progress, position=position)
        finally:
            trainer.release_phase_networks()
    return Path(out_dir)


class Trainer:
    """The networks, optimizers and data stream of one run, and the loop that trains them."""

    def __init__(self, config: Config, data_dir: Path, out_dir: Path, with_segmentation: bool,
                 runtime: guards.Runtime) -> None:
        self.config, self.out_dir, self.runtime = config, out_dir, runtime
        self.with_segmentation, self.device = with_segmentation, runtime.device
        self.data = PreparedDataset(data_dir)
        guards.check_data(self.data, config, data_dir)
        # in run.json and every checkpoint: a run resumes only on this data
        self.data_record = self.data.data_record()
        n_channels = (len(self.data.channels) if with_segmentation
                      else dataset_spec(self.data.dataset).image_channels)
        self.channels = self.data.channels[:n_channels]
        self.phases = build_phases(config)
        self.total_steps = self.phases[-1].end
        self.precision = precision.resolve(config.train.precision, self.device)
        self.autocast = precision.autocast(config.train.precision, self.device)
        # channels-last convolutions are faster on GPUs and on CPU too (bench_train --compare nchw)
        self.memory_format = torch.channels_last

        t = config.train
        torch.manual_seed(t.seed)  # identical initial weights on every rank
        max_res = config.schedule.max_resolution
        self.G = build_network("generator", config.model, n_channels, max_res)
        self.D = build_network("critic", config.model, n_channels, max_res)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if t.use_ema else None
        for module in (self.G, self.D, self.G_ema):
            if module is not None:
                module.to(self.device, memory_format=self.memory_format)
        # G and D as the current phase trains them (data-parallel, compiled: begin_phase)
        self.G_train: nn.Module = self.G
        self.D_train: nn.Module = self.D
        self.D_compiled: nn.Module | None = None  # D's first-order path, when compiled
        self.opt_G: torch.optim.Adam | None = None
        self.opt_D: torch.optim.Adam | None = None
        self.outputs = RunOutputs(out_dir, config, self.data, self.channels, self.device)

        torch.manual_seed(t.seed + runtime.rank)  # different latents on every rank
        # Python's RNG too (checkpoints carry it): a run depends on its seed, not on prior draws
        random.seed(t.seed + runtime.rank)
        shard = guards.rank_shard(self.data.split_indices("train"), runtime, data_dir)
        self.sampler = guards.ShardSampler(shard, t.seed, runtime.rank)
        self.step, self.images_seen = 0, 0
        self.train_seconds = 0.0  # wall time spent in training steps (resumes add up)

    # ---------------------------------------------------------------- the loop

    def run(self, resume: bool, progress: bool, position: int | None = None) -> None:
        """Train from step 0 or the latest checkpoint to the end of the schedule; ``position``:
        the progress bar's row when several trainings share a terminal."""
        t, is_main = self.config.train, self.runtime.is_main
        phase_index, opt_states = self._start(resume)
        bar = Progress(self.total_steps, "/".join(self.out_dir.resolve().parts[-3:]),
                       initial=self.step, enabled=progress and is_main, position=position)
        last_log = (time.perf_counter(), self.images_seen)
        with guards.StopSignals(notice=is_main) as stop:
            for phase in self.phases[phase_index:]:
                batch = self.begin_phase(phase, opt_states if phase.index == phase_index
                                         else None)
                for step in range(max(self.step, phase.start), phase.end):
                    alpha = phase.alpha(step)
                    started = time.perf_counter()
                    stats = self.train_step(phase, alpha, batch)
                    self.train_seconds += time.perf_counter() - started
                    self.step = step + 1
                    self.images_seen += batch * self.runtime.world_size
                    bar.update(1, status=f"{phase.resolution} px {phase.kind} α={alpha:.2f}")
                    if self.step % t.log_every == 0:
                        last_log = self._log(phase, alpha, stats, last_log, bar)
                    if self.step == phase.end and is_main:
                        G = self.G if self.G_ema is None else self.G_ema
                        self.outputs.end_of_phase(G, phase, self.step, self.images_seen,
                                                  self.train_seconds)
                    saved = self.step % t.checkpoint_every == 0 or self.step == phase.end
                    if saved:
                        self._checkpoint(phase, alpha)
                    signum = guards.agreed_stop(stop, self.runtime)
                    if signum and self.step < self.total_steps:  # a finished run just finishes
                        bar.close()
                        self._interrupt(phase, alpha, signum, saved)
        bar.close()
        if is_main:
            self._write_run_info(finished=True)

    def begin_phase(self, phase: Phase, opt_states: tuple[dict, dict] | None = None) -> int:
        """Fresh Adam optimizers (or a checkpoint's mid-phase ``opt_states``) and the networks
        as ``phase`` trains them (``guards.phase_networks``); returns this rank's batch size."""
        t = self.config.train
        # fused Adam: the same update, several times faster on CPU (bench_train --compare loop_adam)
        self.opt_G = torch.optim.Adam(self.G.parameters(), t.lr, t.betas, t.eps, fused=True)
        self.opt_D = torch.optim.Adam(self.D.parameters(), t.lr, t.betas, t.eps, fused=True)
        if opt_states is not None:
            self.opt_G.load_state_dict(opt_states[0])
            self.opt_D.load_state_dict(opt_states[1])
        self.G_train, self.D_train, self.D_compiled = guards.phase_networks(
            self.G, self.D, phase, self.runtime, t.compile)
        return guards.rank_batch(self.config.schedule.batch_size, phase.resolution, self.runtime)

    def release_phase_networks(self) -> None:
        """Free the phase's DDP wrappers (and compiled graphs) while the process group lives:
        freed after ``destroy_process_group``, gloo's reducers hung 2 of 11 finished two-rank
        smoke runs on 2 CPU cores at exit (0 of 40 once released here)."""
        self.G_train, self.D_train, self.D_compiled = self.G, self.D, None
        gc.collect()  # the wrappers' reference cycles, too

    def train_step(self, phase: Phase, alpha: float, batch: int) -> dict[str, float]:
        """``d_steps_per_g_step`` critic steps, one generator step and the EMA update; returns
        the losses. What ``run`` repeats and the benchmarks time."""
        res, t, latent = phase.resolution, self.config.train, self.config.model.latent_dim
        for _ in range(t.d_steps_per_g_step):
            reals = self._reals(res, alpha, batch)
            with torch.no_grad(), self.autocast:
                fakes = self.G_train(torch.randn(batch, latent, device=self.device), res, alpha)
            with self.autocast:
                d_loss, stats = discriminator_loss(self.D_train, reals, fakes, res, alpha,
                                                   t.gp_lambda, t.drift, scorer=self.D_compiled)
            self.opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            stats["d_loss"] = self._mean_loss(d_loss, "d_loss", phase)
            self.opt_D.step()

        with self.autocast:
            fakes = self.G_train(torch.randn(batch, latent, device=self.device), res, alpha)
            # the whole critic, never its DDP wrapper: its weights get no gradient here
            g_loss = generator_loss(self.D_compiled or self.D, fakes, res, alpha)
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        stats["g_loss"] = self._mean_loss(g_loss, "g_loss", phase)
        self.opt_G.step()
        if self.G_ema is not None:
            ema_update(self.G_ema, self.G, t.ema_beta)
        return stats

    def _reals(self, res: int, alpha: float, batch: int) -> Tensor:
        """A batch of reals at ``res``; during a fade, mixed with their 2x down-up copy."""
        images = self.data.batch(self.sampler.next(batch), res)[:, :len(self.channels)]
        x = torch.from_numpy(images).to(self.device, non_blocking=True)
        if alpha < 1.0:
            x = torch.lerp(upsample(downsample(x)), x, alpha)
        return x.contiguous(memory_format=self.memory_format)

    def _mean_loss(self, loss: Tensor, name: str, phase: Phase) -> float:
        """The loss averaged over ranks; a NaN or inf stops the run (``guards.finite_mean``)."""
        at = f"step {self.step + 1} ({phase.resolution} px, {phase.kind})"
        return guards.finite_mean(loss, name, at, self.runtime, self.out_dir)

    def _log(self, phase: Phase, alpha: float, stats: dict[str, float],
             last: tuple[float, int], bar: Progress) -> tuple[float, int]:
        now = time.perf_counter()
        rate = (self.images_seen - last[1]) / max(now - last[0], 1e-9)
        bar.update(0, detail=f"{rate:.0f} img/s, d {stats['d_loss']:.3f}, "
                             f"g {stats['g_loss']:.3f}")
        if self.runtime.is_main:
            self.outputs.log({
                "step": self.step, "resolution": phase.resolution, "phase": phase.kind,
                "alpha": alpha, "d_loss": stats["d_loss"], "g_loss": stats["g_loss"],
                "gp": stats["gp"], "wasserstein": stats["wasserstein"],
                "images_seen": self.images_seen, "img_per_s": rate})
        return now, self.images_seen

    # ---------------------------------------------------------------- start, stop and resume

    def _start(self, resume: bool) -> tuple[int, tuple[dict, dict] | None]:
        """A new run folder, or the latest checkpoint loaded. Returns (phase, opt states)."""
        if not guards.resuming(self.out_dir, resume):
            if self.runtime.is_main:
                self.outputs.start()
                self._write_run_info(finished=False)
            return 0, None
        guards.check_same_config(self.out_dir, self.config)
        state = ckpt.load_latest(self.out_dir / "checkpoints", self.device)
        guards.check_same_run(state, self.data, self.data_record, self.channels, self.out_dir)
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["G_ema"])
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        guards.restore_rank(state["ranks"], self.sampler, self.runtime,
                            self.config.train.seed + self.step)
        if self.runtime.is_main:
            self.outputs.truncate_logs(self.step)
        phase = self.phases[int(state["phase_index"])]
        if self.step < phase.end:
            return phase.index, (state["opt_G"], state["opt_D"])
        return phase.index + 1, None

    def _checkpoint(self, phase: Phase, alpha: float) -> None:
        """Gather every rank's RNG and data-order state; rank 0 writes the checkpoint."""
        mine = {"rng": ckpt.capture_rng(), "sampler": self.sampler.state_dict()}
        ranks, fingerprints = guards.gather_ranks(
            mine, ckpt.weights_fingerprint(self.G, self.D), self.runtime, self.step)
        if not self.runtime.is_main:
            return
        nets = {name: None if module is None else module.state_dict()
                for name, module in (("G", self.G), ("G_ema", self.G_ema), ("D", self.D))}
        self.outputs.checkpoint({
            "config": self.config.run_dict(), "channels": list(self.channels),
            "with_segmentation": self.with_segmentation, "dataset": self.data.dataset,
            "data": self.data_record, "step": self.step, "phase_index": phase.index,
            "resolution": phase.resolution, "phase": phase.kind, "alpha": alpha,
            "images_seen": self.images_seen, "train_seconds": self.train_seconds,
            "finished": self.step == self.total_steps, **nets,
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "ranks": ranks, "rank_fingerprints": fingerprints,
        })

    def _interrupt(self, phase: Phase, alpha: float, signum: int, saved: bool) -> NoReturn:
        """Checkpoint the step just trained (unless that is done), mark the run unfinished,
        and raise TrainingInterrupted naming the command that resumes it."""
        if not saved:
            self._checkpoint(phase, alpha)
        if self.runtime.is_main:
            self._write_run_info(finished=False)
        command = guards.resume_command(self.config, self.data.path, self.out_dir,
                                        self.with_segmentation)
        raise TrainingInterrupted(
            f"stopped by {signal.Signals(signum).name} after step {self.step} of "
            f"{self.total_steps}, checkpoint saved in {self.out_dir / 'checkpoints'}; "
            f"resume with: {command}", signum)

    def _write_run_info(self, finished: bool) -> None:
        write_run_info(self.out_dir, RunInfo(
            dataset=self.data.dataset, data_dir=str(self.data.path), data=self.data_record,
            with_segmentation=self.with_segmentation, channels=list(self.channels),
            total_steps=self.total_steps, step=self.step, images_seen=self.images_seen,
            train_seconds=round(self.train_seconds, 1), world_size=self.runtime.world_size,
            threads=torch.get_num_threads(), device=str(self.device), precision=self.precision,
            finished=finished))
