"""The latent encoder, GAN inversion and the latent-space tools behind Figures 4 and 5.

Beers et al. (2018, "Network Architectures") trained "a network for encoding images using the
same network architecture as the discriminator, with the exception of terminating in a
128-vector output with a mean-squared error cost function", fed with images the trained PGGAN
generates, "in a non-progressive manner for 20,000 iterations under the same training
conditions as the primary PGGAN". Encoding held-out real images and regenerating them gives
Figure 4 ("Image Variety"); encoding the training set and projecting the latents with t-SNE
gives Figure 5 ("Latent Space Expression"), where left/right eye is the primary distinction.

``encode_run`` does the whole step for one run folder and writes ``encoder.pt``,
``encoder.json``, ``latents.npz`` and ``figures/encoder_reconstructions.{png,npz,json}``.
The rest are small functions the notebooks use: t-SNE, cross-validated k-nearest-neighbour
scores that put numbers on what the t-SNE shows, spherical interpolation and principal
directions of the encoded latents.

One subtlety: the generator pixel-normalises its input, so it only sees a latent's direction;
the length of z cannot be recovered from an image. For a 128-vector that costs the encoder at
most about 0.5/128 of each dimension's variance, i.e. R² can reach ~0.996, not 1.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict, cross_val_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from torch import Tensor, nn
from tqdm.auto import tqdm

from pggan_core import plots
from pggan_core.atomic import atomic_file, write_text_atomic
from pggan_core.checkpoint import has_generator, load_generator
from pggan_core.config import Config
from pggan_core.data.store import PreparedDataset
from pggan_core.errors import DataError, RunNotFoundError
from pggan_core.networks import Encoder
from pggan_core.paths import prepared_dir
from pggan_core.precision import autocast, resolve

R2_SAMPLES = 256  # generated images the latent-recovery R² is measured on (never trained on)
R2_SEED = 1_000_003  # their latents come from their own stream, apart from the training draws
INVERSION_SAMPLES = 32  # generated images inverted by optimisation (``inversion_r2``)
INVERSION_STEPS = 300  # Adam steps per latent: enough for R² to level off on the demo's GANs
REFINE_LR = 0.05  # Adam step size for per-image latent refinement
FIGURE4_COLUMNS = 8  # held-out images shown in the Figure 4 grid
PIXEL_CONTROL_RESOLUTION = 64  # the k-NN raw-pixel control never reads larger images
BATCH = 64  # images per forward pass when only inferring
REFINE_BATCH = 16  # images per forward and backward pass when refining latents


def pick_device(config: Config) -> torch.device:
    """``config.train.device`` resolved: "auto" takes CUDA when there is one."""
    wanted = config.train.device
    use_cuda = torch.cuda.is_available() if wanted == "auto" else wanted == "cuda"
    return torch.device("cuda" if use_cuda else "cpu")


def require_run(run_dir: str | Path) -> Path:
    """``run_dir`` if it holds a trained generator, else a RunNotFoundError naming the fix."""
    run_dir = Path(run_dir)
    if not has_generator(run_dir):
        raise RunNotFoundError(
            f"{run_dir} has no trained generator: train it first with `pggan train --out "
            f"{run_dir}` (or papermill notebooks/03_train.md)")
    return run_dir


# ---------------------------------------------------------------------------------------------
# generating, training the encoder, measuring it


@torch.no_grad()
def generate(G: nn.Module, z: Tensor | np.ndarray, resolution: int, alpha: float = 1.0,
             batch: int = BATCH) -> np.ndarray:
    """Images ``(N, C, R, R)`` float32 for latents ``z`` ``(N, latent_dim)``, in batches."""
    device = next(G.parameters()).device
    z = torch.as_tensor(np.asarray(z, dtype=np.float32) if isinstance(z, np.ndarray) else z)
    chunks = [G(z[i:i + batch].to(device), resolution, alpha).float().cpu()
              for i in range(0, len(z), batch)]
    return torch.cat(chunks).numpy()


def train_encoder(G: nn.Module, config: Config, resolution: int, alpha: float = 1.0,
                  iterations: int | None = None, progress: bool = True
                  ) -> tuple[Encoder, list[float]]:
    """Train an Encoder to map ``G``'s images back to the latents that made them.

    Every iteration draws fresh latents z ~ N(0, I), generates a batch and takes one Adam step
    on MSE(E(G(z)), z) (lr and betas ``config.encoder``, eps the GAN's).
    Returns the encoder (eval mode) and the loss of every iteration.
    """
    device = next(G.parameters()).device
    iterations = config.encoder.iterations if iterations is None else iterations
    batch = config.encoder.batch_size
    torch.manual_seed(config.train.seed)
    encoder = Encoder(config.model, G.channels, resolution).to(device)
    t = config.train
    opt = torch.optim.Adam(encoder.parameters(), lr=config.encoder.lr,
                           betas=config.encoder.betas, eps=t.eps)
    losses = []
    for _ in tqdm(range(iterations), desc="encoder", unit="it", disable=not progress):
        z = torch.randn(batch, G.latent_dim, device=device)
        with torch.no_grad():
            images = G(z, resolution, alpha)
        loss = F.mse_loss(encoder(images).float(), z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return encoder.eval().requires_grad_(False), losses


@torch.no_grad()
def encode(encoder: Encoder, images: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """Latents ``(N, latent_dim)`` float32 for images ``(N, C, R, R)`` in [-1, 1]."""
    device = next(encoder.parameters()).device
    out = [encoder(torch.from_numpy(np.ascontiguousarray(images[i:i + batch])).to(device))
           .float().cpu() for i in range(0, len(images), batch)]
    return torch.cat(out).numpy() if out else np.zeros((0, encoder.latent_dim), np.float32)


def latent_r2(encoder: Encoder, G: nn.Module, resolution: int, alpha: float = 1.0,
              n: int = R2_SAMPLES, seed: int = R2_SEED) -> float:
    """R² of predicted vs true latents on ``n`` freshly generated images.

    sklearn's ``r2_score`` with ``multioutput="uniform_average"``: every latent dimension
    counts equally (all have unit variance, so variance weighting would barely differ).
    0 is the score of always predicting the mean latent, i.e. chance.
    """
    z = torch.randn(n, G.latent_dim, generator=torch.Generator().manual_seed(seed))
    # a batch at a time: all n images at once would be 1 GB at 512 px
    predicted = np.concatenate([encode(encoder, generate(G, z[i:i + BATCH], resolution, alpha))
                                for i in range(0, n, BATCH)])
    return float(r2_score(z.numpy(), predicted, multioutput="uniform_average"))


def inversion_r2(G: nn.Module, encoder: Encoder, resolution: int, alpha: float = 1.0,
                 n: int = INVERSION_SAMPLES, steps: int | None = None,
                 seed: int = R2_SEED) -> dict[str, float]:
    """Is a weak encoder R² the encoder's fault or the generator's? Invert ``n`` generated
    images by direct optimisation, starting from the encoder's guess (``refine_latents``).

    If the optimised latents match the true ones far better than the encoder's (R² near 1
    while the image error falls to ~0), the images determine their latents and the encoder is
    what falls short; if the image error falls but R² does not rise, different latents draw
    the same image and no encoder could tell them apart. Returns both R² values and both
    pixel errors. ``steps`` defaults to ``INVERSION_STEPS``.
    """
    steps = INVERSION_STEPS if steps is None else steps
    z = torch.randn(n, G.latent_dim, generator=torch.Generator().manual_seed(seed + 1))
    images = generate(G, z, resolution, alpha)
    guessed = encode(encoder, images)
    optimised = refine_latents(G, guessed, images, resolution, alpha, steps)
    truth = z.numpy()
    return {
        "r2_encoder": float(r2_score(truth, guessed, multioutput="uniform_average")),
        "r2_optimised": float(r2_score(truth, optimised, multioutput="uniform_average")),
        "image_mse_encoder": _mean(reconstruction_mse(images, generate(G, guessed, resolution,
                                                                       alpha))),
        "image_mse_optimised": _mean(reconstruction_mse(images, generate(G, optimised,
                                                                         resolution, alpha))),
        "steps": steps, "samples": n,
    }


# An optimised redraw this much closer to its image than the encoder's counts as "exact".
REDRAW_GAIN = 10.0
# R² above which the images are said to hold their latents (the encoder goal).
HELD_R2 = 0.6


def inversion_verdict(inversion: dict[str, float]) -> str:
    """One sentence reading ``inversion_r2``'s numbers: whose limit a low encoder R² is."""
    enc, opt = inversion["r2_encoder"], inversion["r2_optimised"]
    mse_enc, mse_opt = inversion["image_mse_encoder"], inversion["image_mse_optimised"]
    redrawn = mse_opt * REDRAW_GAIN <= mse_enc
    errors = f"pixel error {mse_enc:.4f} -> {mse_opt:.4f}"
    if opt >= HELD_R2:
        return (f"The images hold their latents (optimisation recovers R² {opt:.2f}, {errors}):"
                f" the encoder, at R² {enc:.2f}, is what falls short.")
    if redrawn:
        return (f"Optimisation redraws the images almost exactly ({errors}) yet recovers only "
                f"R² {opt:.2f} of the latent: the generator draws nearly the same picture from "
                "different latents, so part of z leaves no trace in the image and no encoder "
                f"can recover it. The encoder's R² {enc:.2f} is part of that {opt:.2f}.")
    return (f"Optimisation neither redraws the images ({errors}) nor recovers the latent "
            f"(R² {opt:.2f}): the test is inconclusive at {inversion['steps']} steps.")


