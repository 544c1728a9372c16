"""Progress on every long step, so a reader can tell working from hung, and how long is left: a
tqdm bar in a terminal, else a plain line every ~30 s (a bar's carriage returns would make a file
or CI log one endless line)."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

LOG_EVERY_S = 30.0  # seconds between lines when stdout is not a terminal


def to_terminal() -> bool:
    """Whether stdout is a terminal (bars) rather than a file or a pipe (lines)."""
    return sys.stdout.isatty()


def clock(seconds: float) -> str:
    """``1:02:03`` / ``2:03``: a duration as people read it."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """``total`` steps of one job named ``label``; ``update`` after each, with a short
    ``status`` ("32 px fade") and ``detail`` ("41 img/s"). In a terminal a tqdm bar (at
    ``position`` when several processes share the screen); otherwise a line at most every
    ``every`` seconds and at the end: ``label: status, step 1200/8000 (15 %), detail, ETA 3:10``.
    Silent when not ``enabled``."""

    def __init__(self, total: int, label: str, unit: str = "step", initial: int = 0,
                 enabled: bool = True, position: int | None = None,
                 every: float = LOG_EVERY_S, terminal: bool | None = None) -> None:
        self.total, self.label, self.unit, self.done = total, label, unit, initial
        self.enabled, self.every = enabled, every
        self.started, self.initial = time.perf_counter(), initial
        self.last_line, self.reported = self.started, initial
        self.status = self.detail = ""
        use_bar = enabled and (to_terminal() if terminal is None else terminal)
        self.bar = (tqdm(total=total, initial=initial, desc=label, unit=unit, position=position,
                         leave=position is None, dynamic_ncols=True) if use_bar else None)

    def update(self, n: int = 1, status: str = "", detail: str = "") -> None:
        self.done += n
        self.status, self.detail = status or self.status, detail or self.detail
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_description(f"{self.label} {self.status}".strip(), refresh=False)
            if detail:
                self.bar.set_postfix_str(detail, refresh=False)
            return
        now = time.perf_counter()
        finished = self.done >= self.total and self.reported < self.total  # the last line once
        if self.enabled and (now - self.last_line >= self.every or finished):
            self.last_line, self.reported = now, self.done
            print(self.line(now), flush=True)

    def line(self, now: float | None = None) -> str:
        """The one-line report: where the job is, how fast it goes, how long is left."""
        elapsed = (now or time.perf_counter()) - self.started
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.label}:"] + ([f"{self.status},"] if self.status else [])
        parts.append(f"{self.unit} {self.done}/{self.total} "
                     f"({100 * self.done / max(self.total, 1):.0f} %),")
        parts += [f"{self.detail},"] if self.detail else []
        left = self.total - self.done
        parts.append(f"ETA {clock(left / rate)}" if rate > 0 and left > 0 else
                     f"done in {clock(elapsed)}" if left <= 0 else "ETA unknown")
        return " ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
