"""pggan-medsynth: progressively grown GANs for fundus photographs and glioma MRI.

A companion to Beers et al. (2018), "High-resolution medical image synthesis using
progressively grown generative adversarial networks".
"""

__version__ = "0.1.0"
