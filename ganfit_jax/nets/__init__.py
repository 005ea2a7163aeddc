"""Neural networks: identity networks (IResNet/ArcFace, SFace) and the texture GAN."""
