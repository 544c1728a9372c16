"""The companion book: executing the notebooks, the tables the pages read, the Sphinx build, and
shipping the runs a build installs (``shipping``, ``pggan weights``).

Its build and pages need the ``[book]`` extra (jupytext, papermill, jupyter-book); ``shipping``
does not. The library never imports this package; only the CLI wires ``pggan book`` and
``pggan weights`` to it."""
