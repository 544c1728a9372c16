"""The progressive GAN and how it is trained: networks, losses, schedule, trainer, checkpoints."""
