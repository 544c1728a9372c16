"""MONAI beside the hand-written steps it could replace (not a test).

For each step, the same inputs through both, the largest difference of the outputs and the
median wall time of each:

- patch-wise vessel segmentation (48 x 48 patches at a stride of 8, overlaps averaged): the
  project's former unfold / fold version (kept below as the reference) against ``monai.
  inferers.sliding_window_inference``, which ``segmentation.vessels.segment_by_patches`` now uses;
- the vessel U-Net itself: the project's ``VesselUNet`` (retina-unet's architecture, as the
  paper's authors used) against ``monai.networks.nets.UNet`` of the same depth and widths:
  parameters and a training step's time on a batch of patches, then both trained as the demo
  profile trains its U-Net and scored on the same held-out phantoms (AUC);
- z-scores over the brain: ``preprocess.zscore_volume`` against ``monai.transforms.
  NormalizeIntensity(nonzero=True, channel_wise=True)`` on a phantom subject;
- reading a BraTS case's five files: the reader ``loaders.load_brats_case`` uses (nibabel,
  RAS) against MONAI's ``LoadImage`` + ``Orientation("RAS")``;
- ROC AUC of a vessel map: scikit-learn's ``roc_auc_score`` against ``monai.metrics.
  compute_roc_auc``.

    pip install monai && python benchmarks/bench_monai.py

Prints the table and writes ``benchmarks/results/bench_monai.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pggan_core.atomic import write_text_atomic
from pggan_core.config import load_config
from pggan_core.data.brain_phantom import BrainPhantom, write_brats_case
from pggan_core.data.fundus_phantom import render_fundus
from pggan_core.data.loaders import _read_volume, find_brats_cases  # the reader itself
from pggan_core.data.preprocess import vessel_input, zscore_volume
from pggan_core.segmentation.vessels import VesselUNet, ensure_vessel_unet, train_vessel_unet

RESULTS = Path(__file__).parent / "results" / "bench_monai.json"


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def unfold_fold_probability(net: torch.nn.Module, x: np.ndarray, patch: int, stride: int,
                            batch: int) -> np.ndarray:
    """The project's former hand-written patch inference (kept here as the reference): every
    window at ``stride`` by ``F.unfold`` after zero-padding to a size the windows tile, the
    network in batches, overlaps averaged by ``F.fold``."""
    import math

    import torch.nn.functional as F

    h, w = x.shape
    ph, pw = (patch + math.ceil(max(s - patch, 0) / stride) * stride for s in (h, w))
    padded = F.pad(torch.from_numpy(x)[None, None], (0, pw - w, 0, ph - h))
    cols = F.unfold(padded, patch, stride=stride)  # (1, p*p, L)
    patches = cols[0].T.reshape(-1, 1, patch, patch)
    with torch.inference_mode():
        probs = torch.cat([torch.sigmoid(net(c)) for c in patches.split(batch)])
    summed = F.fold(probs.reshape(len(probs), -1).T[None], (ph, pw), patch, stride=stride)
    counts = F.fold(torch.ones_like(cols), (ph, pw), patch, stride=stride)
    return (summed / counts)[0, 0, :h, :w].numpy()


def sliding_window(repeats: int) -> dict:
    from monai.inferers import sliding_window_inference

    config = load_config("smoke", "rop")
    segmenter = ensure_vessel_unet(config, progress=False)
    v = segmenter.vessel_cfg
    fundus = render_fundus(0, 512)
    x = vessel_input(fundus.rgb, fundus.fov, config.data)
    net = segmenter.net

    def ours() -> np.ndarray:
        return unfold_fold_probability(net, x, v.patch, v.stride, segmenter.batch_size)

    def theirs() -> np.ndarray:
        with torch.inference_mode():
            out = sliding_window_inference(
                torch.from_numpy(x)[None, None], (v.patch, v.patch), segmenter.batch_size,
                # MONAI's stride is int(patch * (1 - overlap)): 40/48 would round 7.99 down to
                # 7, so ask for the overlap of a stride of 8.5 to get 8
                lambda p: torch.sigmoid(net(p)), overlap=1 - (v.stride + 0.5) / v.patch,
                mode="constant")
        return out[0, 0].numpy()

    return {"step": "patch-wise segmentation, 512 px, 48 px patches, stride 8",
            "ours": "unfold/fold (the project's former VesselSegmenter.probability)",
            "monai": "sliding_window_inference(stride 8, mode='constant'): adopted",
            "max_abs_difference": float(np.abs(ours() - theirs()).max()),
            "ours_s": median_seconds(ours, repeats), "monai_s": median_seconds(theirs, repeats)}


def unet(repeats: int) -> dict:
    from monai.networks.nets import UNet

    base = load_config("demo", "rop").vessels.base_channels
    ours = VesselUNet(base)
    # the same depth (two poolings) and widths; MONAI's own blocks (strided convolutions,
    # instance norm, PReLU) are its design, not retina-unet's
    theirs = UNet(spatial_dims=2, in_channels=1, out_channels=1,
                  channels=(base, 2 * base, 4 * base), strides=(2, 2), num_res_units=0)
    x, y = torch.randn(32, 1, 48, 48), (torch.rand(32, 1, 48, 48) > 0.9).float()

    def step(net: torch.nn.Module) -> Callable[[], None]:
        opt = torch.optim.Adam(net.parameters(), 1e-3)

        def one() -> None:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return one

    return {"step": "vessel U-Net, a training step on 32 patches of 48 px",
            "ours": f"VesselUNet({base}): {sum(p.numel() for p in ours.parameters()):,} "
                    "parameters",
            "monai": f"UNet(channels={base},{2 * base},{4 * base}): "
                     f"{sum(p.numel() for p in theirs.parameters()):,} parameters",
            "max_abs_difference": None,
            "ours_s": median_seconds(step(ours), repeats),
            "monai_s": median_seconds(step(theirs), repeats)}


def unet_quality(repeats: int) -> dict:
    """Both U-Nets trained the same way (the demo profile's schedule, phantom images) and
    scored on the same held-out phantoms: AUC inside the field of view."""
    from monai.networks.nets import UNet

    config = load_config("demo", "rop")
    base = config.vessels.base_channels
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, net in (("ours", VesselUNet(base)),
                          ("monai", UNet(spatial_dims=2, in_channels=1, out_channels=1,
                                         channels=(base, 2 * base, 4 * base),
                                         strides=(2, 2), num_res_units=0))):
            metrics = train_vessel_unet(config, Path(tmp) / f"{name}.pt", progress=False,
                                        network=net)
            scores[name] = (metrics["auc"], metrics["seconds_train"])
    return {"step": f"vessel U-Net trained as the demo profile does, held-out AUC "
                    f"(ours {scores['ours'][0]:.4f}, MONAI {scores['monai'][0]:.4f})",
            "ours": f"VesselUNet({base}), AUC {scores['ours'][0]:.4f}",
            "monai": f"UNet({base}, {2 * base}, {4 * base}), AUC {scores['monai'][0]:.4f}",
            "auc_ours": scores["ours"][0], "auc_monai": scores["monai"][0],
            "max_abs_difference": None,
            "ours_s": scores["ours"][1], "monai_s": scores["monai"][1]}


def zscores(repeats: int) -> dict:
    from monai.transforms import NormalizeIntensity

    volume = BrainPhantom().subject(0)
    brain = volume.brain_mask.astype(bool)
    normalise = NormalizeIntensity(nonzero=True, channel_wise=True)

    def ours() -> np.ndarray:
        return zscore_volume(volume.modalities, volume.brain_mask, "phantom")

    def theirs() -> np.ndarray:
        # MONAI normalises the non-zero voxels of each channel: the brain, where skull-stripped
        # volumes are zero outside it
        return np.asarray(normalise(np.where(brain, volume.modalities, 0.0)))

    return {"step": f"z-scores over the brain, a {volume.modalities.shape} volume",
            "ours": "preprocess.zscore_volume (+ NaN / empty / constant checks)",
            "monai": "NormalizeIntensity(nonzero=True, channel_wise=True)",
            "max_abs_difference": float(np.abs(ours() - theirs()).max()),
            "ours_s": median_seconds(ours, repeats), "monai_s": median_seconds(theirs, repeats)}


def nifti(repeats: int) -> dict:
    from monai.transforms import Compose, EnsureChannelFirst, LoadImage, Orientation

    with tempfile.TemporaryDirectory() as tmp:
        write_brats_case(BrainPhantom().subject(0), Path(tmp), "Brats17_TST_1_1")
        case = find_brats_cases(tmp)[0]
        read = Compose([LoadImage(image_only=True), EnsureChannelFirst(),
                        Orientation(axcodes="RAS", labels=None)])
        files = [case.modality_paths[m] for m in ("T1", "T1c", "T2", "FLAIR")]
        files.append(case.seg_path)

        # the reads alone: load_brats_case also unifies labels, checks shapes and finds the
        # brain, which MONAI's reader does not do
        def ours() -> np.ndarray:
            return np.stack([_read_volume(f) for f in files])

        def theirs() -> np.ndarray:
            return np.concatenate([np.asarray(read(str(f))) for f in files])

        return {"step": "reading a BraTS case (4 sequences + seg, .nii.gz)",
                "ours": "loaders._read_volume per file (nibabel, RAS, finite check)",
                "monai": "LoadImage + EnsureChannelFirst + Orientation('RAS'), per sequence",
                "max_abs_difference": float(np.abs(ours() - theirs()).max()),
                "ours_s": median_seconds(ours, repeats),
                "monai_s": median_seconds(theirs, repeats)}


def roc_auc(repeats: int) -> dict:
    from monai.metrics import compute_roc_auc
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.random(8 * 512 * 512) < 0.1
    scores = np.clip(labels * 0.3 + rng.normal(0.4, 0.2, labels.size), 0, 1).astype(np.float32)

    def ours() -> float:
        return float(roc_auc_score(labels, scores))

    def theirs() -> float:
        return float(compute_roc_auc(torch.from_numpy(scores), torch.from_numpy(labels)))

    return {"step": "ROC AUC of 8 vessel maps of 512 px",
            "ours": "sklearn.metrics.roc_auc_score", "monai": "monai.metrics.compute_roc_auc",
            "max_abs_difference": abs(ours() - theirs()),
            "ours_s": median_seconds(ours, repeats), "monai_s": median_seconds(theirs, repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    import monai

    rows = []
    for measure in (sliding_window, unet, unet_quality, zscores, nifti, roc_auc):
        row = measure(args.repeats)
        row["monai_over_ours"] = row["monai_s"] / row["ours_s"]
        rows.append(row)
        diff = row["max_abs_difference"]
        print(f"{row['step']}\n  ours  {row['ours_s'] * 1e3:9.1f} ms  {row['ours']}\n"
              f"  MONAI {row['monai_s'] * 1e3:9.1f} ms  {row['monai']}\n"
              f"  MONAI / ours {row['monai_over_ours']:.2f}x; largest difference "
              f"{'n/a' if diff is None else f'{diff:.2e}'}", flush=True)
    write_text_atomic(args.out, json.dumps({"monai": monai.__version__,
                                            "torch": torch.__version__,
                                            "threads": torch.get_num_threads(),
                                            "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
