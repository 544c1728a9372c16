"""The study's rows: ``benchmarks/results/quality_study.json`` (committed), one row per job,
each stamped with the machine that scored it; read by the book, merged into by the runner."""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

from pggan_core.provenance import git_commit, hardware

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results" / "quality_study.json"

Job = tuple[str, str, str, int]  # (candidate, dataset, variant, seed)


def load_results() -> dict[str, Any]:
    """The results file as saved, or no rows before the study's first job."""
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"rows": []}


def read_rows() -> list[dict[str, Any]]:
    """Every row of the quality study, or BookError naming the command that writes them."""
    from pggan_core.errors import BookError

    if not RESULTS.is_file():
        raise BookError(f"{RESULTS} is missing: run `python -m benchmarks.quality.run` (hours)")
    return load_results()["rows"]


def row_job(row: dict[str, Any]) -> Job:
    """The job a row measured (rows from before variants and seeds: with segmentation, 0)."""
    return row["candidate"], row["dataset"], row.get("variant", "seg"), row.get("seed", 0)


def save_rows(rows: list[dict[str, Any]]) -> None:
    """Merge ``rows`` into the results file, replacing rows of the same job; under a lock, so
    that two studies run side by side do not lose each other's rows."""
    import fcntl

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = load_results()
        done = {row_job(r) for r in rows}
        kept = [r for r in results["rows"] if row_job(r) not in done]
        stamp = machine()
        results["rows"] = kept + [{**r, "machine": stamp} for r in rows]
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=float))
        tmp.replace(RESULTS)


def machine() -> dict[str, Any]:
    """What the numbers were measured on (``provenance.hardware``: the CPU, its cores and
    widest vector extension), every AVX-512 flag, the ISA caps in force, versions, commit."""
    import torch

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    return {
        "cpu": hardware(),
        "avx512": sorted(set(re.findall(r"\b(avx512\w*)", flags))),
        "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
        "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "torch": torch.__version__, "python": platform.python_version(),
        "commit": git_commit(REPO, dirty=False),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
