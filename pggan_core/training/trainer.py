"""The progressive GAN trainer (Beers et al. 2018, "Network Architectures"; Karras et al. 2018).

The networks start at ``schedule.start_resolution`` and double up to ``max_resolution``. Each
new resolution first *fades in* for ``fade_iterations`` (alpha ramps linearly 0 -> 1, blending
the new block with the upsampled output of the previous one) and then trains *stable* for
``stable_iterations`` (``schedule.iterations`` may set both per resolution); the first
resolution has no fade. Losses are WGAN-GP with a drift term,
one critic step per generator step, Adam (lr 1e-3, betas (0, 0.99), eps 1e-8) made anew at the
start of every phase, as NVIDIA's ``reset_opt_for_new_lod``. Reals come from the prepared
pyramid at the current resolution and, during a fade, are blended with their 2x down-up copy
by the same alpha, so the critic sees reals as blurry as the fakes it is shown.

A run folder holds ``config.yaml``, ``run.json``, ``metrics.jsonl`` (losses every
``log_every`` steps), ``phase_metrics.jsonl`` (at the end of every phase: SWD of the EMA
generator against real images at that resolution, images seen and training seconds, the
quality-against-compute curve of the run), ``samples/`` (a grid of fixed latents at the end of
every phase), ``figures/progression.png`` (+ ``.npz``: one fixed latent at every resolution,
the paper's Figure 1) and ``checkpoints/`` (see checkpoint.py).

Several processes (``torchrun --nproc_per_node N``) train data-parallel: every rank reads its
own shard of the training images, G and D are wrapped in DistributedDataParallel for each phase
(``PhaseNetwork``), which averages their gradients over ranks during the backward pass; rank 0
alone writes files.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import shlex
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from pggan_core import precision
from pggan_core.atomic import atomic_file, write_text_atomic
from pggan_core.config import Config, TrainConfig, config_from_dict
from pggan_core.data.store import PreparedDataset, require_same_data
from pggan_core.datasets import dataset_spec
from pggan_core.device import pick_device
from pggan_core.errors import (
    ConfigError,
    DataError,
    PgganError,
    TrainingInterrupted,
)
from pggan_core.generate import latent_usage
from pggan_core.measures.swd import SWD_PATCH, sliced_wasserstein
from pggan_core.progress import Progress
from pggan_core.training import checkpoint as ckpt
from pggan_core.training.allocator import keep_freed_memory
from pggan_core.training.architectures import build_network
from pggan_core.training.compiled import compiled_or_eager
from pggan_core.training.losses import discriminator_loss, generator_loss
from pggan_core.training.networks import downsample, ema_update, upsample
from pggan_core.training.run_info import RunInfo, write_run_info
from pggan_core.training.runlock import run_lock
from pggan_core.training.schedule import Phase, build_phases
from pggan_core.viz import plots

DISPLAY_MIN = 64  # sample tiles are enlarged (nearest) to at least this many pixels


PHASE_SWD_IMAGES = 64  # generated and real images in each phase-end SWD (and a second real set


# of this size for its floor, when the training set holds enough images)
PHASE_SWD_SEED = 2_000_003  # latents and real images of the phase-end SWD: fixed for the run


class TrainingDiverged(PgganError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class PhaseNetwork(nn.Module):
    """A network as one phase trains it: its own forward, but only the layers that phase uses
    as parameters. This is what DistributedDataParallel wraps.

    DDP averages the gradient of every parameter of the module it wraps and waits for each one;
    G and D hold every resolution's layers, most of them idle in any phase, so wrapping them
    whole would need ``find_unused_parameters`` and its graph search on every step.
    """

    def __init__(self, network: nn.Module, resolution: int,
                 fading: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(network.active_layers(resolution, fading))
        self._network = (network,)  # in a tuple, so its idle layers are not registered here

    @property
    def mbstd_group(self) -> int | None:
        """The critic's minibatch-stddev group size (``losses`` joins batches by it)."""
        return getattr(self._network[0], "mbstd_group", None)

    def forward(self, x: Tensor, resolution: int, alpha: float) -> Tensor:
        return self._network[0](x, resolution, alpha)


