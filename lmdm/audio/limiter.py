"""The output's safety limiter: no sample of a stream ever reaches full scale.

A model can overshoot: a decoder's peak, a loud prompt, guidance pushing levels up, the delay's
wet signal on top of the player. Hard clipping at +-1 (what a sound card or a PCM file does) is
harsh and is the artefact listeners notice first. `soft_limit` is memoryless and smooth:

    |x| <= knee:  y = x                                     (untouched: most of the music)
    |x| >  knee:  y = sign(x) * (knee + span * tanh((|x| - knee) / span)),  span = ceiling - knee

It is continuous with a continuous slope at the knee, monotonic, and |y| <= ceiling < 1 for every
input (it approaches the ceiling; float32 rounding can land on it), so it cannot add a
discontinuity at a block boundary and needs no state between blocks.
"""

from __future__ import annotations

import numpy as np

KNEE = 0.8  # below this level the signal passes unchanged
CEILING = 0.98  # the limit |y| approaches and never passes (-0.18 dBFS)


def soft_limit(x: np.ndarray, knee: float = KNEE, ceiling: float = CEILING) -> tuple[np.ndarray, int]:
    """(the limited signal, how many samples were above the knee). x: float array, any shape."""
    if not 0.0 < knee < ceiling <= 1.0:
        raise ValueError(f"need 0 < knee < ceiling <= 1, got knee={knee}, ceiling={ceiling}")
    a = np.abs(x)
    over = a > knee
    count = int(np.count_nonzero(over))
    if count == 0:
        return x, 0
    span = ceiling - knee
    y = x.copy()
    y[over] = np.sign(x[over]) * (knee + span * np.tanh((a[over] - knee) / span))
    return y, count
