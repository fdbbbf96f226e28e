"""Gradcheck samples: dropout. Each fn reseeds the default generator before dropping, so every
evaluation of the finite differences sees the same mask."""

import numpy as np

from kinone.autograd import manual_seed
from kinone.nn import functional as F
from kinone.nn.functional.dropout import Dropout

rng = np.random.default_rng(5)


def seeded(p, seed):
    def fn(x):
        manual_seed(seed)
        return F.dropout(x, p=p, training=True)

    return fn


SAMPLES = {
    Dropout: [
        (seeded(0.4, 3), [rng.standard_normal((4, 5))]),
        (seeded(0.9, 4), [rng.standard_normal((2, 3, 4))]),
        (seeded(1.0, 5), [rng.standard_normal((3, 3))]),  # everything dropped: zero output, zero gradient
    ],
}
