"""Segmentation models: the vessel U-Net (``vessels``: trained, saved, applied patch-wise),
and the segmenters the augmentation study trains on labelled pairs (``pairs``: made alike from
real and generated images; ``tasks``: what a segmenter learns on each dataset; ``segmenters``:
trained and scored the same way in every arm). Above ``data`` (they learn from its images),
below ``evaluation`` and ``augmentation`` (which use them)."""
