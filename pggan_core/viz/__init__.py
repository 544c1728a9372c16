"""Pictures: sample grids, pipeline figures and quality plots (matplotlib). The interactive
figures (plotly, ipywidgets: the ``[book]`` extra) are ``pggan_book.interactive``."""
