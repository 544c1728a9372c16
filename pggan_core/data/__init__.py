"""Data: the phantoms, real loaders, preprocessing and the prepared store."""
