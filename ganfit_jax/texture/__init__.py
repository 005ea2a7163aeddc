"""Texture side: UV unwrapping of photos, texture models (PCA baseline, GAN decoder)."""
