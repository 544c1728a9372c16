"""Segmentation models: the vessel U-Net (``vessels``: trained, saved, applied patch-wise) and the
augmentation study's segmenters (``pairs``: labelled pairs made alike from real and generated
images; ``tasks``: what a segmenter learns on each dataset; ``segmenters``: trained and scored the
same way in every arm). Above ``data``, below ``evaluation`` and ``augmentation``."""
