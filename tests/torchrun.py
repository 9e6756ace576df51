"""Run a 2-process torchrun job for the data-parallel tests (tests/test_train.py, tests/test_arc.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GLOO_ABORT = "terminate called without an active exception"


def torchrun(args: list[str], out: Path) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node 2 -m lmdm.train ARGS` writing to `out`, one thread per rank.

    A rank once aborted inside gloo's C++ threads (std::terminate, no Python error) in a
    fresh-clone CI run of 2026-12-01, and in none of 67 reruns since, loaded or not. That one
    signature gets a single fresh rerun, which must then pass: a real failure still fails.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "lmdm.train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and GLOO_ABORT in done.stderr:
        shutil.rmtree(out, ignore_errors=True)
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return done
