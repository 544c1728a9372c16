"""The quality study: what each training budget of the demo buys, measured with the project's
own metrics (the book's *Quality against compute* page).

``candidates`` are the configurations (``levers`` makes the data a candidate changes where no
config key does), ``run`` trains and scores them (``python -m
benchmarks.quality.run``, hours), ``results`` reads and writes their rows
(``benchmarks/results/quality_study.json``), ``trends`` fits the measures against training
compute, and ``tables`` and ``figures`` show them. ``encoder_sweep`` (a script; the page that
shows it imports it) trains wider and longer encoders on a fixed generator: Figure 4's encoder
as the paper trained it. The book reads this package from the checkout
(``pggan_book.study.quality_study``); the library never imports it.
"""

from . import candidates, figures, levers, results, tables, trends

__all__ = ["candidates", "figures", "levers", "results", "tables", "trends"]
