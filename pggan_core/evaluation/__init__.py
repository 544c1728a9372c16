"""Measuring a trained generator: SWD, MS-SSIM, vessel agreement, nearest neighbours, anatomy."""
