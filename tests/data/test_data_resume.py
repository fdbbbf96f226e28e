"""Trainer + kinone.data's DataLoader: a run stopped mid-epoch and resumed ends with the same
weights as one never stopped (num_workers=0, fixed seed, random augmentation included)."""

from __future__ import annotations

import numpy as np

from kinone import nn, optim
from kinone.autograd import manual_seed
from kinone.data import DataLoader, Dataset
from kinone.nn import functional as F
from kinone.train import Trainer


class NoisyPoints(Dataset):
    """Points with a random jitter drawn from NumPy's global RNG on every access (an augmentation)."""

    def __init__(self):
        rng = np.random.default_rng(5)
        self.x = rng.normal(size=(80, 4)).astype(np.float32)
        self.y = (self.x[:, 0] + self.x[:, 1] > 0).astype(np.int64)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i] + np.random.normal(0, 0.1, 4).astype(np.float32), self.y[i]


def _run(run_dir, max_steps=None, resume=False):
    manual_seed(0)
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = DataLoader(NoisyPoints(), batch_size=8, shuffle=True, seed=3)
    trainer = Trainer(
        model, optimizer, F.cross_entropy, loader, run_dir=run_dir, epochs=3, checkpoint_every=4, max_steps=max_steps
    )
    trainer.fit(resume=resume)
    return [v.copy() for v in model.state_dict().values()]


def test_stop_mid_epoch_and_resume_gives_identical_weights(tmp_path):
    straight = _run(tmp_path / "straight")
    _run(tmp_path / "split", max_steps=13)  # 10 batches per epoch: stops in epoch 2
    resumed = _run(tmp_path / "split", resume=True)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
