"""The augmentation study: do the GAN's synthetic (image, mask) pairs help a segmenter?"""
