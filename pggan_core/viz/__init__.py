"""Pictures: sample grids, pipeline figures, quality plots (matplotlib) and interactive figures
(plotly, ipywidgets)."""
