"""Data: the phantoms, real loaders, preprocessing, the prepared store and the vessel U-Net."""
