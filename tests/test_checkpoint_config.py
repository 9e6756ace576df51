"""A checkpoint is outside input: every config.json either loads or is one CheckpointError line.

Issue #20 class 5: `"text": 5`, a string where a number belongs, a width of 2^20 or 10^12 hash
buckets were tracebacks or attempts to allocate terabytes. Each field is now checked for its type
and range when read, and the model's size is counted from the config before anything exists.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lmdm.checkpoint
from lmdm.checkpoint import CheckpointError, save_model
from lmdm.loading import load_model
from lmdm.codec.conv import ConvCodec, ConvCodecConfig
from lmdm.config_fields import MAX_PARAMETERS, meta_numel
from lmdm.model.config import ModelConfig
from lmdm.model.dit import DiT
from lmdm.model.lmdm import build_model
from lmdm.tensorfile import load_tensors, save_tensors

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return save_model(build_model(ModelConfig.tiny(), seed=0), tmp_path_factory.mktemp("ckpt") / "good")


def _variant(good: Path, tmp_path: Path, change) -> Path:
    d = Path(shutil.copytree(good, tmp_path / f"v{len(list(tmp_path.iterdir()))}"))
    doc = json.loads((d / "config.json").read_text())
    change(doc)
    (d / "config.json").write_text(json.dumps(doc))
    return d


def _refused(path: Path, *fragments: str) -> str:
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    message = str(e.value)
    assert "\n" not in message and len(message) < 400, message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("change,fragments", [
    (lambda d: d.update(text=5), ("config.json", "text must be an object")),
    (lambda d: d["model"].update(width="384"), ("ModelConfig.width must be a whole number", "'384'")),
    (lambda d: d["model"].update(frame_rate="fast"), ("ModelConfig.frame_rate must be a finite number",)),
    (lambda d: d["model"].update(width=2**20), ("ModelConfig.width must be from 1 to 16384",)),
    (lambda d: d["model"].update(depth=True), ("ModelConfig.depth must be a whole number",)),
    (lambda d: d["model"].update(extra_add_inputs=[["x", "y"]]), ("ModelConfig.extra_add_inputs must be",)),
    (lambda d: d["model"].update(extra_add_inputs={"a": 1}), ("ModelConfig.extra_add_inputs must be",)),
    (lambda d: d["model"].update(block_choices=[[4]]), ("ModelConfig.block_choices must be a list of at most",)),
    (lambda d: d["model"].update(block_choices=[[4, 6], [4, 5]]), ("ModelConfig.block_choices must be at most 8 distinct",)),
    (lambda d: d["model"].update(block_choices=[[8000, 6]]), ("ModelConfig.block_choices: (8000, 6) must be",)),
    (lambda d: d["text"].update(buckets=10**12), ("text.buckets must be a whole number from 1 to",)),
    (lambda d: d["text"].update(buckets=8192.5), ("text.buckets",)),
    (lambda d: d.update(format_version="1"), ("format_version must be a whole number",)),
    (lambda d: d.update(name=["x"]), ("name must be a string",)),
    (lambda d: d.update(step=-3), ("step must be a whole number >= 0",)),
    (lambda d: d.pop("model"), ('"model") is missing',)),
    (lambda d: d.update(codec=5), ('codec must be "placeholder" or an object',)),
    (lambda d: d.update(codec={"kind": "ConvCodec", "path": 5}), ("codec.path must be a directory name",)),
    (lambda d: d["codec"].update(latent_dim=10**9), ("codec sample_rate, hop, latent_dim, channels must be whole numbers",)),
    (lambda d: d["codec"].update(hop=321), ("does not match the model config",)),
    (lambda d: d.update(guidance="3"), ("guidance must be a number from 0 to 20",)),
    (lambda d: d.update(guide_inputs=1.5), ("guide_inputs must be a number from 0 to 1",)),
    (lambda d: d.update(guide_inputs=True), ("guide_inputs must be a number from 0 to 1",)),
])
def test_bad_fields_are_one_line_errors_naming_the_file_and_the_field(good, tmp_path, change, fragments) -> None:
    _refused(_variant(good, tmp_path, change), *fragments)


def test_a_huge_model_is_refused_before_anything_is_allocated(good, tmp_path) -> None:
    """Every field within its own range, but together terabytes: refused from the count alone."""
    wide = dict(width=16384, depth=256, heads=64, rotary_dims=32, cond_dim=16384)
    assert meta_numel(lambda: DiT(ModelConfig.tiny(**wide))) > MAX_PARAMETERS
    d = _variant(good, tmp_path, lambda doc: doc["model"].update(wide))
    never = mock.patch("lmdm.checkpoint.new_modules", side_effect=AssertionError("allocated"))
    with never:
        _refused(d, "the model would hold", "GiB", "lmdm refuses more than")
        _refused(_variant(good, tmp_path, lambda doc: doc["text"].update(buckets=1 << 22) or doc["model"].update(cond_dim=4096)),
                 "the model would hold")


def test_weights_with_nan_are_refused(good, tmp_path) -> None:
    d = Path(shutil.copytree(good, tmp_path / "nan"))
    tensors = load_tensors(d / "model.safetensors")[0]
    tensors["dit.project_in.weight"][0, 0] = float("nan")
    save_tensors(d / "model.safetensors", tensors)
    _refused(d, "corrupt checkpoint file", "NaN or Inf", "dit.project_in.weight")


def test_a_conv_codec_with_a_bad_codec_json_or_missing_weights_is_one_line(tmp_path) -> None:
    config = ConvCodecConfig(latent_dim=8, width=16, latent_width=16, frame_units=0, latent_units=0)
    model = build_model(ModelConfig.tiny(latent_dim=8, frame_rate=16000 / config.hop), seed=0, codec=ConvCodec(config).eval())
    d = save_model(model, tmp_path / "conv")
    assert load_model(d).codec.config == config
    original = (d / "codec.json").read_text()
    doc = json.loads(original)
    for key, value, fragment in [("width", 2**20, "ConvCodecConfig.width must be from 1 to 8192"),
                                 ("frame_units", "2", "ConvCodecConfig.frame_units must be a whole number"),
                                 ("latent_noise", None, "ConvCodecConfig.latent_noise must be a finite number")]:
        (d / "codec.json").write_text(json.dumps({**doc, "config": {**doc["config"], key: value}}))
        _refused(d, "codec.json", fragment)
    (d / "codec.json").write_text("[1, 2]")
    _refused(d, "codec.json", "expected 'ConvCodec'")
    (d / "codec.json").write_text(original)  # a good codec.json again, then its weights go
    (d / "codec.safetensors").unlink()
    _refused(d, "codec.safetensors")


# ----------------------------------------------------------------------------------------------
# Any config.json

DELETE = object()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.sampled_from([0, 1, -1, 2**20, 2**31, 10**12, 8192, 64])
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
FIELDS = (
    [(k,) for k in ("format", "format_version", "model", "text", "codec", "name", "guidance", "sampler_steps", "stage", "regime", "step")]
    + [("model", f) for f in ModelConfig.tiny().to_dict()] + [("text", "buckets")]
    + [("codec", f) for f in ("kind", "sample_rate", "hop", "latent_dim", "channels", "path")]
)


def _apply(doc: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        if not isinstance(doc.get(key), dict):
            return
        doc = doc[key]
    if value is DELETE:
        doc.pop(path[-1], None)
    else:
        doc[path[-1]] = value


@settings(max_examples=60, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(FIELDS), json_values | st.just(DELETE)), min_size=1, max_size=3))
def test_any_config_json_loads_or_is_one_checkpoint_error_line(changes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(shutil.copytree(_GOOD[0], Path(tmp) / "m"))
        doc = json.loads((d / "config.json").read_text())
        for path, value in changes:
            _apply(doc, path, value)
        (d / "config.json").write_text(json.dumps(doc))
        real = lmdm.checkpoint.new_modules

        def bounded(config: ModelConfig, buckets: int):
            total = meta_numel(lambda: real(config, buckets))
            assert total <= MAX_PARAMETERS, "a model beyond reason reached the allocation"
            return real(config, buckets)

        with mock.patch("lmdm.checkpoint.new_modules", bounded):
            try:
                model = load_model(d)
            except CheckpointError as e:
                assert "\n" not in str(e) and str(e).strip(), repr(str(e))
                return
        assert math.isfinite(model.guidance) and 1 <= model.steps <= 1000 and isinstance(model.name, str)


_GOOD: list[Path] = []  # a pristine checkpoint kept for the whole run (copied per example)


@pytest.fixture(scope="module", autouse=True)
def _pristine(tmp_path_factory):
    _GOOD[:] = [save_model(build_model(ModelConfig.tiny(), seed=0), tmp_path_factory.mktemp("pristine") / "m")]
    yield
    _GOOD.clear()
