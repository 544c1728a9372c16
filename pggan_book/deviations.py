"""Where one profile departs from another, generated from the resolved configurations: the
method page's table of the demo's deviations from the paper (``book/method.md``).

Every key whose resolved value differs is listed, grouped by config section, with each
profile's value as it is trained (per-resolution tables over the resolutions trained, the
schedule's fade and stable iterations as ``build_phases`` lays them out), the comment that
cites the paper profile's value (``paper.yaml`` quotes the paper, or names NVIDIA's PGGAN
where the paper is silent) and the comment that gives the other profile's reason. Nothing is
typed by hand, so the table cannot disagree with the profiles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pggan_book.facts import per_resolution_text, phase_iterations
from pggan_core.config import DATASETS, PROFILES_DIR, load_config
from pggan_core.datasets import dataset_spec
from pggan_core.settings import SECTIONS, Config

# keys the schedule's phases replace: the scalars are defaults that ``schedule.iterations``
# overrides per resolution, so the table shows what the phases train instead
PHASE_ROWS = {"fade iterations": "fade", "stable iterations": "stable"}
REPLACED_BY_PHASES = ("schedule.fade_iterations", "schedule.stable_iterations",
                      "schedule.iterations")
# where the comments of a phase row are found
PHASE_COMMENT_KEYS = {"fade iterations": ("schedule.fade_iterations", "schedule.iterations"),
                      "stable iterations": ("schedule.stable_iterations", "schedule.iterations")}
NOT_STATED = "not stated in the paper: this project's value at paper scale"
NO_REASON = "—"  # the profile file gives no reason

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_]\w*):(?P<rest>.*)$")


def key_comments(path: Path) -> dict[str, dict[str, str]]:
    """The comments of a profile file, by block (``common``, ``rop``, ``brats``) and
    ``"section.key"``: the full-line comments just above a key and its inline comment."""
    comments: dict[str, dict[str, str]] = {}
    block = section = ""
    pending: list[str] = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if line.startswith("    "):  # a comment at key level belongs to the next key
                pending.append(stripped.lstrip("#").strip())
            continue
        match = _KEY_LINE.match(line)
        if not match:  # a value's continuation line, or a blank one
            pending = [] if not stripped else pending
            continue
        indent, key = len(match["indent"]), match["key"]
        inline = match["rest"].split(" #", 1)[1].strip() if " #" in match["rest"] else ""
        if indent == 0:
            block, section = key, ""
        elif indent == 2:
            section = key
        elif section:
            text = " ".join([*pending, inline]).strip()
            if text:
                comments.setdefault(block, {})[f"{section}.{key}"] = text
        pending = []
    return comments


def _comment(comments: dict[str, dict[str, str]], dataset: str, keys: Sequence[str]) -> str:
    """The first comment on any of ``keys``, the dataset's block before ``common``."""
    for key in keys:
        for block in (dataset, "common"):
            if key in comments.get(block, {}):
                return comments[block][key]
    return ""


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def trained_settings(config: Config) -> dict[str, dict[str, tuple[Any, str]]]:
    """Every setting of ``config`` by section, as (comparable value, text): per-resolution
    tables restricted to the resolutions trained, and the schedule's fade and stable
    iterations as the phases train them in place of ``REPLACED_BY_PHASES``."""
    top = config.schedule.max_resolution
    settings: dict[str, dict[str, tuple[Any, str]]] = {}
    for section, values in config.to_dict().items():
        if section not in SECTIONS:
            continue
        rows: dict[str, tuple[Any, str]] = {}
        for key, value in values.items():
            if f"{section}.{key}" in REPLACED_BY_PHASES:
                continue
            if isinstance(value, dict) and all(isinstance(r, int) for r in value):
                value = {r: v for r, v in value.items() if r <= top}
                rows[key] = (value, per_resolution_text(value))
            else:
                rows[key] = (value, _text(value))
        if section == "schedule":
            for row, kind in PHASE_ROWS.items():
                phases = phase_iterations(config, kind)
                rows[row] = (phases, per_resolution_text(phases))
        settings[section] = rows
    return settings


def _differs(a: Any, b: Any) -> bool:
    """Whether two trained values differ; per-resolution tables only where both train."""
    if isinstance(a, dict) and isinstance(b, dict) and a and b \
            and all(isinstance(r, int) for r in [*a, *b]):
        shared = set(a) & set(b)
        return not shared or any(a[r] != b[r] for r in shared)
    return a != b


def deviation_table(base: str = "paper", other: str = "demo",
                    datasets: Sequence[str] = DATASETS):
    """One row per setting in which ``other`` departs from ``base`` for any of ``datasets``,
    grouped by section: both values (per dataset where the datasets differ), the comment in
    ``base``'s profile file that cites its value (the paper, or NVIDIA's PGGAN where the
    paper is silent) and the one in ``other``'s that gives its reason."""
    import pandas as pd

    files = {p: PROFILES_DIR / f"{p}.yaml" for p in (base, other)}
    comments = {p: key_comments(path) if path.is_file() else {} for p, path in files.items()}
    resolved = {(p, d): trained_settings(load_config(p, d)) for p in (base, other)
                for d in datasets}
    rows = []
    for section in SECTIONS:
        keys = dict.fromkeys(k for d in datasets for k in resolved[(base, d)][section])
        for key in keys:
            pairs = {d: (resolved[(base, d)][section][key], resolved[(other, d)][section][key])
                     for d in datasets}
            if not any(_differs(a[0], b[0]) for a, b in pairs.values()):
                continue
            comment_keys = PHASE_COMMENT_KEYS.get(key, (f"{section}.{key}",))
            rows.append({
                "section": section,
                "setting": key,
                base: _per_dataset({d: a[1] for d, (a, _) in pairs.items()}),
                other: _per_dataset({d: b[1] for d, (_, b) in pairs.items()}),
                f"source of the {base} value ({base}.yaml)": _per_dataset(
                    {d: _comment(comments[base], d, comment_keys) or NOT_STATED
                     for d in datasets}),
                f"why the {other} differs ({other}.yaml)": _per_dataset(
                    {d: _comment(comments[other], d, comment_keys) or NO_REASON
                     for d in datasets}),
            })
    return pd.DataFrame(rows)


def _per_dataset(texts: dict[str, str]) -> str:
    """One text when every dataset has it, else "ROP: …; BraTS: …"."""
    if len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return "; ".join(f"{dataset_spec(d).short}: {t}" for d, t in texts.items())