class ShardSampler:
    """An endless shuffled stream of this rank's image indices (reshuffled every epoch)."""

    def __init__(self, indices: np.ndarray, seed: int, rank: int) -> None:
        self.indices = np.asarray(indices)
        self.rng = np.random.default_rng([seed, rank])
        self.perm = self.rng.permutation(self.indices)
        self.cursor = 0

    def next(self, n: int) -> np.ndarray:
        """The next ``n`` indices, wrapping into a fresh permutation at the end of an epoch."""
        out = []
        while n > 0:
            if self.cursor == len(self.perm):
                self.perm, self.cursor = self.rng.permutation(self.indices), 0
            take = min(n, len(self.perm) - self.cursor)
            out.append(self.perm[self.cursor:self.cursor + take])
            self.cursor, n = self.cursor + take, n - take
        return np.concatenate(out)

    def state_dict(self) -> dict[str, Any]:
        return {"numpy": ckpt.numpy_rng_state(self.rng), "perm": torch.from_numpy(self.perm),
                "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng = ckpt.numpy_rng_from_state(state["numpy"])
        self.perm, self.cursor = state["perm"].numpy(), int(state["cursor"])


@dataclass(frozen=True)
class Runtime:
    """Where this process trains: device, rank and world size (1 without torchrun)."""

    device: torch.device
    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_runtime(device: str = "auto") -> Runtime:
    """Pick the device and join the process group when started by torchrun (WORLD_SIZE > 1).

    Also keeps freed host memory in the process (``allocator.keep_freed_memory``): without it
    every CPU step at >= 64 px page-faults its activations in again.
    """
    keep_freed_memory()
    use_cuda = pick_device(device).type == "cuda"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    return Runtime(torch.device("cuda", local_rank) if use_cuda else torch.device("cpu"),
                   rank, world_size)


def adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float],
         eps: float) -> torch.optim.Adam:
    """Adam with PyTorch's fused kernel: the same update, several times faster than its
    default per-tensor loop on CPU (``benchmarks/bench_train.py --compare loop_adam``)."""
    return torch.optim.Adam(params, lr, betas, eps, fused=True)


