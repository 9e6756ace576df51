"""lmdm: Live Music Diffusion Models — generative music that plays now, block after block."""

from lmdm.loading import load_model
from lmdm.model.config import ModelConfig
from lmdm.model.lmdm import LMDM, build_model
from lmdm.session import LiveSession, SessionStats

__all__ = ["LMDM", "LiveSession", "ModelConfig", "SessionStats", "build_model", "load_model"]
__version__ = "0.1.0.dev0"
