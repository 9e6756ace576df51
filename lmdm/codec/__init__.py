"""Codecs: audio <-> latent frames."""

from lmdm.codec.base import Codec, StreamDecoder, StreamEncoder
from lmdm.codec.checkpoint import load_codec, save_codec
from lmdm.codec.conv import ConvCodec, ConvCodecConfig

__all__ = ["Codec", "StreamDecoder", "StreamEncoder", "ConvCodec", "ConvCodecConfig", "load_codec", "save_codec"]
