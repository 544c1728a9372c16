"""The words every page shows about itself: the provenance banner and the data it shows.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pggan_core.datasets import dataset_spec, hook
from pggan_core.provenance import provenance
from pggan_core.runs.folder import RunSpec, recorded_data
from pggan_core.runs.shipped import NOTE_WIDTH, pretrained_note


def say(*texts: str) -> None:
    """Print each line of ``texts`` wrapped to what a code cell's output shows unscrolled
    (``NOTE_WIDTH``), a wrapped line's continuation indented."""
    for text in texts:
        for line in str(text).splitlines() or [""]:
            print(textwrap.fill(line, NOTE_WIDTH, subsequent_indent="  ",
                                break_long_words=False, break_on_hyphens=False) or "")


def provenance_banner(profile: str, seed: int, dataset: str | None = None,
                      source: str | Path | None = None) -> str:
    """A line for the top of a page or a notebook's output, e.g.
    ``dataset rop · profile demo · seed 0 · commit 1a2b3c4 · built 2026-01-01 12:00 UTC`` (two
    when it would not fit the output's width), the data the page shows (``data_caption``), and
    a paragraph when the dataset's run is a shipped one (``pretrained.pretrained_note``)."""
    facts = provenance(profile, seed)
    parts = [f"dataset {dataset}"] if dataset else []
    parts += [f"profile {facts['profile']}", f"seed {facts['seed']}",
              f"commit {facts['commit']}", f"built {facts['built']}"]
    lines = [parts[0]]
    for part in parts[1:]:  # as many facts per line as a code cell's output shows unscrolled
        if len(lines[-1]) + 3 + len(part) <= NOTE_WIDTH:
            lines[-1] += f" · {part}"
        else:
            lines.append(part)
    if dataset:
        lines.append(textwrap.fill(f"data: {data_caption(dataset, profile, source, seed=seed)}",
                                   NOTE_WIDTH, break_long_words=False, break_on_hyphens=False,
                                   subsequent_indent="  "))
    note = (pretrained_note(RunSpec(dataset, profile, seed=seed, source=source).folder())
            if dataset else None)
    return "\n".join(lines) + (f"\nGAN {note}" if note else "")


def data_record(dataset: str, profile: str, source: str | Path | None = None,
                root: Path | None = None, seed: int = 0) -> dict[str, Any] | None:
    """What the book's (dataset, profile, seed) run on ``source`` was trained on (its
    ``run.json``), or the prepared dataset's record before there is a run; None when neither
    exists yet."""
    from pggan_core.data.store import PreparedDataset

    spec = RunSpec(dataset, profile, seed=seed, source=source)
    recorded = recorded_data(spec.folder(root))
    if recorded:
        return recorded
    prepared = spec.data_folder(root)
    return PreparedDataset(prepared).data_record() if (prepared / "dataset.json").is_file() \
        else None


def data_caption(dataset: str, profile: str, source: str | Path | None = None,
                 root: Path | None = None, seed: int = 0) -> str:
    """The data a page shows, in words: the built-in phantom or the user's folder (its name,
    path and image count) and where its vessel maps or tumour labels come from."""
    record = data_record(dataset, profile, source, root, seed)
    what = data_short(dataset, source) + ("" if source is None else f" ({source})")
    if record is None:
        return f"{what}, not prepared yet"
    spec = dataset_spec(dataset)
    return (f"{what}: {record['n_images']} {spec.unit}, "
            f"{hook(spec.label_origin)(record)}")


def data_short(dataset: str, source: str | Path | None = None) -> str:
    """A few words for a figure title: ``the built-in fundus phantom`` or ``your folder
    DRIVE``."""
    if source is None:
        return f"the built-in {dataset_spec(dataset).phantom}"
    return f"your folder {Path(source).name}"


def data_summary(datasets: Sequence[str], sources: dict[str, str]) -> str:
    """The book-wide banner's words for its data, e.g. ``ROP: your folder DRIVE · BraTS: the
    built-in brain phantom``."""
    if not sources:
        return "built-in phantoms"
    return " · ".join(f"{dataset_spec(d).short}: {data_short(d, sources.get(d))}" for d in datasets)
