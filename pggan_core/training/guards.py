"""What keeps a training run safe around its loop (``trainer.py``), and spreads it over ranks.

One process per run folder; a run resumes only as it was, on its own data; a NaN loss stops it
before it spoils the weights; SIGINT and SIGTERM stop it after its step, with a checkpoint. Under
``torchrun --nproc_per_node N`` every rank reads its own shard of the training images and takes
its share of the batch, G and D are wrapped in DistributedDataParallel per phase (averaging
gradients over ranks in the backward pass), every checkpoint holds every rank's random and data
streams, and rank 0 alone writes files. ``train.compile`` compiles per phase, eager on failure.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import signal
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn
from torch._inductor.runtime.cache_dir_utils import default_cache_dir
from torch.nn.parallel import DistributedDataParallel

from pggan_core.config import config_from_dict, differing_keys
from pggan_core.data.store import PreparedDataset, require_same_data
from pggan_core.device import pick_device
from pggan_core.errors import ConfigError, DataError, PgganError, RunInUseError
from pggan_core.settings import Config, TrainConfig
from pggan_core.training import checkpoint as ckpt
from pggan_core.training.allocator import keep_freed_memory
from pggan_core.training.schedule import Phase

try:
    import fcntl
except ImportError:  # Windows: no flock; training there runs unlocked
    fcntl = None


# ---------------------------------------------------------------- one process per run folder

LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold ``run_dir``'s lock (``<run>/.lock``) for the ``with`` block, creating the folder;
    yield the lock file. RunInUseError naming the holder when another process holds it.

    Two trainings writing the same checkpoints and logs would interleave them into a run that is
    neither. ``flock`` is dropped by the kernel however its holder exits (SIGKILL and power loss
    included), so no stale lock needs cleaning up. The file only tells a refused process who
    holds the lock (pid, host, start time); it is never deleted, because deleting a lock file lets
    a third process lock a fresh file while the second still holds the old one.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    # "a+": create without truncating, so the holder's details survive until we hold the lock
    with open(path, "a+") as fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                raise RunInUseError(_in_use(run_dir, fh.read())) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
        fh.flush()
        try:
            yield path
        finally:
            fh.truncate(0)  # the lock itself goes with the descriptor; these details with it


def _in_use(run_dir: Path, holder_text: str) -> str:
    """The refusal: the holder as its lock file names it (perhaps not yet), and the ways out."""
    try:
        holder = json.loads(holder_text)
        who = (f"another `pggan train` (pid {holder['pid']} on host {holder['host']}, "
               f"since {holder['started']})")
        stop = f"stop it with `kill {holder['pid']}` on {holder['host']}"
    except (ValueError, TypeError, KeyError):
        who, stop = "another `pggan train`", "stop it"
    return (f"{run_dir} is in use by {who}: wait for it to finish, or {stop} (it saves a "
            "checkpoint; continue it with --resume), or train into another --out")


# ---------------------------------------------------------------- what may be trained, resumed

def check_data(data: PreparedDataset, config: Config, data_dir: Path) -> None:
    """Refuse data of another dataset than the config's, or too small for its schedule."""
    if data.dataset != config.data.dataset:
        raise ConfigError(f"{data_dir} holds {data.dataset!r} images but the config "
                          f"is for {config.data.dataset!r}; pass the matching --data")
    needed = config.schedule.max_resolution
    if needed not in data.resolutions:
        raise DataError(f"{data_dir} stops at {data.max_resolution} px but the "
                        f"schedule trains to {needed} px; prepare it with resolution "
                        f">= {needed}")


def resuming(out_dir: Path, resume: bool) -> bool:
    """Whether the run continues from ``out_dir/checkpoints`` (``resume`` and a checkpoint).
    Refuses a shipped run (a generator alone cannot be trained on) and, without ``resume``, a
    folder holding a run: it is never overwritten."""
    if (out_dir / ckpt.GENERATOR_FILE).is_file():
        raise PgganError(f"{out_dir} holds a shipped run (its generator only, which "
                         "cannot be trained further); choose another --out")
    found = ckpt.has_checkpoint(out_dir / "checkpoints")
    if found and not resume:
        raise PgganError(f"{out_dir} already holds a run: pass --resume to continue "
                         "it, or choose another --out")
    return found


def check_same_config(out_dir: Path, config: Config) -> None:
    """Refuse to resume with another config than ``config.yaml``, naming every key that differs."""
    path = out_dir / "config.yaml"
    # through config_from_dict: a file from before a field existed holds its default
    saved = config_from_dict(yaml.safe_load(path.read_text())).run_dict()
    now = config.run_dict()
    changed = [f"{key} was {_value(saved, key)!r}, now {_value(now, key)!r}"
               for key in differing_keys(saved, now)]
    if changed:
        raise ConfigError(f"{path}: {'; '.join(changed)}; resume with the original settings "
                          "or train into a new --out")


def _value(sections: dict[str, Any], key: str) -> Any:
    """The value of a dotted key (``train.lr``) or whole section (``profile``)."""
    section, _, name = key.partition(".")
    value = sections.get(section)
    return (value if isinstance(value, dict) else {}).get(name) if name else value


