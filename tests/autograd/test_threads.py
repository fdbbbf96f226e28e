"""Backward from several threads into one shared leaf loses no gradient.

A race cannot be made to happen on demand; these sizes lost entries in most runs before the
accumulation lock (4 threads, 200,000 entries: NumPy releases the GIL inside `+=`; with
10,000 entries no run lost one), and each test repeats its trial to make a miss unlikely.
"""

from __future__ import annotations

import threading

import numpy as np

from kinone.autograd import Tensor

THREADS = 4
CALLS = 10
SIZE = 200_000
TRIALS = 5


def _run_threads(work) -> list:
    start = threading.Barrier(THREADS)
    errors = []

    def run():
        try:
            start.wait()
            work()
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_backward_into_a_shared_leaf_sums_exactly():
    """Each call adds exactly 1.0 to every entry: THREADS x CALLS everywhere, nothing lost."""
    ones = Tensor(np.ones(SIZE))
    for trial in range(TRIALS):
        w = Tensor(np.zeros(SIZE), requires_grad=True)

        def work():
            for _ in range(CALLS):
                ((w + 0.0) * ones).sum().backward()

        assert not _run_threads(work)
        lost = int(np.count_nonzero(w.grad.data != THREADS * CALLS))
        assert lost == 0, f"trial {trial}: {lost} of {SIZE} gradient entries differ from {THREADS * CALLS}"


def test_concurrent_first_gradients_are_not_lost():
    """Fresh leaves each receiving their first gradient from every thread at once."""
    for trial in range(4 * TRIALS):
        w = Tensor(np.zeros(SIZE), requires_grad=True)
        assert not _run_threads(lambda: w.sum().backward())
        np.testing.assert_array_equal(w.grad.data, np.full(SIZE, float(THREADS)), err_msg=f"trial {trial}")
