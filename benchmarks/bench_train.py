"""Training speed of the progressive GAN at the paper's or the demo's widths (not a test).

For each resolution: images/s over full training steps (one WGAN-GP critic step, one generator
step, Adam on both, the EMA update), FLOPs per image (counted by FlopCounterMode over one step,
the penalty's double backward included), the achieved GFLOP/s, and, measured in the same run,
the GFLOP/s this machine attains on the step's own convolutions: every convolution the step
runs is recorded (input, weight, stride), each distinct one is timed alone (forward and both
gradients, best memory format), and a step made only of them at those rates would reach
``step_conv_attainable`` GFLOP/s (their FLOP-weighted harmonic mean). Also a 3x3 convolution at
128 channels and a large matmul, for reference. Times are medians after warm-up.

    python benchmarks/bench_train.py --resolutions 4 8 16 32 64 --threads 2
    python benchmarks/bench_train.py --resolutions 16 32 64 --threads 1 --widths demo
    python benchmarks/bench_train.py --resolutions 16 64 --compare stock_conv,loop_adam,nchw
    python benchmarks/bench_train.py --resolutions 16 32 64 --widths demo --compare compile
    python benchmarks/bench_train.py --table benchmarks/results/bench_train_demo.json

``--compare`` times the named options against the plain setup, interleaved step by step in one
process so that a busy machine slows both alike; it reports the ratio of medians.
Writes ``benchmarks/results/bench_train.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, _FlopCounterMode

from pggan_core.atomic import write_text_atomic
from pggan_core.config import load_config
from pggan_core.data.prepare import prepare_dataset
from pggan_core.data.store import PreparedDataset
from pggan_core.training.allocator import keep_freed_memory
from pggan_core.training.guards import Runtime
from pggan_core.training.networks import Conv2d
from pggan_core.training.schedule import Phase
from pggan_core.training.trainer import Trainer

RESULTS = Path(__file__).parent / "results" / "bench_train.json"
# What each option turns back to measure what the default gains from it: ``nchw`` plain
# memory format (the default is channels_last, faster in oneDNN), ``stock_conv`` PyTorch's own
# conv2d in the critic (no ``conv.conv2d``), ``loop_adam`` Adam's default per-tensor loop (not
# the fused kernel); ``compile`` turns on ``train.compile`` (the generator and the critic's
# first-order scoring path compiled, ``pggan_core/training/guards.py``).
OPTIONS = ("nchw", "stock_conv", "loop_adam", "compile")


@dataclass
class Setup:
    """The project's own Trainer, ready to take steps of one phase."""

    trainer: Trainer
    phase: Phase
    alpha: float
    batch: int


def prepare_phantoms(dataset: str, resolution: int, n_images: int, folder: Path) -> Path:
    """A phantom dataset of ``n_images`` up to ``resolution`` px in ``folder`` (made once)."""
    if not (folder / "dataset.json").is_file():
        config = load_config("smoke", dataset, {"data": {
            "n_images": n_images, "resolution": resolution, "heldout_fraction": 0.1,
            "vessel_channel": "mask"}})
        prepare_dataset(config, folder, progress=False)
    return folder


