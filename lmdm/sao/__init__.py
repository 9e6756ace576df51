"""Stable Audio Open (Small) and its LMDM fine-tunes: read stable-audio-tools checkpoints into lmdm.

    spec.py     model_config.json -> SaoSpec (our ModelConfig, the Oobleck VAE's config, the conditioners)
    keys.py     the state-dict key mapping (fused qkv kept fused, weight norm folded), checked key by key
    text.py     T5 prompt tokens + the seconds_total number -> Conditioning (T5 via `transformers`, lmdm[sao])
    load.py     is_sao_directory, load_sao: a directory -> LMDM (lmdm.load_model dispatches here)
    convert.py  `lmdm convert SRC --out DIR`: an SAO directory -> our checkpoint format
    train.py    start `lmdm train lmdm` from SAO weights; encode a corpus with the SAO VAE

The VAE itself is lmdm/codec/oobleck.py; the speed of the full-size architecture: `python -m
lmdm.eval.sao_bench`. What was and was not verified: docs/sao.md.
"""

from lmdm.sao.load import is_sao_directory, load_sao, read_sao
from lmdm.sao.spec import SaoSpec, parse_model_config
from lmdm.sao.text import SaoTextEncoder, T5Encoder, T5Unavailable

__all__ = ["SaoSpec", "SaoTextEncoder", "T5Encoder", "T5Unavailable", "is_sao_directory", "load_sao", "parse_model_config", "read_sao"]
