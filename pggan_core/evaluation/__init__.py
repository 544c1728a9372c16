"""Measuring a trained run: its metrics (``evaluate``), the segmentation-channel ablation and the
vessel agreement, built on the pure array measures of ``pggan_core.measures``."""