def build(resolution: int, batch: int, data_dir: Path, alpha: float,
          options: frozenset[str] = frozenset(), seed: int = 0,
          profile: str = "paper") -> Setup:
    """A Trainer of ``profile``'s architecture (by default the paper's: latent 128, 128 filters
    below 256 px) grown to ``resolution`` on the prepared data in ``data_dir``, in the phase
    that trains ``resolution`` at ``alpha`` (1: stable, below 1: fading in).

    The ``options`` turn one of the trainer's choices back (``OPTIONS``)."""
    data = PreparedDataset(data_dir)
    everywhere = dict.fromkeys(data.resolutions, batch)
    config = load_config(profile, data.dataset, {
        "schedule": {"max_resolution": resolution, "batch_size": everywhere,
                     "fade_iterations": 1, "stable_iterations": 1, "iterations": {}},
        "train": {"device": "cpu", "precision": "fp32", "seed": seed,
                  "compile": "compile" in options}})
    with tempfile.TemporaryDirectory() as out:  # a Trainer writes nothing before run()
        trainer = Trainer(config, data_dir, Path(out), True, Runtime(torch.device("cpu"), 0, 1))
    kind = "stable" if alpha == 1.0 or resolution == config.schedule.start_resolution else "fade"
    phase = next(p for p in trainer.phases if p.resolution == resolution and p.kind == kind)
    if "nchw" in options:
        trainer.memory_format = torch.contiguous_format
        for net in (trainer.G, trainer.D, trainer.G_ema):
            if net is not None:
                net.to(memory_format=torch.contiguous_format)
    if "stock_conv" in options:
        for layer in trainer.D.modules():
            if type(layer) is Conv2d:
                layer.forward = functools.partial(_stock_conv, layer)
    trainer.begin_phase(phase)
    if "loop_adam" in options:  # the same Adam with PyTorch's default per-tensor loop
        t = config.train
        trainer.opt_G = torch.optim.Adam(trainer.G.parameters(), t.lr, t.betas, t.eps)
        trainer.opt_D = torch.optim.Adam(trainer.D.parameters(), t.lr, t.betas, t.eps)
    return Setup(trainer, phase, alpha, batch)


def _stock_conv(layer: Conv2d, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, layer.scaled_weight(), layer.bias, padding=layer.padding)


def train_step(s: Setup) -> None:
    """One step of the trainer itself (``Trainer.train_step``): critic step(s) with the
    gradient penalty, generator step, EMA update, reading its reals from the prepared data."""
    s.trainer.train_step(s.phase, s.alpha, s.batch)


