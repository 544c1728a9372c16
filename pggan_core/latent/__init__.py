"""The latent encoder (GAN inversion) and what the encoded latents show."""
