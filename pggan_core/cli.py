"""The ``pggan`` command: thin wiring over the library, one subcommand per step.

    pggan config show [--profile P] [--dataset rop|brats]
    pggan data prepare --dataset rop|brats [--source PATH] [--n N] [--resolution R]
                       [--seed S] [--profile P] --out DIR
    pggan vessels train [--profile P] [--source DIR] [--out FILE]
    pggan vessels segment --model FILE IMAGE [IMAGE ...] --out DIR
    pggan train --data DIR --profile P [--no-segmentation] [--seed S] [--threads N]
                [--precision auto|fp32|bf16] --out RUN [--resume]
    pggan encode --run RUN [--iterations N] [--threads N] [--precision P]
    pggan latent --run RUN
    pggan evaluate --run RUN [--seed S] [--precision P]
    pggan generate --run RUN [--n N] [--seed S] --out DIR
    pggan augment-study --dataset rop|brats [--profile P] [--source DIR] [--seed S]
                        [--set augment.KEY=VALUE] [--lanes N]
    pggan ablation-seeds --dataset rop|brats [--profile P] [--seeds 0 1 2]
    pggan book [--profile P] [--source rop=DIR] [--source brats=DIR] [--train]
               [--augmentation] [--check]
    pggan weights train-and-export [--profile P]
    pggan weights ship-results [--profile P]

Where a command builds a configuration from ``--profile P`` (config show, data prepare,
vessels train, train) it also takes ``--overlay NAME`` (e.g. ``authors``: the authors' code's
settings) and ``--set SECTION.KEY=VALUE`` (a YAML value, e.g. ``--set train.lr=3e-4``), both
repeatable and applied in that order after the profile (``pggan_core.config``'s layers).

User errors (a missing file, a bad value) print one line, ``error: ...``, and exit with 2.
``pggan train`` stopped by SIGINT or SIGTERM saves a checkpoint, prints the command that
resumes it and exits with 130 or 143.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pggan_core.config import (
    DATASETS,
    OVERLAYS,
    PROFILES,
    check_resolution,
    load_config,
    parse_set_items,
    seed_overrides,
)
from pggan_core.errors import ConfigError, PgganError, TrainingInterrupted
from pggan_core.settings import Config


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pggan`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except TrainingInterrupted as err:  # not an error: the message says how to go on
        print(err, file=sys.stderr)
        return err.exit_status
    except PgganError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was kept", file=sys.stderr)
        return 130
    return 0


def _config(args: argparse.Namespace, dataset: str, **data: object) -> Config:
    overrides: dict[str, dict[str, object]] = {"data": {k: v for k, v in data.items()
                                                        if v is not None}}
    if getattr(args, "seed", None) is not None:
        # the vessel U-Net's own seed for `pggan vessels train`, a run's for the rest
        seeded = ({"vessels": {"seed": args.seed}} if args.func is _vessels_train
                  else seed_overrides(args.seed))
        for section, values in seeded.items():
            overrides.setdefault(section, {}).update(values)
    if getattr(args, "precision", None) is not None:
        overrides.setdefault("train", {})["precision"] = args.precision
    # --set comes last: the config module's outermost layer
    for section, values in parse_set_items(args.set_items).items():
        overrides.setdefault(section, {}).update(values)
    return load_config(args.profile, dataset, overrides, overlays=tuple(args.overlays))


def _named_profile_only(args: argparse.Namespace, command: str) -> None:
    """ConfigError when ``--set`` or ``--overlay`` is given to a command that works on a
    built-in profile by name (its shipped runs and folders are keyed by that name)."""
    if args.set_items or args.overlays:
        raise ConfigError(f"{command} works on a built-in profile by name ({', '.join(PROFILES)})"
                          " and cannot apply --set or --overlay; use them with `pggan data "
                          "prepare` and `pggan train` instead")


def _config_show(args: argparse.Namespace) -> None:
    import yaml

    config = _config(args, args.dataset)
    print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")


def _data_prepare(args: argparse.Namespace) -> None:
    from pggan_core.data.prepare import prepare_dataset

    if args.resolution is not None:
        check_resolution(args.resolution, "--resolution")
    config = _config(args, args.dataset, resolution=args.resolution, n_images=args.n)
    out = prepare_dataset(config, args.out, source=args.source, n_images=args.n)
    print(f"prepared {config.data.dataset} -> {out}")


def _vessels_train(args: argparse.Namespace) -> None:
    from pggan_core.paths import vessel_model_path
    from pggan_core.segmentation.vessels import train_vessel_unet

    config = _config(args, "rop")
    out = Path(args.out) if args.out else vessel_model_path(config.profile)
    result = train_vessel_unet(config, out, source=args.source)
    print(f"vessel U-Net -> {out} (held-out AUC {result['auc']:.4f})")


def _vessels_segment(args: argparse.Namespace) -> None:
    import cv2
    import numpy as np

    from pggan_core.data.loaders import find_fundus_images, load_fundus
    from pggan_core.segmentation.vessels import load_vessel_unet

    segmenter = load_vessel_unet(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in args.images:
        for record in find_fundus_images(path):
            fundus = load_fundus(record, args.size)
            prob = segmenter.segment(fundus.rgb, fundus.fov)
            target = out / f"{Path(record.image_path).stem}_vessels.png"
            cv2.imwrite(str(target), np.rint(prob * 255).astype(np.uint8))
            print(f"{record.image_path} -> {target}")


def _train(args: argparse.Namespace) -> None:
    from pggan_core.data.store import PreparedDataset
    from pggan_core.training.trainer import train

    _set_threads(args.threads)
    dataset = PreparedDataset(args.data).dataset
    config = _config(args, dataset)
    run = train(config, Path(args.data), Path(args.out),
                with_segmentation=not args.no_segmentation, resume=args.resume)
    print(f"run -> {run}")


def _encode(args: argparse.Namespace) -> None:
    from pggan_core.latent.encoder import encode_run

    _set_threads(args.threads)
    result = encode_run(Path(args.run), iterations=args.iterations, precision=args.precision)
    print(f"encoder R2 {result['r2']:.3f} on held-out generated images -> "
          f"{Path(args.run) / 'encoder.pt'}, {Path(args.run) / 'latents.npz'}")


def _invert(args: argparse.Namespace) -> None:
    from pggan_core.latent.indomain import INVERSION_FILE, invert_run

    _set_threads(args.threads)
    result = invert_run(Path(args.run))
    print(f"in-domain encoder: R2 {result['r2']:.3f} on held-out generated images; held-out "
          f"retrieval {result['reconstruction_retrieval']['indomain']:.3f} "
          f"({result['reconstruction_retrieval']['indomain_refined']:.3f} refined) -> "
          f"{Path(args.run) / INVERSION_FILE}")


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _latent(args: argparse.Namespace) -> None:
    from pggan_core.latent.space import LATENT_SOURCES, score_latent_space

    result = score_latent_space(Path(args.run), encoder=args.encoder)
    for name, row in result["details"].items():
        value = row.get("accuracy", row.get("spearman"))
        if value is None:  # a score that cannot exist here says why
            print(f"{name}: {row.get('why_not', 'not computed')}")
            continue
        chance = f" (chance {row['chance']:.3f})" if "chance" in row else ""
        method = "" if "probe" in name else "k-NN "
        print(f"{method}{name}: {value:.3f}{chance}")
    print(f"-> {Path(args.run) / LATENT_SOURCES[args.encoder][1]}")


def _evaluate(args: argparse.Namespace) -> None:
    from pggan_core.evaluation.evaluate import evaluate_run

    evaluate_run(args.run, seed=args.seed, precision=args.precision)
    print(f"-> {Path(args.run) / 'metrics.json'}")


def _generate(args: argparse.Namespace) -> None:
    from pggan_core.export import write_samples
    from pggan_core.training.checkpoint import load_generator

    G, info = load_generator(args.run)
    manifest = write_samples(G, info, Path(args.run), Path(args.out), args.n, args.seed,
                             args.format)
    print(f"{args.n} samples ({info['resolution']} px, channels {info['channels']}) -> "
          f"{manifest.parent} (list: {manifest.name})")


def _ablation_seeds(args: argparse.Namespace) -> None:
    from pggan_core.evaluation.ablation import SEEDS_FILE, replicated_ablation, seeds_table

    result = replicated_ablation(args.dataset, args.profile, tuple(args.seeds))
    print(seeds_table(result).to_string())
    print(result["conclusion"])
    print(f"-> {SEEDS_FILE} beside the seed-{args.seeds[0]} run with segmentation")


def _install_shipped_run(dataset: str, profile: str, seed: int) -> None:
    """Install the run with segmentation that ``profile`` ships for (dataset, seed), if it
    ships one for its current settings; a run trained here is left as it is."""
    from pggan_core.runs import shipped
    from pggan_core.runs.folder import RunSpec
    from pggan_core.runs.reuse import ensure_run

    spec = RunSpec(dataset, profile, seed=seed)
    if shipped.ships(profile, dataset, spec.folder().name, spec.config()):
        ensure_run(dataset, profile, seed=seed)


def _augment_study(args: argparse.Namespace) -> None:
    from pggan_core.augmentation.study import RESULT_FILE, run_augmentation_study
    from pggan_core.segmentation.segmenters import METRIC_NAMES

    if args.overlays:
        raise ConfigError("pggan augment-study reads the run trained with a built-in profile "
                          "and cannot apply --overlay; use --set augment.KEY=VALUE for the "
                          "study's own settings")
    settings = parse_set_items(args.set_items)
    if set(settings) - {"augment"}:
        raise ConfigError("pggan augment-study takes --set for the augment section only (e.g. "
                          "--set augment.iterations=1000): the other sections describe the "
                          "trained run it reads")
    if args.source is None:  # the profile's shipped run, installed when there is one
        _install_shipped_run(args.dataset, args.profile, args.seed)
    result = run_augmentation_study(args.dataset, args.profile, seed=args.seed,
                                    source=args.source, augment=settings.get("augment"),
                                    lanes=args.lanes)
    metric = result["metrics"][0]
    print(f"{METRIC_NAMES[metric]} on {result['real']['test']} (mean ± sd over "
          f"{result['settings']['seeds']} seeds):")
    for entry in result["summary"]:
        print(f"  {entry['arm']:<17} k={entry['k']:<4} {entry[f'{metric}_mean']:.3f} ± "
              f"{entry[f'{metric}_sd']:.3f}")
    print(f"-> {Path(result['gan']['run']) / RESULT_FILE}")


def _book(args: argparse.Namespace) -> None:
    from pggan_book.build import build_book, parse_sources

    _named_profile_only(args, "pggan book")
    html = build_book(profile=args.profile, check=args.check, train_here=args.train,
                      sources=parse_sources(args.source), augmentation=args.augmentation)
    print(f"book -> {html / 'index.html'}")


def _weights_train_and_export(args: argparse.Namespace) -> None:
    from pggan_book.shipping import train_and_export
    from pggan_core.runs.shipped import pretrained_dir

    _named_profile_only(args, "pggan weights train-and-export")
    manifest = train_and_export(args.profile, lanes=args.lanes)
    for key, entry in manifest["runs"].items():
        print(f"{key}: {entry['train_seconds']:.0f} s of training, {entry['images_seen']} "
              f"images seen")
    print(f"-> {pretrained_dir(args.profile) / 'manifest.json'}")


def _weights_ship_results(args: argparse.Namespace) -> None:
    from pggan_book.shipping import ship_current_results
    from pggan_core.runs.shipped import pretrained_dir

    _named_profile_only(args, "pggan weights ship-results")
    for name in ship_current_results(args.profile):
        print(f"shipped {name}")
    print(f"-> {pretrained_dir(args.profile) / 'manifest.json'}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pggan", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers()

    def profile_arg(p: argparse.ArgumentParser, default: str = "demo") -> None:
        p.add_argument("--profile", default=default,
                       help=f"{' | '.join(PROFILES)} or a YAML file, which may say "
                            f"`extends: <profile>` (default {default})")
        p.add_argument("--overlay", dest="overlays", action="append", default=[],
                       metavar="NAME",
                       help=f"apply an overlay after the profile: {' | '.join(OVERLAYS)} or a "
                            "YAML file (repeatable)")
        p.add_argument("--set", dest="set_items", action="append", default=[],
                       metavar="SECTION.KEY=VALUE",
                       help="override one config value, read as YAML, after the profile and "
                            "overlays, e.g. --set train.lr=3e-4 (repeatable)")

    def precision_arg(p: argparse.ArgumentParser, default: str = "the profile's") -> None:
        p.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                       help=f"auto: bf16 autocast on CUDA, fp32 on CPU; bf16 on a CPU runs the "
                            f"GPU path's dtype seams (default: {default})")

    cfg = sub.add_parser("config", help="the configuration system").add_subparsers()
    show = cfg.add_parser("show", help="print the resolved configuration as YAML")
    show.add_argument("--dataset", choices=DATASETS, default="rop")
    profile_arg(show)
    show.set_defaults(func=_config_show)

    data = sub.add_parser("data", help="prepare datasets").add_subparsers()
    prep = data.add_parser("prepare", help="phantom or real data -> a prepared dataset folder")
    prep.add_argument("--dataset", required=True, help="rop | brats")
    prep.add_argument("--source", help="a fundus folder or a BraTS folder (default: phantom)")
    prep.add_argument("--n", type=int, help="number of images (slices for brats)")
    prep.add_argument("--resolution", type=int, help="largest stored resolution (4..512)")
    prep.add_argument("--seed", type=int)
    prep.add_argument("--out", required=True)
    profile_arg(prep)
    prep.set_defaults(func=_data_prepare)

    vessels = sub.add_parser("vessels", help="the vessel U-Net").add_subparsers()
    vtrain = vessels.add_parser("train", help="train on phantoms (or --source with masks)")
    vtrain.add_argument("--source")
    vtrain.add_argument("--out", help="model file (default runs/vessels/<profile>/)")
    vtrain.add_argument("--seed", type=int)
    profile_arg(vtrain)
    vtrain.set_defaults(func=_vessels_train)
    vseg = vessels.add_parser("segment", help="vessel probability maps for fundus images")
    vseg.add_argument("images", nargs="+", help="image files or folders")
    vseg.add_argument("--model", required=True)
    vseg.add_argument("--size", type=int, default=512)
    vseg.add_argument("--out", required=True)
    vseg.set_defaults(func=_vessels_segment)

    tr = sub.add_parser("train", help="train a progressive GAN on a prepared dataset")
    tr.add_argument("--data", required=True)
    tr.add_argument("--out", required=True)
    tr.add_argument("--no-segmentation", action="store_true",
                    help="drop the segmentation channels (the paper's Figure 3, row A)")
    tr.add_argument("--resume", action="store_true")
    tr.add_argument("--seed", type=int)
    tr.add_argument("--threads", type=int, help="CPU threads (default: torch's, all cores)")
    precision_arg(tr)
    profile_arg(tr)
    tr.set_defaults(func=_train)

    enc = sub.add_parser("encode", help="train the latent encoder; encode the training set")
    enc.add_argument("--run", required=True)
    enc.add_argument("--iterations", type=int)
    enc.add_argument("--threads", type=int, help="CPU threads (default: torch's, all cores)")
    precision_arg(enc, "the run's train.precision")
    enc.set_defaults(func=_encode)

    inv = sub.add_parser("invert", help="the in-domain encoder beside the paper's (after "
                         "`pggan encode`) -> RUN/inversion.json, RUN/latents_indomain.npz")
    inv.add_argument("--run", required=True)
    inv.add_argument("--threads", type=int, help="CPU threads (default: torch's, all cores)")
    inv.set_defaults(func=_invert)

    lat = sub.add_parser("latent", help="k-NN scores of the encoded latents (Figure 5's numbers)"
                         " -> RUN/latent_space.json")
    lat.add_argument("--run", required=True)
    lat.add_argument("--encoder", choices=("paper", "indomain"), default="paper",
                     help="whose latents: the paper's encoder or `pggan invert`'s "
                          "(-> RUN/latent_space_indomain.json)")
    lat.set_defaults(func=_latent)

    ev = sub.add_parser("evaluate", help="SWD, MS-SSIM, vessel AUC, ... -> RUN/metrics.json")
    ev.add_argument("--run", required=True)
    ev.add_argument("--seed", type=int, default=0)
    precision_arg(ev, "the run's train.precision")
    ev.set_defaults(func=_evaluate)

    gen = sub.add_parser("generate", help="images from a trained run (EMA generator)")
    gen.add_argument("--run", required=True)
    gen.add_argument("--n", type=int, default=64)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True)
    gen.add_argument("--format", choices=["png", "nifti", "npy"],
                     help="png: fundus photograph + vessel map per sample (rop default); "
                          "nifti: BraTS-named t1/t1ce/t2/flair/seg volumes (brats default); "
                          "npy: one array")
    gen.set_defaults(func=_generate)

    aug = sub.add_parser("augment-study", help="segmenters trained on real, real + synthetic "
                         "and synthetic labelled pairs, scored on held-out real images -> "
                         "RUN/augmentation.json")
    aug.add_argument("--dataset", choices=DATASETS, required=True)
    aug.add_argument("--source", help="the folder the run was trained on (default: phantom)")
    aug.add_argument("--seed", type=int, default=0, help="the run's data and training seed")
    aug.add_argument("--lanes", type=int,
                     help="segmenters trained at a time (default: one per core)")
    profile_arg(aug)
    aug.set_defaults(func=_augment_study)

    seeds = sub.add_parser("ablation-seeds", help="Figure 3 over training seeds: each seed's "
                           "pair of runs (with and without segmentation, `pggan train --seed "
                           "S`) compared, verdicts from the spread between seeds -> "
                           "RUN/ablation_seeds.json")
    seeds.add_argument("--dataset", choices=DATASETS, required=True)
    seeds.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    profile_arg(seeds)
    seeds.set_defaults(func=_ablation_seeds)

    book = sub.add_parser("book", help="execute every notebook and build the Jupyter Book")
    book.add_argument("--check", action="store_true", help="check the pages in Chromium")
    book.add_argument("--source", action="append", default=[], metavar="DATASET=DIR",
                      help="build the dataset's chapters on your folder instead of its "
                           "phantom, e.g. --source rop=~/data/DRIVE (repeat for brats)")
    book.add_argument("--train", action="store_true",
                      help="train every GAN in this build instead of using the shipped runs")
    book.add_argument("--augmentation", action="store_true",
                      help="run the augmentation study in this build (demo: about 50 min on "
                           "2 cores) instead of showing an earlier `pggan augment-study`'s")
    profile_arg(book)
    book.set_defaults(func=_book)

    weights = sub.add_parser("weights", help="the runs shipped in data/pretrained/")
    weights = weights.add_subparsers()
    export = weights.add_parser(
        "train-and-export", help="train the book's four runs with `pggan train` and ship them "
        "(data/pretrained/<profile>: weights, logs, manifest with sha256)")
    export.add_argument("--lanes", type=int, default=2, help="trainings at a time (default 2)")
    profile_arg(export)
    export.set_defaults(func=_weights_train_and_export)
    ship = weights.add_parser(
        "ship-results", help="ship the installed runs' encoders and augmentation studies "
        "(each checked against the run it was made from) beside the shipped weights")
    profile_arg(ship)
    ship.set_defaults(func=_weights_ship_results)
    return parser


if __name__ == "__main__":
    sys.exit(main())