def refine_latents(G: nn.Module, z: np.ndarray, images: np.ndarray, resolution: int,
                   alpha: float = 1.0, steps: int = 50, lr: float = REFINE_LR) -> np.ndarray:
    """Improve each latent by ``steps`` Adam steps on the MSE between G(z) and its image.

    The error covers every channel the generator makes, segmentation maps included, so the
    vessel tree (or tumour labels) pulls the latent as much as the photograph does.
    """
    # REFINE_BATCH images at a time: G's activations with gradients bound memory at 512 px.
    # Each latent's steps depend on its own image only (Adam is element-wise, the loss a sum
    # over images, G has no batch statistics), so the chunks change no result.
    return np.concatenate([_refine_chunk(G, z[i:i + REFINE_BATCH], images[i:i + REFINE_BATCH],
                                         resolution, alpha, steps, lr)
                           for i in range(0, len(z), REFINE_BATCH)])


def _refine_chunk(G: nn.Module, z: np.ndarray, images: np.ndarray, resolution: int,
                  alpha: float, steps: int, lr: float) -> np.ndarray:
    device = next(G.parameters()).device
    z = torch.tensor(z, dtype=torch.float32, device=device, requires_grad=True)
    target = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        # summed over images so each image's step size does not depend on the batch size
        loss = F.mse_loss(G(z, resolution, alpha), target, reduction="none").mean(
            dim=(1, 2, 3)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return z.detach().cpu().numpy()


def reconstruction_mse(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Per-image mean squared error over all channels and pixels (values in [-1, 1])."""
    return ((images - reconstructions) ** 2).mean(axis=(1, 2, 3))


# ---------------------------------------------------------------------------------------------
# the whole step for one run folder


def encode_run(run_dir: str | Path, iterations: int | None = None, progress: bool = True,
               reuse: bool = True, precision: str | None = None) -> dict[str, Any]:
    """Train the encoder for a run, measure it, and encode the run's real images.

    With ``reuse``, an ``encoder.pt`` already in the run folder that was trained on this
    generator with these encoder settings (``encoder.json``; a shipped run carries one) is
    loaded instead of trained again; everything else is computed afresh. Generator and encoder
    run in ``precision`` (default: the run's ``train.precision``; see ``precision.py``).

    Writes into ``run_dir``: ``encoder.pt`` (state dict; load with ``weights_only=True``),
    ``encoder.json`` (the returned summary), ``latents.npz`` (every training image's latent,
    manifest index and labels; see ``load_latents``) and
    ``figures/encoder_reconstructions.{png,npz,json}`` (Figure 4: held-out reals, their
    regeneration from the encoder's latent and, with ``refine_steps``, from the refined one).
    """
    run_dir = require_run(run_dir)
    started = time.perf_counter()
    G, info = load_generator(run_dir)
    config: Config = info["config"]
    device = pick_device(config)
    G = G.to(device)
    data = PreparedDataset(run_data_dir(run_dir, config))
    with autocast(precision or config.train.precision, device):
        summary = _encode(run_dir, G, info, data, iterations, progress, reuse)
    summary["precision"] = resolve(precision or config.train.precision, device)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_text_atomic(run_dir / "encoder.json", json.dumps(summary, indent=2))
    return summary


def _encode(run_dir: Path, G: nn.Module, info: dict[str, Any], data: PreparedDataset,
            iterations: int | None, progress: bool, reuse: bool) -> dict[str, Any]:
    """``encode_run``'s work, under its autocast: the summary, without timing."""
    config: Config = info["config"]
    device = next(G.parameters()).device
    resolution, alpha = int(info["resolution"]), float(info["alpha"])
    n_channels = len(info["channels"])
    settings = {**dataclasses.asdict(config.encoder), "generator_step": int(info["step"])}
    if iterations is not None:
        settings["iterations"] = iterations
    previous = _trained_encoder(run_dir, settings) if reuse else None
    if previous is not None:
        encoder, losses = load_encoder(run_dir, device), previous["losses"]
    else:
        encoder, losses = train_encoder(G, config, resolution, alpha, iterations, progress)
        with atomic_file(run_dir / "encoder.pt") as fh:
            torch.save(encoder.state_dict(), fh)
    r2 = latent_r2(encoder, G, resolution, alpha)
    inversion = inversion_r2(G, encoder, resolution, alpha)

    heldout = data.split_indices("heldout")
    steps = config.encoder.refine_steps
    errors: dict[str, list[np.ndarray]] = {"encoder": [], "refined": []}
    heldout_view = data.view(heldout, resolution, n_channels)
    for start in range(0, len(heldout), BATCH):  # a batch at a time: bounded memory at 512 px
        reals = heldout_view[start:start + BATCH]
        z_encoded = encode(encoder, reals)
        from_encoder = generate(G, z_encoded, resolution, alpha)
        errors["encoder"].append(reconstruction_mse(reals, from_encoder))
        from_refined = None
        if steps > 0:
            from_refined = generate(G, refine_latents(G, z_encoded, reals, resolution, alpha,
                                                      steps), resolution, alpha)
            errors["refined"].append(reconstruction_mse(reals, from_refined))
        if start == 0:
            _save_figure4(run_dir, config, reals, from_encoder, from_refined, heldout)
    mse = {name: _mean(np.concatenate(values)) if values else None
           for name, values in errors.items()}

    train_idx = data.split_indices("train")
    train_latents = encode(encoder, data.view(train_idx, resolution, n_channels))
    save_latents(run_dir / "latents.npz", train_latents, data.manifest.iloc[train_idx])

    summary = {
        "r2": r2, "r2_multioutput": "uniform_average", "r2_samples": R2_SAMPLES,
        # the same latents recovered by optimisation from the encoder's guess: how much of z
        # the images hold, whatever the encoder makes of it
        "r2_optimised": inversion["r2_optimised"], "inversion": inversion,
        "settings": settings, "reused": previous is not None,
        "iterations": settings["iterations"], "batch_size": config.encoder.batch_size,
        "lr": config.encoder.lr, "loss_first": losses[0] if losses else None,
        "loss_last": float(np.mean(losses[-10:])) if losses else None,
        "losses": _thin(losses, 200),
        "heldout_images": len(heldout),
        "heldout_mse_encoder": mse["encoder"],
        "refine_steps": steps if mse["refined"] is not None else 0,
        "heldout_mse_refined": mse["refined"],
        "train_images_encoded": len(train_latents), "resolution": resolution, "alpha": alpha,
        "generator_step": int(info["step"]), "generator_ema": bool(info["ema"]),
        "channels": list(info["channels"]), "device": str(device),
    }
    return summary


def _trained_encoder(run_dir: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The saved ``encoder.json`` when ``encoder.pt`` was trained with ``settings``."""
    summary_path = run_dir / "encoder.json"
    if not (run_dir / "encoder.pt").is_file() or not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    return summary if summary.get("settings") == json.loads(json.dumps(settings)) else None


def load_encoder(run_dir: str | Path, map_location: str | torch.device = "cpu") -> Encoder:
    """The run's trained encoder (read with ``weights_only=True``, so the file runs no code)."""
    run_dir = Path(run_dir)
    path = run_dir / "encoder.pt"
    if not path.is_file():
        raise RunNotFoundError(f"{path} is missing: run `pggan encode --run {run_dir}` or "
                               "notebooks/06_encoder.md first")
    _, info = load_generator(run_dir, map_location=map_location)
    encoder = Encoder(info["config"].model, len(info["channels"]), int(info["resolution"]))
    encoder.load_state_dict(torch.load(path, map_location=map_location, weights_only=True))
    return encoder.eval().requires_grad_(False)


def save_latents(path: str | Path, latents: np.ndarray, manifest: pd.DataFrame) -> None:
    """Write ``latents.npz``: ``latents`` (N, D), ``index`` (manifest row index) and one array
    per manifest column, named ``label_<column>`` (strings stored as unicode, no pickles)."""
    arrays = {"latents": latents.astype(np.float32),
              "index": manifest["index"].to_numpy() if "index" in manifest else
              manifest.index.to_numpy()}
    for column in manifest.columns.drop("index", errors="ignore"):
        values = manifest[column].to_numpy()
        arrays[f"label_{column}"] = values.astype(str) if values.dtype == object else values
    with atomic_file(path) as fh:
        np.savez(fh, **arrays)


def load_latents(run_dir: str | Path) -> tuple[np.ndarray, pd.DataFrame]:
    """``latents.npz`` of a run as (latents (N, D), labels table with an ``index`` column)."""
    path = Path(run_dir) / "latents.npz"
    if not path.is_file():
        raise RunNotFoundError(f"{path} is missing: run `pggan encode --run {run_dir}` or "
                               "notebooks/06_encoder.md first")
    with np.load(path, allow_pickle=False) as npz:
        labels = pd.DataFrame({"index": npz["index"],
                               **{k[len("label_"):]: npz[k] for k in npz.files
                                  if k.startswith("label_")}})
        return npz["latents"], labels


def run_data_dir(run_dir: str | Path, config: Config) -> Path:
    """The prepared dataset the run was trained on (``run.json``), else the profile's default
    folder for the data the run records (the phantom's when it records none)."""
    run_info = Path(run_dir) / "run.json"
    source = None
    if run_info.is_file():
        info = json.loads(run_info.read_text())
        recorded = info.get("data_dir")
        if recorded and Path(recorded).is_dir():
            return Path(recorded)
        source = (info.get("data") or {}).get("source")
    folder = prepared_dir(config.data.dataset, config.profile,
                          source=None if source == "phantom" else source)
    if not (folder / "dataset.json").is_file():
        raise DataError(f"{folder}: the prepared dataset of {run_dir} is missing; run "
                        f"`pggan data prepare --dataset {config.data.dataset} --profile "
                        f"{config.profile}` first")
    return folder


def _save_figure4(run_dir: Path, config: Config, reals: np.ndarray, from_encoder: np.ndarray,
                  from_refined: np.ndarray | None, heldout: np.ndarray) -> None:
    """Rows: held-out reals, regenerated from the encoder's latent, [from the refined one]."""
    if len(reals) == 0:
        return
    shown = slice(0, FIGURE4_COLUMNS)
    rows = [reals[shown], from_encoder[shown]]
    rows += [from_refined[shown]] if from_refined is not None else []
    grid = plots.sample_grid(np.concatenate(rows), config.data.dataset, ncols=len(rows[0]),
                             size=max(64, reals.shape[-1]))
    plots.save_figure(grid, run_dir, "encoder_reconstructions", config.profile,
                      config.train.seed, config.data.dataset)
    # the arrays behind the picture, for notebooks that lay it out with titles
    with atomic_file(run_dir / "figures" / "encoder_reconstructions.npz") as fh:
        np.savez_compressed(fh, reals=reals[shown], from_encoder=from_encoder[shown],
                            from_refined=(from_refined[shown] if from_refined is not None
                                          else np.zeros((0,), np.float32)),
                            manifest_index=heldout[shown])


def _thin(values: list[float], keep: int) -> list[float]:
    """At most ``keep`` evenly spaced values (a loss curve for a JSON file, not a log)."""
    if len(values) <= keep:
        return [float(v) for v in values]
    return [float(values[i]) for i in np.linspace(0, len(values) - 1, keep).astype(int)]


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


# ---------------------------------------------------------------------------------------------
# latent-space tools


def tsne_embedding(latents: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE of ``latents`` (sklearn; PCA initialisation, automatic learning rate).

    The perplexity is clipped to (n - 1) / 3 so small sets still embed (sklearn requires it
    below n; a third keeps each point's neighbourhood smaller than the whole set).
    """
    n = len(latents)
    if n < 4:
        raise DataError(f"t-SNE needs at least 4 latents, got {n}: encode more images")
    perplexity = float(min(perplexity, (n - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed)
    return tsne.fit_transform(np.asarray(latents, dtype=np.float64)).astype(np.float32)


def knn_accuracy(latents: np.ndarray, labels: np.ndarray | pd.Series, k: int = 5,
                 folds: int = 5, seed: int = 0) -> dict[str, float]:
    """Cross-validated k-nearest-neighbour accuracy of predicting ``labels`` from latents.

    Returns ``accuracy`` (mean over stratified folds), ``std``, ``chance`` (the majority
    class's share: what always guessing it scores), ``n``, ``k`` and ``folds``. Images of a
    class seen only once are left out (``n`` counts the rest); folds are capped by the rarest
    class's count, k by the smallest training fold.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    # a class seen once cannot be both trained on and tested: leave its image out
    keep = np.isin(labels, classes[counts >= 2])
    latents, labels = np.asarray(latents)[keep], labels[keep]
    classes, counts = classes[counts >= 2], counts[counts >= 2]
    if len(classes) < 2:
        raise DataError(f"k-NN accuracy needs two classes with 2+ images each, got "
                        f"{dict(zip(*np.unique(labels, return_counts=True), strict=True))}")
    folds = int(min(folds, counts.min()))
    k = int(min(k, len(labels) - len(labels) // folds - 1))
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_score(KNeighborsClassifier(k), latents, labels, cv=split)
    return {"accuracy": float(scores.mean()), "std": float(scores.std()),
            "chance": float(counts.max() / counts.sum()), "n": len(labels), "k": k,
            "folds": folds}


def knn_correlation(latents: np.ndarray, values: np.ndarray | pd.Series, k: int = 5,
                    folds: int = 5, seed: int = 0) -> dict[str, float]:
    """How well a continuous label (e.g. slice position) follows from latent neighbours.

    Each image's value is predicted as the mean of its k nearest latents in the other folds;
    returns the Spearman correlation and R² of prediction vs truth (0 is chance for both).
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 4:
        raise DataError(f"k-NN correlation needs at least 4 latents, got {len(values)}")
    folds = int(min(folds, len(values) // 2))
    k = int(min(k, len(values) - len(values) // folds - 1))
    predicted = cross_val_predict(KNeighborsRegressor(k), latents, values,
                                  cv=KFold(folds, shuffle=True, random_state=seed))
    return {"spearman": float(spearmanr(values, predicted).statistic),
            "r2": float(r2_score(values, predicted)), "n": len(values), "k": k, "folds": folds}


def slerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation from ``z0`` (t = 0) to ``z1`` (t = 1); ``(len(t), D)``.

    The great circle keeps latents at a typical length, where a straight line would pass
    through the low-norm middle that Gaussian latents rarely visit (White 2016). Lengths are
    interpolated linearly; nearly parallel endpoints fall back to a straight line.
    """
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))[:, None]
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    cos = np.clip(z0 @ z1 / (n0 * n1), -1.0, 1.0)
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:
        return ((1 - t) * z0 + t * z1).astype(np.float32)
    u0, u1 = z0 / n0, z1 / n1
    direction = (np.sin((1 - t) * omega) * u0 + np.sin(t * omega) * u1) / np.sin(omega)
    return (direction * ((1 - t) * n0 + t * n1)).astype(np.float32)


def principal_directions(latents: np.ndarray, n: int = 3) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """The mean latent, the top ``n`` principal directions (unit rows) and their std devs."""
    pca = PCA(n_components=min(n, *latents.shape)).fit(latents)
    return (pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
            np.sqrt(pca.explained_variance_).astype(np.float32))


def path_by_value(latents: np.ndarray, values: np.ndarray, n_steps: int = 8
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Latents along a label's range: the mean latent of each of ``n_steps`` quantile bins.

    E.g. BraTS slice position, low to high: generating these walks through the brain. A mean
    of latents is shorter than its members, which does not matter to a generator that
    pixel-normalises its input. Returns (bin centre values, latents (n_steps, D)).
    """
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    bins = [b for b in np.array_split(order, min(n_steps, len(values))) if len(b)]
    centres = np.array([values[b].mean() for b in bins])
    return centres, np.stack([latents[b].mean(axis=0) for b in bins]).astype(np.float32)


def knn_scores(dataset: str, latents: np.ndarray, labels: pd.DataFrame,
               pixels: np.ndarray) -> dict[str, dict[str, float]]:
    """Each label predicted from its 5 nearest latents, and the control on raw pixels.

    ROP: laterality and (where labelled) plus severity (accuracy vs chance). BraTS: tumour
    presence (accuracy) and slice position (Spearman). A label of one class only gets the
    reason instead of an accuracy. The last row predicts the label Figure 5 is coloured by
    (laterality, slice position) from the nearest raw images (``pixels``, one row per image)
    instead: a latent space where that label is "primary" should do at least as well as the
    pixels, with 128 numbers instead of thousands.
    """
    if dataset == "rop":
        scores = {"laterality (OD/OS)": _knn_or_why_not(latents, labels["laterality"])}
        if "plus_severity" in labels:  # a phantom's label; a user's folder may not have it
            scores["plus severity"] = _knn_or_why_not(latents, labels["plus_severity"])
        scores["laterality, on raw pixels (control)"] = _knn_or_why_not(pixels,
                                                                        labels["laterality"])
        return scores
    return {"tumour present": _knn_or_why_not(latents, labels["tumour_present"]),
            "slice position": knn_correlation(latents, labels["slice_position"]),
            "slice_position, on raw pixels (control)": knn_correlation(
                pixels, labels["slice_position"])}


def _knn_or_why_not(latents: np.ndarray, labels: pd.Series) -> dict[str, Any]:
    """``knn_accuracy``, or None with the reason when the images carry a single class (a
    user's folder of one eye only, or of slices that all show tumour)."""
    try:
        return knn_accuracy(latents, labels)
    except DataError as err:
        return {"accuracy": None, "chance": None, "why_not": str(err)}


def headline_scores(dataset: str, scores: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The numbers of ``knn_scores`` behind Figure 5, flat, for ``latent_space.json`` and the
    claims table.

    ROP: laterality accuracy (the paper's "right eye / left eye distinction is primary") and
    its chance level. BraTS: tumour-presence accuracy and the Spearman correlation of the
    slice position predicted from latent neighbours (the "traverse through the axial slices").
    """
    if dataset == "rop":
        knn, name = scores["laterality (OD/OS)"], "laterality"
        out = {"knn_laterality_accuracy": knn["accuracy"], "knn_laterality_chance": knn["chance"]}
    else:
        knn, name = scores["tumour present"], "tumour"
        out = {"knn_tumour_accuracy": knn["accuracy"], "knn_tumour_chance": knn["chance"],
               "knn_slice_position_spearman": scores["slice position"]["spearman"]}
    if knn.get("why_not"):  # the claims table prints the reason instead of a number
        out[f"knn_{name}_accuracy_missing"] = knn["why_not"]
    return out


def score_latent_space(run_dir: str | Path) -> dict[str, Any]:
    """The k-NN numbers behind Figure 5 for a run whose latents are encoded
    (``pggan encode``): ``knn_scores`` with its raw-pixel control, flattened by
    ``headline_scores``; written to ``latent_space.json`` and returned (``details`` holds
    every row).
    """
    run_dir = Path(run_dir)
    latents, labels = load_latents(run_dir)
    _, info = load_generator(run_dir)
    config: Config = info["config"]
    data = PreparedDataset(run_data_dir(run_dir, config))
    # the raw-pixel control at <= 64 px: it is about layout (which side the disc is on, the
    # slice level), and 512 px images of a whole training set would not fit in memory
    pixels = data.batch(labels["index"].to_numpy(), min(int(info["resolution"]),
                                                        PIXEL_CONTROL_RESOLUTION))
    pixels = pixels[:, :len(info["channels"])].reshape(len(pixels), -1)
    scores = knn_scores(config.data.dataset, latents, labels, pixels)
    result = {**headline_scores(config.data.dataset, scores), "details": scores}
    write_text_atomic(run_dir / "latent_space.json", json.dumps(result, indent=2))
    return result


def walk_path(dataset: str, latents: np.ndarray, labels: pd.DataFrame, n_steps: int = 8
              ) -> tuple[np.ndarray, list[str]]:
    """Latents to generate for a walk through the latent space, and a caption per step.

    BraTS: the mean latent of each of ``n_steps`` slice-position groups, bottom to top (the
    paper's "traverse through the axial slices"). ROP: the great circle from the mean right-eye
    latent to the mean left-eye latent.
    """
    if dataset == "brats":
        centres, path = path_by_value(latents, labels["slice_position"], n_steps)
        return path, [f"{c:.2f}" for c in centres]
    by_eye = {eye: latents[(labels["laterality"] == eye).to_numpy()].mean(axis=0)
              for eye in ("OD", "OS")}
    t = np.linspace(0, 1, n_steps)
    return slerp(by_eye["OD"], by_eye["OS"], t), [f"{v:.2f}" for v in t]
