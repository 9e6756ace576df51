"""Codecs: audio <-> latent frames."""
