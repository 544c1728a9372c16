"""The metric registry (after stylegan2-ada-pytorch's ``metric_main.register_metric``): a metric is
added in one place, ``register_metric``, and everything that lists metrics reads it:
``evaluate.evaluate_run`` (``metrics.json`` and its progress total), ``evaluate.metrics_table`` and
the book's results table (``pggan_book.results_table.all_claims``). A metric's code joins
``metrics.json``'s derivation when it runs (``provenance.code_that_ran``), so the file is computed
again when that code changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pggan_core.data.store import PreparedDataset
from pggan_core.errors import ConfigError
from pggan_core.settings import Config


@dataclass(frozen=True)
class Samples:
    """What a metric reads: ``n`` generated and ``n`` real training images (N, C, R, R) in [-1, 1]
    with the same channels (the image channels alone for a run without segmentation); the held-out
    and whole training sets as lazy views; the run's config and the seed."""

    config: Config
    dataset: str
    data: PreparedDataset
    fake: np.ndarray
    real: np.ndarray
    heldout_idx: np.ndarray
    heldout: Any  # data.view(...): read a block at a time
    train_all: Any
    seed: int
    with_segmentation: bool  # the run generated segmentation channels
    draw: Callable[[int], np.ndarray] | None = None  # n -> n more generated images, seed-fixed


@dataclass(frozen=True)
class MetricClaim:
    """A claim of the paper that one number of a metric judges, for the results table."""

    text: str
    where: str  # section or figure of Beers et al. (2018), or "not in the paper"
    paper_value: str
    key: str  # the result key whose value the table shows and the rule judges
    rule: Callable[[float], str]  # value -> yes | partly | no (none: "not measured")
    rule_text: str


@dataclass(frozen=True)
class Metric:
    """One metric: ``compute(samples) -> {key: value}`` merged into ``metrics.json``."""

    name: str
    compute: Callable[[Samples], dict[str, Any]]
    rows: tuple[tuple[str, str], ...] = ()  # (label in the metrics table, result key)
    needs_segmentation: bool = False  # skipped for a run without segmentation channels
    datasets: tuple[str, ...] | None = None  # None: every dataset
    status: str = ""  # the progress line once it is done (default: its name)
    claim: MetricClaim | None = None

    def applies_to(self, dataset: str, with_segmentation: bool) -> bool:
        """Whether this metric is computed for a run of ``dataset`` with or without segmentation."""
        return ((self.datasets is None or dataset in self.datasets)
                and (with_segmentation or not self.needs_segmentation))


METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` (or replace the one of its name): computed by ``pggan evaluate`` in
    registration order, shown by the tables. ConfigError unless its name is an identifier."""
    if not metric.name.isidentifier():
        raise ConfigError(f"metric name {metric.name!r}: use letters, digits and underscores")
    METRICS[metric.name] = metric
    return metric


def metrics_for(dataset: str, with_segmentation: bool) -> list[Metric]:
    """The registered metrics a run of ``dataset`` gets, in registration order."""
    return [m for m in METRICS.values() if m.applies_to(dataset, with_segmentation)]
