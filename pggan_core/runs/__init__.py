"""Training runs as folders: finished or not, made or reused for the book, shipped with the repo."""
