"""Gradcheck samples: channel dropout (dropout2d). Each fn reseeds the default generator before
dropping, so every evaluation of the finite differences sees the same mask."""

import numpy as np

from kinone.autograd import manual_seed
from kinone.nn import functional as F
from kinone.nn.functional.dropout import ChannelDropout

rng = np.random.default_rng(52)


def seeded(p, seed):
    def fn(x):
        manual_seed(seed)
        return F.dropout2d(x, p=p, training=True)

    return fn


SAMPLES = {
    ChannelDropout: [
        (seeded(0.5, 3), [rng.standard_normal((3, 4, 2, 3))]),
        (seeded(0.3, 4), [rng.standard_normal((2, 5, 4))]),  # (N, C, L)
        (seeded(1.0, 5), [rng.standard_normal((2, 2, 2, 2))]),  # every channel dropped
    ],
}