class StopSignals:
    """SIGINT and SIGTERM caught for a ``with`` block: the first one only sets ``signum``, for
    the training loop to stop after its step with a checkpoint; a second one acts at once, as
    it would have without us (Ctrl-C twice raises KeyboardInterrupt; the files on disk stay
    whole, every one being written atomically).

    Signals the process ignores (SIGINT of a job started in the background) stay ignored, and
    outside the main thread, where Python cannot install handlers, nothing changes.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, notice: bool = True) -> None:
        self.signum = 0
        self.notice = notice  # say on stderr that the signal was heard (rank 0 only)
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                old = signal.getsignal(signum)
                if old is not signal.SIG_IGN:
                    # None: a handler installed outside Python; the default is the best guess
                    self._old[signum] = signal.SIG_DFL if old is None else old
                    signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._old = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum:
            self.__exit__()
            signal.raise_signal(signum)
            return
        self.signum = signum
        if self.notice:
            # os.write, not print: the handler may run in the middle of tqdm's own write
            os.write(2, f"\n{signal.Signals(signum).name}: stopping after this step with a "
                        "checkpoint (send it again to stop at once)\n".encode())


def resume_command(config: Config, data_dir: Path, out_dir: Path,
                   with_segmentation: bool) -> str:
    """The ``pggan train`` command line that continues this run.

    Built from the config: the CLI shapes one from a profile, --seed and --precision (the
    profiles set neither), so a run started from Python with other overrides needs those
    again, and ``_check_same_config`` names any that differ.
    """
    t, default = config.train, TrainConfig()
    args = ["pggan", "train", "--data", str(data_dir), "--out", str(out_dir),
            "--profile", config.profile]
    if not with_segmentation:
        args.append("--no-segmentation")
    if t.seed != default.seed:
        args += ["--seed", str(t.seed)]
    if t.precision != default.precision:
        args += ["--precision", t.precision]
    return shlex.join([*args, "--resume"])


def train(config: Config, data_dir: str | Path, out_dir: str | Path,
          with_segmentation: bool = True, resume: bool = False, progress: bool = True,
          position: int | None = None) -> Path:
    """Train a progressive GAN on the prepared dataset ``data_dir``; return the run folder.

    ``with_segmentation=False`` keeps only the image channels (the paper's Figure 3 ablation).
    ``resume=True`` continues from ``out_dir/checkpoints`` (starting fresh if there is none);
    without it an ``out_dir`` that already holds checkpoints is an error, never overwritten.
    Raises TrainingDiverged when a loss turns NaN or infinite (the last checkpoint is kept),
    TrainingInterrupted after SIGINT or SIGTERM (with a checkpoint of the step it was in),
    StorageError when a checkpoint cannot be written (the previous one is kept), and
    RunInUseError while another process trains into ``out_dir``.
    """
    runtime = setup_runtime(config.train.device)
    try:
        trainer = Trainer(config, Path(data_dir), Path(out_dir), with_segmentation, runtime)
        # rank 0 alone writes the run folder, so it alone locks it; the other ranks of a
        # refused run stop with it when torchrun tears the group down
        with run_lock(out_dir) if runtime.is_main else contextlib.nullcontext():
            trainer.run(resume=resume, progress=progress, position=position)
    finally:
        if runtime.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return Path(out_dir)


class Trainer:
    """The networks, optimizers and data stream of one run, and the loop that trains them."""

    def __init__(self, config: Config, data_dir: Path, out_dir: Path, with_segmentation: bool,
                 runtime: Runtime) -> None:
        self.config, self.out_dir, self.runtime = config, out_dir, runtime
        self.with_segmentation = with_segmentation
        self.data = PreparedDataset(data_dir)
        self._check_data(data_dir)
        # recorded in run.json and every checkpoint: a run resumes only on this data
        self.data_record = self.data.data_record()
        n_channels = (len(self.data.channels) if with_segmentation
                      else dataset_spec(self.data.dataset).image_channels)
        self.channels = self.data.channels[:n_channels]
        self.phases = build_phases(config)
        self.total_steps = self.phases[-1].end
        self.device = runtime.device
        # train.precision: bf16 autocast on GPUs by default (precision.py for the fp32 seams)
        self.precision = precision.resolve(config.train.precision, self.device)
        self.autocast = precision.autocast(config.train.precision, self.device)
        # channels-last convolutions are faster on GPUs and on CPU too (bench_train --compare nchw)
        self.memory_format = torch.channels_last

        t = config.train
        torch.manual_seed(t.seed)  # identical initial weights on every rank
        max_res = config.schedule.max_resolution
        self.G = build_network("generator", config.model, n_channels, max_res)
        self.D = build_network("critic", config.model, n_channels, max_res)
        self.G_ema = (copy.deepcopy(self.G).requires_grad_(False)
                      if config.train.use_ema else None)
        for module in (self.G, self.D, self.G_ema):
            if module is not None:
                module.to(self.device, memory_format=self.memory_format)
        # G and D as the current phase trains them (data-parallel, compiled: _networks_for)
        self.G_train: nn.Module = self.G
        self.D_train: nn.Module = self.D
        self.D_compiled: nn.Module | None = None  # D's first-order path, when compiled
        self.lr = t.lr
        # the fixed latents of every sample grid and of the progression strip
        self.fixed_z = torch.randn(t.sample_grid, config.model.latent_dim,
                                   generator=torch.Generator().manual_seed(t.seed))

        torch.manual_seed(t.seed + runtime.rank)  # different latents on every rank
        # Python's own RNG too (checkpoints carry it): a run then depends on its seed only,
        # not on what the process drew before it started
        random.seed(t.seed + runtime.rank)
        shard = self.data.split_indices("train")[runtime.rank::runtime.world_size]
        if len(shard) == 0:
            raise DataError(f"{data_dir} has no training images for rank {runtime.rank}; "
                            "prepare more images or train on fewer processes")
        self.sampler = ShardSampler(shard, t.seed, runtime.rank)
        self.step = 0
        self.images_seen = 0
        self.train_seconds = 0.0  # wall time spent in training steps (resumes add up)
        self.opt_G: torch.optim.Adam | None = None
        self.opt_D: torch.optim.Adam | None = None

    # ---------------------------------------------------------------- the loop

    def run(self, resume: bool, progress: bool, position: int | None = None) -> None:
        """Train from step 0 or from the latest checkpoint to the end of the schedule,
        reporting progress (``progress.Progress``; ``position``: the bar's row when several
        trainings share a terminal)."""
        phase_index, opt_states = self._start(resume)
        bar = Progress(self.total_steps, self._label(), initial=self.step,
                       enabled=progress and self.runtime.is_main, position=position)
        last_log = (time.perf_counter(), self.images_seen)
        with StopSignals(notice=self.runtime.is_main) as stop:
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
                    bar.update(1, status=f"{phase.resolution} px {phase.kind} "
                                         f"α={alpha:.2f}")
                    if self.step % self.config.train.log_every == 0:
                        last_log = self._log(phase, alpha, stats, last_log, bar)
                    if self.step == phase.end:
                        self._end_of_phase(phase)
                    saved = (self.step % self.config.train.checkpoint_every == 0
                             or self.step == phase.end)
                    if saved:
                        self._checkpoint(phase, alpha)
                    signum = self._stop_signal(stop)
                    if signum and self.step < self.total_steps:  # a finished run just finishes
                        bar.close()
                        self._interrupt(phase, alpha, signum, saved)
        bar.close()
        if self.runtime.is_main:
            self._write_run_info(finished=True)

    def _label(self) -> str:
        """The run as progress names it: ``rop/demo/seg`` (its last folders)."""
        return "/".join(self.out_dir.resolve().parts[-3:])

    def _stop_signal(self, stop: StopSignals) -> int:
        """The signal that stops training after this step (0: none), the same on every rank:
        Ctrl-C reaches each process of a torchrun job on its own, perhaps a step apart, and a
        rank that stopped alone would leave the others waiting in a collective for ever."""
        if self.runtime.world_size == 1:
            return stop.signum
        signum = torch.tensor([stop.signum], device=self.device)
        dist.all_reduce(signum, op=dist.ReduceOp.MAX)
        return int(signum.item())

    def _interrupt(self, phase: Phase, alpha: float, signum: int, saved: bool) -> NoReturn:
        """Checkpoint the step just trained (unless that is done), mark the run unfinished,
        and raise TrainingInterrupted naming the command that resumes it."""
        if not saved:
            self._checkpoint(phase, alpha)
        if self.runtime.is_main:
            self._write_run_info(finished=False)
        command = resume_command(self.config, self.data.path, self.out_dir,
                                 self.with_segmentation)
        raise TrainingInterrupted(
            f"stopped by {signal.Signals(signum).name} after step {self.step} of "
            f"{self.total_steps}, checkpoint saved in {self.out_dir / 'checkpoints'}; "
            f"resume with: {command}", signum)

    def begin_phase(self, phase: Phase, opt_states: tuple[dict, dict] | None = None) -> int:
        """Fresh Adam optimizers (or a checkpoint's mid-phase ``opt_states``) and the networks
        as ``phase`` trains them; returns this rank's batch size."""
        self._new_optimizers(opt_states)
        self.G_train, self.D_train, self.D_compiled = self._networks_for(phase)
        return self._rank_batch(phase.resolution)

    def train_step(self, phase: Phase, alpha: float, batch: int) -> dict[str, float]:
        """``d_steps_per_g_step`` critic steps, then one generator step and the EMA update;
        the losses. What ``run`` repeats, and what the benchmarks time."""
        res, t = phase.resolution, self.config.train
        latent = self.config.model.latent_dim
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

    def _networks_for(self, phase: Phase) -> tuple[nn.Module, nn.Module, nn.Module | None]:
        """G, D and D compiled for its scoring path (None: not compiled) as ``phase`` trains
        them: G and D wrapped in DistributedDataParallel over several ranks; G and the scoring
        path compiled for stable phases when ``train.compile`` is set (``compiled_or_eager``).

        The scoring path is the critic where only first derivatives run through it: its scores
        of reals and fakes in the critic step, and of fakes in the generator step. The gradient
        penalty differentiates the critic twice, which compiled graphs do not support, so it
        runs the eager critic (the same weights). Only stable phases: a fade changes alpha every
        step, and each value would be a recompilation. The cache is cleared so each resolution
        starts afresh. Several ranks keep the eager critic for scoring: DistributedDataParallel
        must see every forward whose gradient it reduces.
        """
        G: nn.Module = self.G
        D: nn.Module = self.D
        if self.runtime.world_size > 1:
            fading = phase.kind == "fade"
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            G, D = (DistributedDataParallel(PhaseNetwork(net, phase.resolution, fading),
                                            device_ids=device_ids, broadcast_buffers=False)
                    for net in (self.G, self.D))
        D_compiled = None
        if self.config.train.compile and phase.kind == "stable":
            torch._dynamo.reset()
            G = compiled_or_eager(G)
            if self.runtime.world_size == 1:
                D_compiled = compiled_or_eager(self.D)
        return G, D, D_compiled

    def _reals(self, res: int, alpha: float, batch: int) -> Tensor:
        """A batch of reals at ``res``; during a fade, mixed with their 2x down-up copy."""
        images = self.data.batch(self.sampler.next(batch), res)[:, :len(self.channels)]
        x = torch.from_numpy(images).to(self.device, non_blocking=True)
        if alpha < 1.0:
            x = torch.lerp(upsample(downsample(x)), x, alpha)
        return x.contiguous(memory_format=self.memory_format)

    def _mean_loss(self, loss: Tensor, name: str, phase: Phase) -> float:
        """The loss averaged over ranks; stop (every rank alike) on a NaN/inf before the update."""
        value = loss.detach().float().reshape(1)
        if self.runtime.world_size > 1:
            dist.all_reduce(value)
            value /= self.runtime.world_size
        result = value.item()
        if not math.isfinite(result):
            last = self.out_dir / "checkpoints" / ckpt.LATEST
            kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint yet"
            raise TrainingDiverged(
                f"{name} is {result} at step {self.step + 1} ({phase.resolution} px, "
                f"{phase.kind}); {kept}: resume with --resume, or lower train.lr")
        return result

    def _new_optimizers(self, states: tuple[dict, dict] | None) -> None:
        """Fresh Adam optimizers for a new phase, or the checkpoint's mid-phase ones."""
        t = self.config.train
        self.opt_G = adam(self.G.parameters(), self.lr, t.betas, t.eps)
        self.opt_D = adam(self.D.parameters(), self.lr, t.betas, t.eps)
        if states is not None:
            self.opt_G.load_state_dict(states[0])
            self.opt_D.load_state_dict(states[1])

    def _rank_batch(self, res: int) -> int:
        batch, world = self.config.schedule.batch_size[res], self.runtime.world_size
        if batch % world:
            raise ConfigError(f"schedule.batch_size[{res}]={batch} does not split evenly over "
                              f"{world} processes; use a multiple of {world}")
        return batch // world

    # ---------------------------------------------------------------- start and resume

    def _start(self, resume: bool) -> tuple[int, tuple[dict, dict] | None]:
        """Set up the run folder; load the checkpoint on resume. Returns (phase, opt states)."""
        folder = self.out_dir / "checkpoints"
        if (self.out_dir / ckpt.GENERATOR_FILE).is_file():
            raise PgganError(f"{self.out_dir} holds a shipped run (its generator only, which "
                             "cannot be trained further); choose another --out")
        if ckpt.has_checkpoint(folder) and not resume:
            raise PgganError(f"{self.out_dir} already holds a run: pass --resume to continue "
                             "it, or choose another --out")
        if not (resume and ckpt.has_checkpoint(folder)):
            if self.runtime.is_main:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                write_text_atomic(self.out_dir / "config.yaml",
                                  yaml.safe_dump(self.config.run_dict(), sort_keys=False))
                write_text_atomic(self.out_dir / "metrics.jsonl", "")
                write_text_atomic(self.out_dir / "phase_metrics.jsonl", "")
                self._write_run_info(finished=False)
            return 0, None
        self._check_same_config()
        state = ckpt.load_latest(folder, self.device)
        self._check_same_data(state.get("data"))
        return self._load_state(state)

    def _load_state(self, state: dict[str, Any]) -> tuple[int, tuple[dict, dict] | None]:
        if list(state["channels"]) != list(self.channels):
            raise ConfigError(f"{self.out_dir}: the checkpoint was trained on channels "
                              f"{state['channels']}, this run uses {list(self.channels)}; "
                              "match --no-segmentation to the original run")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["G_ema"])
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        ranks = state["ranks"]
        if len(ranks) == self.runtime.world_size:
            ckpt.restore_rng(ranks[self.runtime.rank]["rng"])
            self.sampler.load_state_dict(ranks[self.runtime.rank]["sampler"])
        else:  # another process count: carry on with fresh, distinct streams per rank
            torch.manual_seed(self.config.train.seed + self.step + self.runtime.rank)
        if self.runtime.is_main:
            self._truncate_metrics()
        phase = self.phases[int(state["phase_index"])]
        if self.step < phase.end:
            return phase.index, (state["opt_G"], state["opt_D"])
        return phase.index + 1, None

    def _check_same_config(self) -> None:
        # through config_from_dict: a file from before a field existed holds its default
        saved = config_from_dict(yaml.safe_load((self.out_dir / "config.yaml").read_text())
                                 ).run_dict()
        new = self.config.run_dict()
        for section, values in new.items():
            old = saved.get(section)
            if isinstance(values, dict) and isinstance(old, dict):
                for key, value in values.items():
                    if old.get(key) != value:
                        raise ConfigError(
                            f"{self.out_dir / 'config.yaml'}: {section}.{key} was "
                            f"{old.get(key)!r}, now {value!r}; resume with the original "
                            "settings or train into a new --out")
            elif old != values:
                raise ConfigError(f"{self.out_dir / 'config.yaml'}: {section} was {old!r}, now "
                                  f"{values!r}; resume with the original settings")

    def _check_same_data(self, recorded: dict[str, Any] | None) -> None:
        """Refuse to continue a run on data other than its checkpoint was trained on."""
        require_same_data(recorded, self.data_record, self.out_dir,
                          f"resuming on {self.data.path} would mix the two: train into a new "
                          "--out, or resume with the run's own --data")

    def _truncate_metrics(self) -> None:
        """Drop log lines written after the checkpoint (and any line cut short by a kill)."""
        for path in (self.out_dir / "metrics.jsonl", self.out_dir / "phase_metrics.jsonl"):
            kept = []
            for line in path.read_text().splitlines() if path.exists() else []:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record["step"] <= self.step:
                    kept.append(line + "\n")
            write_text_atomic(path, "".join(kept))

    def _check_data(self, data_dir: Path) -> None:
        if self.data.dataset != self.config.data.dataset:
            raise ConfigError(f"{data_dir} holds {self.data.dataset!r} images but the config "
                              f"is for {self.config.data.dataset!r}; pass the matching --data")
        needed = self.config.schedule.max_resolution
        if needed not in self.data.resolutions:
            raise DataError(f"{data_dir} stops at {self.data.max_resolution} px but the "
                            f"schedule trains to {needed} px; prepare it with resolution "
                            f">= {needed}")

    # ---------------------------------------------------------------- outputs

    def _checkpoint(self, phase: Phase, alpha: float) -> None:
        """Gather every rank's RNG and data-order state; rank 0 writes the checkpoint."""
        mine = {"rng": ckpt.capture_rng(), "sampler": self.sampler.state_dict()}
        fingerprint = ckpt.weights_fingerprint(self.G, self.D)
        ranks, fingerprints = [mine], [fingerprint]
        if self.runtime.world_size > 1:
            ranks = [None] * self.runtime.world_size
            fingerprints = [None] * self.runtime.world_size
            dist.all_gather_object(ranks, mine)
            dist.all_gather_object(fingerprints, fingerprint)
            if len(set(fingerprints)) != 1:
                raise RuntimeError(f"ranks hold different weights at step {self.step}: "
                                   f"{fingerprints}")
        if not self.runtime.is_main:
            return
        cpu = {name: _to_cpu(module.state_dict()) if module is not None else None
               for name, module in (("G", self.G), ("G_ema", self.G_ema), ("D", self.D))}
        ckpt.save_checkpoint(self.out_dir / "checkpoints", {
            "config": self.config.run_dict(), "channels": list(self.channels),
            "with_segmentation": self.with_segmentation, "dataset": self.data.dataset,
            "data": self.data_record, "step": self.step, "phase_index": phase.index,
            "resolution": phase.resolution,
            "phase": phase.kind, "alpha": alpha, "images_seen": self.images_seen,
            "train_seconds": self.train_seconds,
            "finished": self.step == self.total_steps, **cpu,
            "opt_G": _to_cpu(self.opt_G.state_dict()), "opt_D": _to_cpu(self.opt_D.state_dict()),
            "ranks": ranks, "rank_fingerprints": fingerprints,
        })

    def _log(self, phase: Phase, alpha: float, stats: dict[str, float],
             last: tuple[float, int], bar: Progress) -> tuple[float, int]:
        now = time.perf_counter()
        rate = (self.images_seen - last[1]) / max(now - last[0], 1e-9)
        bar.update(0, detail=f"{rate:.0f} img/s, d {stats['d_loss']:.3f}, "
                             f"g {stats['g_loss']:.3f}")
        if self.runtime.is_main:
            record = {"step": self.step, "resolution": phase.resolution, "phase": phase.kind,
                      "alpha": alpha, "d_loss": stats["d_loss"], "g_loss": stats["g_loss"],
                      "gp": stats["gp"], "wasserstein": stats["wasserstein"],
                      "images_seen": self.images_seen, "img_per_s": rate}
            with open(self.out_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
        return now, self.images_seen

    @torch.no_grad()
    def _end_of_phase(self, phase: Phase) -> None:
        """The fixed-latent sample grid; after a stable phase, one column of the progression."""
        if not self.runtime.is_main:
            return
        G = self.G_ema if self.G_ema is not None else self.G
        images = G(self.fixed_z.to(self.device), phase.resolution, 1.0).float().cpu().numpy()
        grid = plots.sample_grid(images, self.data.dataset,
                                 ncols=math.ceil(math.sqrt(len(images))),
                                 size=max(phase.resolution, DISPLAY_MIN))
        plots.save_png(grid, self.out_dir / "samples"
                       / f"res{phase.resolution:03d}_{phase.kind}.png")
        if phase.kind == "stable":
            self._add_progression(phase.resolution, images[0])
        self._log_phase_swd(phase, G)

    def _log_phase_swd(self, phase: Phase, G: nn.Module) -> None:
        """Append the phase-end SWD (EMA generator against real images at this resolution,
        and the real-vs-real floor when there are enough images) and the generator's latent
        participation ratio (``generate.latent_usage``) to ``phase_metrics.jsonl``.

        Below 8 px a 7x7 SWD patch does not fit, so the SWD there is None.
        """
        res = phase.resolution
        record: dict[str, Any] = {
            "step": self.step, "resolution": res, "phase": phase.kind,
            "images_seen": self.images_seen, "train_seconds": round(self.train_seconds, 2),
            "threads": torch.get_num_threads(), "swd_mean": None, "swd_floor_mean": None}
        if res > SWD_PATCH:
            rng = np.random.default_rng(PHASE_SWD_SEED)
            train_idx = self.data.split_indices("train")
            picked = rng.permutation(train_idx)[:2 * PHASE_SWD_IMAGES]
            reals = self.data.batch(np.sort(picked), res)[:, :len(self.channels)]
            z = torch.randn(PHASE_SWD_IMAGES, self.config.model.latent_dim,
                            generator=torch.Generator().manual_seed(PHASE_SWD_SEED))
            with torch.no_grad():
                fakes = G(z.to(self.device), res, 1.0).float().clamp(-1, 1).cpu().numpy()
            first, second = reals[:PHASE_SWD_IMAGES], reals[PHASE_SWD_IMAGES:]
            swd = {"seed": 0, "min_resolution": min(res, 16)}
            record["swd_mean"] = sliced_wasserstein(first, fakes, **swd)["swd_mean"]
            if len(second) == PHASE_SWD_IMAGES:
                record["swd_floor_mean"] = sliced_wasserstein(first, second, **swd)["swd_mean"]
        # how many latent directions the drawing moves along, phase by phase (its own latent
        # stream: the training draws are not touched)
        record["latent_participation_ratio"] = latent_usage(G, res, 1.0)["participation_ratio"]
        with open(self.out_dir / "phase_metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

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

    def _write_run_info(self, finished: bool) -> None:
        write_run_info(self.out_dir, RunInfo(
            dataset=self.data.dataset, data_dir=str(self.data.path), data=self.data_record,
            with_segmentation=self.with_segmentation, channels=list(self.channels),
            total_steps=self.total_steps, step=self.step, images_seen=self.images_seen,
            train_seconds=round(self.train_seconds, 1), world_size=self.runtime.world_size,
            threads=torch.get_num_threads(), device=str(self.device), precision=self.precision,
            finished=finished))


def _to_cpu(state: Any) -> Any:
    """A (nested) state dict with every tensor copied to the CPU."""
    if isinstance(state, Tensor):
        return state.detach().cpu().clone()
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(_to_cpu(v) for v in state)
    return state
