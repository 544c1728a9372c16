"""The progressive schedule: resolution by resolution, a fade-in phase then a stable one."""

from __future__ import annotations

from dataclasses import dataclass

from pggan_core.errors import (
    ConfigError,
)
from pggan_core.settings import Config, resolutions


@dataclass(frozen=True)
class Phase:
    """One stretch of the schedule: a resolution, fading in or stable, over global steps."""

    index: int
    resolution: int
    kind: str  # "fade" or "stable"
    start: int  # first global step of the phase
    iterations: int

    @property
    def end(self) -> int:
        return self.start + self.iterations

    def alpha(self, step: int) -> float:
        """The fade-in weight at global ``step``: linear 0 -> 1 over a fade, 1 when stable."""
        return (step - self.start) / self.iterations if self.kind == "fade" else 1.0


def build_phases(config: Config) -> list[Phase]:
    """The schedule as a list of phases (zero-length phases are left out)."""
    s = config.schedule
    phases: list[Phase] = []
    step = 0
    for res in resolutions(s.start_resolution, s.max_resolution):
        fade, stable = s.phase_iterations(res)
        kinds = [("stable", stable)]
        if res != s.start_resolution:
            kinds.insert(0, ("fade", fade))
        for kind, iterations in kinds:
            if iterations > 0:
                phases.append(Phase(len(phases), res, kind, step, iterations))
                step += iterations
    if not phases:
        raise ConfigError("schedule.fade_iterations and stable_iterations are both 0: "
                          "nothing to train")
    return phases