def timed(fn: Callable[[], None]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flops_per_step(s: Setup) -> int:
    """Floating-point operations of one training step (convolutions and matmuls, fwd + bwd)."""
    counter = FlopCounterMode(display=False)
    # FlopCounterMode's module tracker cannot follow torch.autograd.grad (the gradient
    # penalty), so run its dispatch mode alone: same totals, no per-module breakdown.
    with _FlopCounterMode(counter):
        train_step(s)
    return counter.get_total_flops()


class _RecordConvolutions(TorchDispatchMode):
    """Every forward convolution dispatched while active, one ``Convolution`` per call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Convolution] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution.default:
            x, w, _, stride, padding, _, transposed, output_padding, groups = args
            self.calls.append(Convolution(tuple(x.shape), tuple(w.shape), tuple(stride),
                                          tuple(padding), bool(transposed),
                                          tuple(output_padding), groups))
        return func(*args, **(kwargs or {}))


@dataclass(frozen=True)
class Convolution:
    """One convolution's sizes, as ``aten.convolution`` receives them."""

    x: tuple[int, ...]
    w: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    transposed: bool
    output_padding: tuple[int, ...]
    groups: int

    def flops(self) -> int:
        """Multiply-adds x 2 of the forward pass: every input (transposed) or output pixel
        meets a whole kernel."""
        n, _, h, w = self.x
        kernel = self.w[2] * self.w[3]
        if self.transposed:  # weight (C_in, C_out / groups, k, k)
            return 2 * n * h * w * self.w[0] * self.w[1] * kernel
        out_h = (h + 2 * self.padding[0] - self.w[2]) // self.stride[0] + 1
        out_w = (w + 2 * self.padding[1] - self.w[3]) // self.stride[1] + 1
        return 2 * n * out_h * out_w * self.w[0] * self.w[1] * kernel

    def run(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose2d(x, w, stride=self.stride, padding=self.padding,
                                      output_padding=self.output_padding, groups=self.groups)
        return F.conv2d(x, w, stride=self.stride, padding=self.padding, groups=self.groups)


def step_convolutions(s: Setup) -> list[Convolution]:
    """The forward convolutions one training step runs (the penalty's included)."""
    recorder = _RecordConvolutions()
    with recorder:
        train_step(s)
    return recorder.calls


def conv_rate(c: Convolution, repeats: int = 5) -> float:
    """GFLOP/s of one convolution's forward + grad input + grad weight, alone, in the better
    of the two memory formats."""
    best = 0.0
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(c.x).contiguous(memory_format=fmt).requires_grad_(True)
        w = torch.randn(c.w).contiguous(memory_format=fmt).requires_grad_(True)

        def conv(x: torch.Tensor = x, w: torch.Tensor = w) -> None:
            c.run(x, w).sum().backward()

        conv()
        seconds = statistics.median(timed(conv) for _ in range(repeats))
        best = max(best, 3 * c.flops() / seconds / 1e9)
    return best


def step_conv_attainable(calls: list[Convolution]) -> float:
    """GFLOP/s a step made only of ``calls``' convolutions would reach at the rate each
    attains alone: their total FLOPs over the sum of each one's FLOPs / its rate."""
    rates = {c: conv_rate(c) for c in set(calls)}
    return sum(c.flops() for c in calls) / sum(c.flops() / rates[c] for c in calls)


def attainable_gflops(repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a 3x3 convolution's forward + backward and of a large matmul.

    The convolution is timed at the training step's own sizes (128 channels, batch 16, 16 and
    32 px) in both memory formats; ``conv_fwd_bwd`` is the best of them, the figure a step
    made only of such convolutions could reach. ``conv_64px_nchw`` is the plain large
    convolution (64 px, default memory format) the project's issue quotes for reference.
    """
    def conv_rate(size: int, memory_format: torch.memory_format) -> float:
        x = torch.randn(16, 128, size, size).contiguous(memory_format=memory_format)
        w = torch.randn(128, 128, 3, 3).contiguous(memory_format=memory_format)
        x.requires_grad_(True)
        w.requires_grad_(True)

        def conv() -> None:
            F.conv2d(x, w, padding=1).sum().backward()

        conv()
        seconds = statistics.median(timed(conv) for _ in range(repeats))
        return 3 * 2 * x.numel() * 128 * 9 / seconds / 1e9  # forward, grad input, grad weight

    rates = {f"conv_{size}px_{name}": conv_rate(size, fmt) for size in (16, 32)
             for name, fmt in (("nchw", torch.contiguous_format),
                               ("channels_last", torch.channels_last))}
    reference = conv_rate(64, torch.contiguous_format)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    mm_s = statistics.median(timed(lambda: a @ b) for _ in range(repeats))
    return {"conv_fwd_bwd": max(rates.values()), **rates, "conv_64px_nchw": reference,
            "matmul": 2 * 2048**3 / mm_s / 1e9}


def bench_resolution(resolution: int, batch: int, data_dir: Path, alpha: float, warmup: int,
                     iters: int, variants: dict[str, frozenset[str]], profile: str = "paper"
                     ) -> dict[str, dict]:
    """Interleaved timing of each variant at one resolution; images/s, FLOPs per image and
    what the step's own convolutions attain alone."""
    setups = {name: build(resolution, batch, data_dir, alpha, opts, profile=profile)
              for name, opts in variants.items()}
    for s in setups.values():
        for _ in range(warmup):
            train_step(s)
    times: dict[str, list[float]] = {name: [] for name in setups}
    faults = dict.fromkeys(setups, 0)  # minor page faults: fresh pages from the allocator
    for _ in range(iters):
        for name, s in setups.items():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            times[name].append(timed(lambda s=s: train_step(s)))
            faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    flops = flops_per_step(build(resolution, batch, data_dir, alpha, profile=profile)) / batch
    attainable = step_conv_attainable(step_convolutions(build(resolution, batch, data_dir,
                                                              alpha, profile=profile)))
    out = {}
    for name, ts in times.items():
        images_per_s = batch / statistics.median(ts)
        out[name] = {"images_per_s": images_per_s, "step_s": statistics.median(ts),
                     "step_s_all": ts, "flops_per_image": flops,
                     "page_faults_per_step": faults[name] / iters,
                     "achieved_gflops": flops * images_per_s / 1e9,
                     "step_conv_attainable_gflops": attainable}
    return out


def table(payload: dict) -> str:
    """The printed table of a run (``payload`` as written to ``--out``). *max x*: how much
    faster the step would be if it ran at its own convolutions' attainable rate, i.e. if every
    non-convolution microsecond vanished: the ceiling of any change that keeps the FLOPs."""
    args, peak = payload["args"], payload["attainable_gflops"]
    before, after = peak["before"], peak["after"]
    lines = [
        f"widths={args['widths']} threads={args['threads']} batch={args['batch']} "
        f"dataset={args['dataset']} alpha={args['alpha']} "
        f"malloc={'kept' if payload['keep_freed_memory'] else 'system'}  attainable GFLOP/s "
        f"(before/after): conv fwd+bwd {before['conv_fwd_bwd']:.1f}/{after['conv_fwd_bwd']:.1f}, "
        f"large NCHW conv {before['conv_64px_nchw']:.1f}/{after['conv_64px_nchw']:.1f}, "
        f"matmul {before['matmul']:.1f}/{after['matmul']:.1f}",
        f"{'res':>5} {'variant':>10} {'img/s':>8} {'step s':>8} {'GFLOP/img':>10} "
        f"{'GFLOP/s':>8} {'own convs':>9} {'% own':>6} {'max x':>6} {'% attain':>9} "
        f"{'% large':>8} {'faults/step':>12} {'vs default':>10}"]
    for res, by_variant in payload["results"].items():
        base = by_variant["default"]["images_per_s"]
        for name, r in by_variant.items():
            own = r["step_conv_attainable_gflops"]
            lines.append(
                f"{res:>5} {name:>10} {r['images_per_s']:>8.2f} {r['step_s']:>8.3f} "
                f"{r['flops_per_image'] / 1e9:>10.3f} {r['achieved_gflops']:>8.1f} "
                f"{own:>9.1f} {100 * r['achieved_gflops'] / own:>5.0f}% "
                f"{own / r['achieved_gflops']:>5.2f}x "
                f"{100 * r['achieved_gflops'] / peak['conv_best']:>8.0f}% "
                f"{100 * r['achieved_gflops'] / peak['conv_64px_nchw_best']:>7.0f}% "
                f"{r['page_faults_per_step']:>12.0f} {r['images_per_s'] / base:>9.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--widths", choices=["paper", "demo"], default="paper",
                        help="the architecture (feature maps, latent) of this profile")
    parser.add_argument("--dataset", default="rop", choices=["rop", "brats"],
                        help="phantom data to train on (rop: 4 channels, brats: 7)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) /
                        "pggan-bench-train", help="where the phantom data is prepared (once)")
    parser.add_argument("--alpha", type=float, default=1.0, help="1 = stable phase, <1 = fade")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--compare", default="", help=f"comma-separated subset of {OPTIONS}")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc malloc as it is (default: the project's "
                             "keep_freed_memory(), as `pggan train` does)")
    parser.add_argument("--table", type=Path, metavar="JSON",
                        help="print the table of a saved result and exit")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    torch.set_num_threads(args.threads)
    tuned_malloc = not args.system_malloc and keep_freed_memory()
    variants = {"default": frozenset()}
    for option in filter(None, args.compare.split(",")):
        if option not in OPTIONS:
            parser.error(f"unknown --compare option {option!r}; choose from {', '.join(OPTIONS)}")
        variants[option] = frozenset({option})

    peak = attainable_gflops()
    data_dir = prepare_phantoms(args.dataset, max(args.resolutions), 2 * args.batch,
                                args.data / f"{args.dataset}-{max(args.resolutions)}px")
    rows = {}
    for res in args.resolutions:
        rows[res] = bench_resolution(res, args.batch, data_dir, args.alpha, args.warmup,
                                     args.iters, variants, args.widths)
    peak_after = attainable_gflops()  # the machine is shared: bracket the run
    payload = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "torch": torch.__version__, "machine": platform.machine(), "cpus": os.cpu_count(),
        "keep_freed_memory": tuned_malloc,
        "malloc_env": {k: v for k, v in os.environ.items() if "MALLOC" in k or k == "LD_PRELOAD"},
        "attainable_gflops": {
            "before": peak, "after": peak_after,
            "conv_best": max(peak["conv_fwd_bwd"], peak_after["conv_fwd_bwd"]),
            "conv_64px_nchw_best": max(peak["conv_64px_nchw"], peak_after["conv_64px_nchw"])},
        "results": {str(res): r for res, r in rows.items()},
    }
    print(table(payload))
    write_text_atomic(args.out, json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
