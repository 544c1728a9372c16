"""The companion book: the chapters' figures, readings and tables, the runs a build makes or
installs, executing the notebooks, the Sphinx build, and shipping the runs (``shipping``,
``pggan weights``).

Its build and pages need the ``[book]`` extra (jupytext, papermill, jupyter-book); ``figures``,
``readings`` and ``shipping`` do not. The library never imports this package; only the CLI
wires ``pggan book`` and ``pggan weights`` to it."""
