"""One ``pggan train`` per run folder: an exclusive lock on ``<run>/.lock`` while it trains.

Two trainings writing the same checkpoints and logs would interleave them into a run that is
neither. The lock is ``flock``: the kernel drops it when its holder exits, however it exits
(SIGKILL and power loss included), so a dead training never leaves a run locked, and no stale
lock file needs cleaning up. The file itself only tells the refused process who holds the
lock (pid, host, start time) for its message; it is left in place, because deleting a lock
file lets a third process lock a fresh file while the second still holds the old one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from pggan_core.errors import RunInUseError

try:
    import fcntl
except ImportError:  # Windows: no flock; training there runs unlocked
    fcntl = None

LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold ``run_dir``'s lock for the ``with`` block (creating the folder); yield the lock
    file. Raises RunInUseError naming the holder when another process holds it."""
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
    """The refusal, naming the holder as its lock file tells it (it may not have written it
    yet) and the ways out."""
    try:
        holder = json.loads(holder_text)
        who = (f"another `pggan train` (pid {holder['pid']} on host {holder['host']}, "
               f"since {holder['started']})")
        stop = f"stop it with `kill {holder['pid']}` on {holder['host']}"
    except (ValueError, TypeError, KeyError):
        who, stop = "another `pggan train`", "stop it"
    return (f"{run_dir} is in use by {who}: wait for it to finish, or {stop} (it saves a "
            "checkpoint; continue it with --resume), or train into another --out")