def check_same_run(state: dict[str, Any], data: PreparedDataset, data_record: dict[str, Any],
                   channels: list[str], out_dir: Path) -> None:
    """Refuse to continue a checkpoint on other data or channels than it was trained on."""
    require_same_data(state.get("data"), data_record, out_dir,
                      f"resuming on {data.path} would mix the two: train into a new "
                      "--out, or resume with the run's own --data")
    if list(state["channels"]) != list(channels):
        raise ConfigError(f"{out_dir}: the checkpoint was trained on channels "
                          f"{state['channels']}, this run uses {list(channels)}; "
                          "match --no-segmentation to the original run")


# ---------------------------------------------------------------- a NaN stops the run

class TrainingDiverged(PgganError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def finite_mean(loss: Tensor, name: str, at: str, runtime: Runtime, out_dir: Path) -> float:
    """``loss`` averaged over ranks; TrainingDiverged (on every rank alike, before the update)
    when it is NaN or infinite, saying where (``at``: ``step 7 (8 px, fade)``)."""
    value = loss.detach().float().reshape(1)
    if runtime.world_size > 1:
        dist.all_reduce(value)
        value /= runtime.world_size
    result = value.item()
    if not math.isfinite(result):
        last = out_dir / "checkpoints" / ckpt.LATEST
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint yet"
        raise TrainingDiverged(f"{name} is {result} at {at}; {kept}: resume with --resume, "
                               "or lower train.lr")
    return result


# ---------------------------------------------------------------- SIGINT and SIGTERM

class StopSignals:
    """SIGINT and SIGTERM caught for a ``with`` block: the first only sets ``signum``, for the
    loop to stop after its step with a checkpoint; a second acts at once, as without us (Ctrl-C
    twice raises KeyboardInterrupt; files on disk stay whole, each written atomically). Ignored
    signals (SIGINT of a background job) stay ignored; outside the main thread, where Python
    cannot install handlers, nothing changes."""

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


def agreed_stop(stop: StopSignals, runtime: Runtime) -> int:
    """The signal that stops training after this step (0: none), the same on every rank:
    Ctrl-C reaches each process of a torchrun job on its own, perhaps a step apart, and a
    rank that stopped alone would leave the others waiting in a collective for ever."""
    if runtime.world_size == 1:
        return stop.signum
    signum = torch.tensor([stop.signum], device=runtime.device)
    dist.all_reduce(signum, op=dist.ReduceOp.MAX)
    return int(signum.item())


def resume_command(config: Config, data_dir: Path, out_dir: Path,
                   with_segmentation: bool) -> str:
    """The ``pggan train`` command line that continues this run: its profile, --seed and
    --precision (what the CLI shapes a config from; profiles set neither). A run started from
    Python with other overrides needs those again; ``check_same_config`` names any that differ."""
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


# ---------------------------------------------------------------- several processes

@dataclass(frozen=True)
class Runtime:
    """Where this process trains: device, rank and world size (1 without torchrun)."""

    device: torch.device
    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[Runtime]:
    """This process's Runtime for the ``with`` block: the device picked, and the process group
    joined when started by torchrun (WORLD_SIZE > 1) and left however the block ends. Also keeps
    freed host memory in the process (``allocator.keep_freed_memory``)."""
    keep_freed_memory()
    use_cuda = pick_device(device).type == "cuda"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    try:
        yield Runtime(torch.device("cuda", local_rank) if use_cuda else torch.device("cpu"),
                      rank, world_size)
    finally:
        if world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def rank_shard(indices: np.ndarray, runtime: Runtime, data_dir: Path) -> np.ndarray:
    """This rank's shard (every world_size-th) of ``indices``; DataError when it is empty."""
    shard = indices[runtime.rank::runtime.world_size]
    if len(shard) == 0:
        raise DataError(f"{data_dir} has no training images for rank {runtime.rank}; "
                        "prepare more images or train on fewer processes")
    return shard


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


def rank_batch(batch_size: dict[int, int], resolution: int, runtime: Runtime) -> int:
    """This rank's share of ``batch_size[resolution]``; ConfigError unless it splits evenly."""
    batch, world = batch_size[resolution], runtime.world_size
    if batch % world:
        raise ConfigError(f"schedule.batch_size[{resolution}]={batch} does not split "
                          f"evenly over {world} processes; use a multiple of {world}")
    return batch // world


def gather_ranks(mine: dict[str, Any], fingerprint: str, runtime: Runtime,
                 step: int) -> tuple[list[Any], list[Any]]:
    """Every rank's ``mine`` (its RNG and data-order state) and weights fingerprint, in rank
    order, on every rank; RuntimeError when the ranks' weights have drifted apart."""
    if runtime.world_size == 1:
        return [mine], [fingerprint]
    ranks, fingerprints = [None] * runtime.world_size, [None] * runtime.world_size
    dist.all_gather_object(ranks, mine)
    dist.all_gather_object(fingerprints, fingerprint)
    if len(set(fingerprints)) != 1:
        raise RuntimeError(f"ranks hold different weights at step {step}: {fingerprints}")
    return ranks, fingerprints


def restore_rank(ranks: list[dict[str, Any]], sampler: ShardSampler, runtime: Runtime,
                 seed: int) -> None:
    """This rank's RNG and data order as ``gather_ranks`` saved them in a checkpoint; on
    another process count, fresh streams, distinct per rank, from ``seed``."""
    if len(ranks) == runtime.world_size:
        ckpt.restore_rng(ranks[runtime.rank]["rng"])
        sampler.load_state_dict(ranks[runtime.rank]["sampler"])
    else:
        torch.manual_seed(seed + runtime.rank)


class PhaseNetwork(nn.Module):
    """A network as one phase trains it, for DistributedDataParallel to wrap: its own forward,
    but only that phase's layers as parameters. DDP waits for the gradient of every parameter it
    wraps; G and D whole hold every resolution's layers, most idle in any phase, and would need
    ``find_unused_parameters`` and its graph search on every step."""

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


def phase_networks(G: nn.Module, D: nn.Module, phase: Phase, runtime: Runtime,
                   compile: bool) -> tuple[nn.Module, nn.Module, nn.Module | None]:
    """G, D and D compiled for its scoring path (None: not compiled) as ``phase`` trains them:
    over several ranks G and D wrapped in DistributedDataParallel; with ``compile``
    (``train.compile``), G and the scoring path compiled in stable phases.

    The scoring path is the critic where only first derivatives run through it (its scores in
    the critic and generator steps); the gradient penalty differentiates it twice, which
    compiled graphs do not support, so it runs the eager critic (same weights). Stable phases
    only: a fade's alpha changes every step, each value a recompilation; the cache is cleared so
    each resolution starts afresh. Several ranks score with the eager critic: DDP must see every
    forward whose gradient it reduces.
    """
    G_train, D_train = G, D
    if runtime.world_size > 1:
        fading = phase.kind == "fade"
        device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        G_train, D_train = (
            DistributedDataParallel(PhaseNetwork(net, phase.resolution, fading),
                                    device_ids=device_ids, broadcast_buffers=False)
            for net in (G, D))
    D_compiled = None
    if compile and phase.kind == "stable":
        torch._dynamo.reset()
        G_train = compiled_or_eager(G_train)
        if runtime.world_size == 1:
            D_compiled = compiled_or_eager(D)
    return G_train, D_train, D_compiled


# ---------------------------------------------------------------- train.compile

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


class CompiledOrEager(nn.Module):
    """``module`` compiled, fusing the small elementwise kernels (bias, leaky ReLU, pixel norm,
    the fade's lerp) whose launch overhead takes much of a step at the demo's narrow widths. From
    the first call that fails to compile (no C++ compiler, an unsupported platform), ``module``
    itself for good, after one warning: the same results up to float rounding
    (``tests/test_compiled.py``). An error the eager module raises too is raised as is."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        keep_compiled_graphs_apart_per_cpu_kernels()
        # kept off the module tree: it wraps the same parameters, which must be listed once
        object.__setattr__(self, "compiled", torch.compile(module))
        self.failed = False

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as error:  # compilers fail in many ways; eager decides below
                result = self.module(*args, **kwargs)  # raises if the input is at fault
                self.failed = True
                warnings.warn(f"torch.compile failed ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}); "
                              f"training on without it (set train.compile: false to silence)",
                              RuntimeWarning, stacklevel=2)
                return result
        return self.module(*args, **kwargs)


def compiled_or_eager(module: nn.Module) -> CompiledOrEager:
    """``module`` behind ``torch.compile``, falling back to eager if compiling fails."""
    return CompiledOrEager(module)


def keep_compiled_graphs_apart_per_cpu_kernels() -> None:
    """Point torch's compiled-graph cache at ``inductor_cache_dir`` for this process's CPU
    kernels, unless ``TORCHINDUCTOR_CACHE_DIR`` names a folder of the user's own: torch 2.13's
    cache key leaves them out, and a graph compiled with ``ATEN_CPU_CAPABILITY=avx2
    ONEDNN_MAX_CPU_ISA=AVX2`` and loaded without them (or the other way round) segfaults."""
    default = default_cache_dir()
    if os.environ.get(CACHE_ENV, default) != os.path.abspath(default):
        return  # the user's folder; theirs to keep apart
    os.environ[CACHE_ENV] = str(inductor_cache_dir(
        default, torch.backends.cpu.get_cpu_capability(), os.environ.get("ONEDNN_MAX_CPU_ISA")))


def inductor_cache_dir(default: str, aten_capability: str, onednn_isa: str | None) -> Path:
    """The compiled-graph cache folder for one choice of CPU kernels: ``default`` (torch's own
    folder), then a sub-folder named by ATen's CPU capability and oneDNN's ISA cap."""
    return Path(default) / f"aten-{aten_capability.lower()}_onednn-{(onednn_isa or 'any').lower()}"
