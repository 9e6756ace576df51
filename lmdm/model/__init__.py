"""The diffusion transformer and its configuration."""

from lmdm.model.config import ModelConfig
from lmdm.model.dit import DiT
from lmdm.model.lmdm import LMDM, build_model

__all__ = ["DiT", "LMDM", "ModelConfig", "build_model"]
