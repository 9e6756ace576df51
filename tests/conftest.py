from pathlib import Path

import pytest
import torch

from tests.jack import jack_server  # noqa: F401  (session fixture for @pytest.mark.audio tests)

TINY_LATENT_DIM = 8  # ModelConfig.tiny()'s


@pytest.fixture(autouse=True)
def denormals_back_after_each_test():
    """`lmdm render` / `lmdm live` run in-process turn on flush-to-zero for the whole process
    (torch.set_flush_denormal(True)); Hypothesis's floats() then sees 0.0 as the smallest subnormal
    and fails to draw. Every test leaves the process as it found it."""
    yield
    torch.set_flush_denormal(False)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a busy 2-core machine: one thread is faster (no spinning) and the same everywhere.
    A module takes it with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_latents(tmp_path_factory) -> Path:
    """A 4-example corpus of 3 s songs, encoded with the placeholder codec for ModelConfig.tiny(); made once."""
    from lmdm.corpus import write_corpus
    from lmdm.train.latents import encode_corpus

    root = tmp_path_factory.mktemp("data")
    write_corpus(root / "corpus", hours=4 * 3.0 / 3600, seed=0, seconds_per_example=3.0, workers=1, progress=False)
    encode_corpus(root / "corpus", "placeholder", root / "latents", latent_dim=TINY_LATENT_DIM, progress=False, log=lambda s: None)
    return root / "latents"
