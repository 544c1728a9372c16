"""Pure image measures on arrays: SWD, MS-SSIM, nearest neighbours, domain statistics.

They know nothing of runs, checkpoints or training, so the trainer (its SWD log) and the
run-level evaluation above it (``pggan_core.evaluation``) can both use them."""
