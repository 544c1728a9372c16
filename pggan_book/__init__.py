"""The companion book: executing the notebooks, the tables the pages read, and the Sphinx build.

Only this package needs the ``[book]`` extra (jupytext, papermill, jupyter-book); nothing
outside it imports it."""
