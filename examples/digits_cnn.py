"""Train a small CNN on handwritten digits with Kinone alone.

Data: the "Optical Recognition of Handwritten Digits" set (UCI Machine Learning Repository,
Alpaydin and Kaynak, 1998): 1,797 real scanned digits as 8x8 grey images, 10 classes. It ships
inside scikit-learn (`sklearn.datasets.load_digits`, no download), which is the only thing
this example uses scikit-learn for.

    python -m pip install scikit-learn ./packages/kinone-autograd ./packages/kinone-nn
    python examples/digits_cnn.py            # ~97-99% test accuracy in well under a minute
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from kinone import nn, optim
from kinone.autograd import Tensor, manual_seed, no_grad
from kinone.nn import functional as F


class DigitsCNN(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(32, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def load_digits_split(seed: int = 0, test_fraction: float = 0.25):
    """Images as (N, 1, 8, 8) float32 in [0, 1], labels int64; a fixed stratified-by-shuffle split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(len(labels) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return (images[train], labels[train]), (images[test], labels[test])


def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    with no_grad():
        for start in range(0, len(labels), batch_size):
            logits = model(Tensor(images[start : start + batch_size]))
            correct += int((logits.data.argmax(axis=1) == labels[start : start + batch_size]).sum())
    return correct / len(labels)


def train(epochs: int = 8, batch_size: int = 64, lr: float = 0.05, seed: int = 0, verbose: bool = True) -> float:
    """Train and return the test accuracy."""
    manual_seed(seed)
    (x_train, y_train), (x_test, y_test) = load_digits_split(seed)
    model = DigitsCNN()
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * -(-len(y_train) // batch_size))
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        model.train()
        start, losses = time.perf_counter(), []
        for batch in np.array_split(rng.permutation(len(y_train)), -(-len(y_train) // batch_size)):
            loss = F.cross_entropy(model(Tensor(x_train[batch])), Tensor(y_train[batch]), label_smoothing=0.05)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        if verbose:
            accuracy = evaluate(model, x_test, y_test)
            print(
                f"epoch {epoch + 1}: train loss {np.mean(losses):.4f}, test accuracy {accuracy:.4f}, "
                f"{time.perf_counter() - start:.1f} s"
            )
    return evaluate(model, x_test, y_test)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"test accuracy: {train(args.epochs, seed=args.seed):.4f}")
