"""Where a result came from: profile, seed, git commit and build time.

Every page, figure and shipped run carries these facts, so a number can be traced to the code
that made it.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from pggan_core.paths import checkout_root


def provenance(profile: str, seed: int, root: Path | None = None) -> dict[str, str]:
    """Profile, seed, git commit (with ``+dirty`` for local changes) and UTC build time."""
    root = root or checkout_root()
    try:
        commit = _git(root, "rev-parse", "--short", "HEAD")
        if _git(root, "status", "--porcelain", "--untracked-files=no"):
            commit += "+dirty"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    built = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"profile": profile, "seed": str(seed), "commit": commit, "built": built}


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()
