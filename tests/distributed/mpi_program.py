"""The program that test_mpi.py runs under mpiexec: `python mpi_program.py CHECK [CHECK ...]`.

Every rank runs each named check; a check asserts on every rank and prints "ok CHECK rank R"
when it passed there. A failed assertion on any rank aborts the whole job (init() installs
the abort hook), so mpiexec's exit status and output tell the test what happened.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

import kinone.distributed as dist
from kinone import nn
from kinone.autograd import Tensor, backend
from kinone.optim import SGD, Adam
from kinone.optim.lr_scheduler import StepLR

CHECKS = {}


def check(function):
    CHECKS[function.__name__] = function
    return function


def rank_and_size():
    return dist.rank(), dist.world_size()


# ---------------------------------------------------------------------- gradients
@check
def allreduce():
    """Averages equal sum / size exactly (integer-valued gradients sum exactly); a parameter
    without a gradient on some ranks contributes zeros and gets one everywhere; one without a
    gradient anywhere keeps None everywhere; versions are bumped; float64 stays float64; a
    strided gradient is averaged too (in the same Tensor, now C-contiguous). Run with the default bucket and with buckets of
    10 float32 values, which split parameters across buckets."""
    from kinone.distributed import gradients

    for bucket_bytes in (gradients.BUCKET_BYTES, 40):
        gradients.BUCKET_BYTES, default = bucket_bytes, gradients.BUCKET_BYTES
        try:
            _check_allreduce()
        finally:
            gradients.BUCKET_BYTES = default


def _check_allreduce():
    r, n = rank_and_size()
    shapes = [(3, 4), (5,), (2, 2, 2), (1,), (7,), (4, 6)]
    params = [Tensor(np.zeros(s, np.float32), requires_grad=True) for s in shapes]
    expected = {}
    for i, p in enumerate(params):
        ranks = [q for q in range(n) if not (i == 1 and q == 0)]  # parameter 1: no gradient on rank 0
        if i != 3:  # parameter 3: no gradient on any rank
            values = lambda q: np.arange(p.data.size, dtype=np.float32).reshape(p.shape) * (q + 1) + 10 * i
            expected[i] = (sum(values(q) for q in ranks) / np.float32(n)).astype(np.float32)
            if r in ranks:
                p.grad = Tensor(values(r))
    params[5].grad = Tensor(np.ascontiguousarray(params[5].grad.data.T).T)  # strided: a transposed view
    assert not params[5].grad.data.flags.c_contiguous
    versions = [p.grad._version_counter.value if p.grad is not None and p.grad._version_counter else 0 for p in params]
    grad_objects = [p.grad for p in params]
    arrays = [None if p.grad is None else p.grad.data for p in params]

    dist.allreduce_gradients(params)

    assert params[3].grad is None, "a parameter without a gradient on every rank must keep grad None"
    for i, want in expected.items():
        p = params[i]
        assert p.grad is not None and p.grad.data.dtype == np.float32
        np.testing.assert_array_equal(p.grad.data, want, err_msg=f"parameter {i}")
        if grad_objects[i] is not None:
            assert p.grad is grad_objects[i], "gradients must be averaged in place"
            assert p.grad.data is arrays[i] or i == 5, "a C-contiguous gradient's array must be averaged in place"
            assert p.grad.data.flags.c_contiguous
            assert p.grad._version_counter.value == versions[i] + 1, "the gradient's version must be bumped"

    double = Tensor(np.zeros(3, np.float64), requires_grad=True)
    double.grad = Tensor(np.array([1.0, 1e-12, 3.0]) * (r + 1))
    dist.allreduce_gradients([double])
    assert double.grad.data.dtype == np.float64
    np.testing.assert_array_equal(double.grad.data, np.array([1.0, 1e-12, 3.0]) * sum(range(1, n + 1)) / n)


@check
def overlap():
    """From the second step on, buckets are reduced inside backward (the hooks) and the step's
    averages equal the plain averages of every rank's local gradients: with every parameter
    used, with a parameter unused on rank 0 only (zeros there) or on every rank (None
    everywhere), and after two backward passes before one reduction (accumulation: the step
    is redone whole and the buckets are not used again)."""
    from kinone.distributed import gradients

    r, n = rank_and_size()
    body = nn.Sequential(nn.Linear(8, 600), nn.Tanh(), nn.Linear(600, 1000), nn.Tanh())  # 2.4 MB: several buckets
    head, spare, unused = nn.Linear(1000, 5), nn.Linear(1000, 5), nn.Linear(3, 3)
    model = nn.ModuleList([body, head, spare, unused])
    dist.broadcast_parameters(model)
    params = list(model.parameters())
    key = tuple(map(id, params))
    rng = np.random.default_rng(r)

    def backward(use_spare: bool) -> None:
        features = body(Tensor(rng.standard_normal((4, 8)).astype(np.float32)))
        loss = (head(features) ** 2).sum()
        if use_spare:
            loss = loss + spare(features).sum()
        loss.backward()

    def expect_averages(local: list) -> None:
        for p, mine in zip(params, local):
            present = dist.all_gather(np.array([[mine is not None]]))
            if not present.any():
                assert p.grad is None
                continue
            gathered = dist.all_gather((mine if mine is not None else np.zeros(p.shape, np.float32))[None])
            np.testing.assert_allclose(p.grad.data, gathered.mean(axis=0), rtol=1e-5, atol=1e-7)

    for step, use_spare in enumerate([True, True, r != 0, True]):
        for p in params:
            p.grad = None
        backward(use_spare)
        local = [None if p.grad is None else p.grad.data.copy() for p in params]
        reducer = gradients._reducers.get(key)
        if step > 1 and use_spare:  # hooks reduced the complete buckets (step 1 learnt the order; without
            # the spare head, the first bucket, which holds it, waits for the end)
            assert reducer is not None and reducer.next_bucket > 0, step
        dist.allreduce_gradients(params)
        expect_averages(local)

    for p in params:
        p.grad = None
    backward(True)
    backward(True)  # accumulated
    local = [None if p.grad is None else p.grad.data.copy() for p in params]
    dist.allreduce_gradients(params)
    expect_averages(local)
    assert gradients._reducers[key] is None
    for p in params:
        p.grad = None
    backward(True)
    local = [None if p.grad is None else p.grad.data.copy() for p in params]
    dist.allreduce_gradients(params)
    expect_averages(local)


@check
def optimizer():
    """DistributedOptimizer steps every rank with the averaged gradient: equal weights after."""
    r, n = rank_and_size()
    w = nn.Parameter(np.ones(4, np.float32))
    opt = dist.DistributedOptimizer(SGD([w], lr=1.0))
    scheduler = StepLR(opt, step_size=1, gamma=0.5)  # a scheduler accepts the wrapper
    opt.zero_grad()
    (w * Tensor(np.full(4, r + 1, np.float32))).sum().backward()
    opt.step()
    scheduler.step()
    mean = sum(range(1, n + 1)) / n
    np.testing.assert_array_equal(w.data, np.float32(1.0) - np.float32(mean))
    assert opt.param_groups[0]["lr"] == 0.5
    gathered = dist.all_gather(w.data[None])
    assert (gathered == gathered[0]).all()


@check
def standin_device():
    """The device path (flat buffer on the device, flags read back) on the stand-in CUDA device."""
    r, n = rank_and_size()
    with backend.use_standin_cuda():
        params = [Tensor(np.zeros(4, np.float32), requires_grad=True).cuda() for _ in range(2)]
        params[0].grad = Tensor(np.full(4, r + 1.0, np.float32)).cuda()
        dist.allreduce_gradients(params)
        assert params[1].grad is None
        assert params[0].grad.device == "cuda:0"
        np.testing.assert_array_equal(params[0].grad.data.get(), np.full(4, sum(range(1, n + 1)) / n, np.float32))


# ---------------------------------------------------------------------- broadcasts
def _model(seed):
    nn_init_state = np.random.default_rng(seed)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    for _, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.data.dtype.kind == "f":
            t.data[...] = nn_init_state.standard_normal(t.shape)
        else:
            t.data[...] = seed + 7
    return model


@check
def broadcast():
    """Parameters and buffers from root, into the same objects; structures compared first."""
    r, n = rank_and_size()
    root = n - 1
    model = _model(seed=r)
    objects = [id(t) for t in [*model.parameters(), *model.buffers()]]
    dist.broadcast_parameters(model, root=root)
    assert objects == [id(t) for t in [*model.parameters(), *model.buffers()]]
    expected = _model(seed=root).state_dict()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)

    other = nn.Sequential(nn.Linear(2, 2)) if r == 0 else nn.Sequential(nn.Linear(2, 3))
    try:
        dist.broadcast_parameters(other)
    except ValueError as error:
        assert "differs across ranks" in str(error) and "rank 0" in str(error), str(error)
    else:
        raise AssertionError("broadcast_parameters must refuse different models")


def _tricky_state(r):
    return {
        "state": {
            0: {"step": 3, "exp_avg": np.arange(6, dtype=np.float32).reshape(2, 3) + r},
            7: {"mask": np.array([True, False]), "flag": np.float64(2.5 + r), "empty": np.zeros((0, 3))},
        },
        "param_groups": [
            {
                "lr": 0.1 * (r + 1),
                "betas": (0.9, 0.999),
                "params": [0, 7],
                "name": f"rank{r}",
                "none": None,
                "nan": float("nan"),
                "scalar": np.array(4, dtype=np.int16),
            }
        ],
        1.5: [True, 3, "x"],
    }


@check
def broadcast_state():
    """A nested state dict from root, without pickle: key types, tuples, dtypes, shapes kept;
    an optimizer and a scheduler restored from rank 0's state step as rank 0's."""
    r, n = rank_and_size()
    got = dist.broadcast_state(_tricky_state(r) if r == 0 else None)
    want = _tricky_state(0)
    assert list(got) == ["state", "param_groups", 1.5] and list(got["state"]) == [0, 7]
    exp_avg = got["state"][0]["exp_avg"]
    assert exp_avg.dtype == np.float32 and exp_avg.shape == (2, 3)
    np.testing.assert_array_equal(exp_avg, want["state"][0]["exp_avg"])
    np.testing.assert_array_equal(got["state"][7]["mask"], [True, False])
    assert type(got["state"][7]["flag"]) is np.float64 and got["state"][7]["flag"] == 2.5
    assert got["state"][7]["empty"].shape == (0, 3)
    group = got["param_groups"][0]
    assert group["betas"] == (0.9, 0.999) and group["lr"] == 0.1 and group["name"] == "rank0" and group["none"] is None
    assert np.isnan(group["nan"]) and group["scalar"].dtype == np.int16 and group["scalar"].shape == ()
    assert got[1.5] == [True, 3, "x"]

    # An optimizer resumed from rank 0's state dict on every rank.
    w = nn.Parameter(np.full(3, float(r), np.float32))
    opt = Adam([w], lr=0.1)
    scheduler = StepLR(opt, step_size=1, gamma=0.5)
    if r == 0:
        w.grad = Tensor(np.ones(3, np.float32))
        opt.step()
        scheduler.step()
    dist.broadcast_parameters(_holder(w))
    opt.load_state_dict(dist.broadcast_state(opt.state_dict()))
    scheduler.load_state_dict(dist.broadcast_state(scheduler.state_dict()))
    w.grad = Tensor(np.ones(3, np.float32))
    opt.step()
    gathered = dist.all_gather(w.data[None])
    assert (gathered == gathered[0]).all(), gathered

    try:
        dist.broadcast_state({"fn": print} if r == 0 else None)
    except TypeError as error:
        assert "state['fn'] is a builtin_function_or_method" in str(error), str(error)
        assert r == 0 or "on rank 0" in str(error), str(error)
    else:
        raise AssertionError("broadcast_state must refuse a function on every rank")


def _holder(w):
    module = nn.Module()
    module.w = w
    return module


# ---------------------------------------------------------------------- gathers and checks
@check
def all_gather():
    """Unequal first dims (rank 0 has none), concatenated in rank order; a different row shape
    is one error on every rank."""
    r, n = rank_and_size()
    local = np.arange(r * 2 * 3, dtype=np.float64).reshape(r * 2, 3) + 100 * r
    got = dist.all_gather(local)
    want = np.concatenate([np.arange(q * 2 * 3).reshape(q * 2, 3) + 100 * q for q in range(n)])
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
    labels = dist.all_gather(np.array([r] * (r + 1), dtype=np.int64))
    np.testing.assert_array_equal(labels, np.repeat(np.arange(n), np.arange(1, n + 1)))
    try:
        dist.all_gather(np.zeros((1, 2 + (r == 1)), np.float32))
    except ValueError as error:
        assert "rank 1" in str(error), str(error)
    else:
        raise AssertionError("all_gather must refuse different row shapes")


@check
def check_same():
    r, n = rank_and_size()
    dist.check_same_everywhere("config", {"lr": 0.1, "layers": [1, 2]})
    try:
        dist.check_same_everywhere("dataset size", 100 if r != 1 else 99)
    except ValueError as error:
        message = str(error)
        assert "'dataset size' differs across ranks" in message and "rank 1: 99" in message, message
        assert ("rank 0: 100" if n == 2 else "ranks 0, 2: 100") in message, message
    else:
        raise AssertionError("check_same_everywhere must raise on every rank")
    try:
        dist.check_same_everywhere("value", object() if r == 0 else 1)
    except ValueError as error:
        assert "not JSON-able on rank 0" in str(error), str(error)
    else:
        raise AssertionError("a value that is not JSON on one rank must raise on every rank")


@check
def average_buffers():
    r, n = rank_and_size()
    bn = nn.BatchNorm2d(2)
    bn.running_mean.data[...] = r
    bn.running_var.data[...] = [r * r, 1.0]
    bn.num_batches_tracked.data[...] = 5
    dist.average_buffers(bn)
    np.testing.assert_allclose(bn.running_mean.data, np.full(2, (n - 1) / 2))
    np.testing.assert_allclose(bn.running_var.data, [sum(q * q for q in range(n)) / n, 1.0])
    assert int(bn.num_batches_tracked.data) == 5


@check
def sampler():
    """Equal lengths on every rank; together the ranks cover the padded permutation."""
    r, n = rank_and_size()
    sampler = dist.DistributedSampler(10, shuffle=True, seed=3)
    assert (sampler.num_replicas, sampler.rank) == (n, r)
    sampler.set_epoch(2)
    mine = np.array(list(sampler), dtype=np.int64)
    everyone = dist.all_gather(mine[None])
    assert everyone.shape == (n, len(sampler))
    order = sampler.permutation(2)
    padded = np.concatenate([order, order])[: sampler.total_size]
    np.testing.assert_array_equal(everyone.T.reshape(-1), padded)


# ---------------------------------------------------------------------- SyncBatchNorm
@check
def sync_batchnorm():
    """N ranks x batch B through conv -> SyncBatchNorm give what one process gives on the
    whole batch of N·B with plain BatchNorm2d: the same output and running statistics, the
    same averaged parameter gradients, and N times its input gradient (each rank's loss is
    a mean over its own B samples, so the sum of the ranks' losses is N times the
    one-process loss, as in DDP), to float32 rounding."""
    r, n = rank_and_size()
    batch, rng = 3, np.random.default_rng(5)
    x_all = (rng.standard_normal((batch * n, 2, 5, 5)) * 2 + 1).astype(np.float32)
    probe_all = rng.standard_normal((batch * n, 4, 3, 3)).astype(np.float32)

    def build():
        model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4))
        model[1].weight.data[...] = [1.0, 0.5, 2.0, 1.5]
        model[1].bias.data[...] = [0.0, 0.1, -0.2, 0.3]
        for p, seed in zip(model[0].parameters(), (1, 2)):
            p.data[...] = np.random.default_rng(seed).standard_normal(p.shape)
        return model

    reference = build()
    x_ref = Tensor(x_all.copy(), requires_grad=True)
    y_ref = reference(x_ref)
    ((y_ref * Tensor(probe_all)).sum() / (batch * n)).backward()

    model = dist.convert_sync_batchnorm(build())
    assert isinstance(model[1], dist.SyncBatchNorm)
    optimizer = dist.DistributedOptimizer(SGD(model.parameters(), lr=0.0))
    part = slice(r * batch, (r + 1) * batch)
    x = Tensor(x_all[part].copy(), requires_grad=True)
    y = model(x)
    ((y * Tensor(probe_all[part])).sum() / batch).backward()
    optimizer.step()  # lr 0: only the averaging

    tolerance = {"rtol": 1e-5, "atol": 1e-5}
    np.testing.assert_allclose(y.data, y_ref.data[part], **tolerance)
    np.testing.assert_allclose(x.grad.data, n * x_ref.grad.data[part], **tolerance)
    for (name, p), p_ref in zip(model.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(p.grad.data, p_ref.grad.data, err_msg=name, **tolerance)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(
            getattr(model[1], name).data, getattr(reference[1], name).data, err_msg=name, **tolerance
        )
    model.eval()
    np.testing.assert_allclose(model(Tensor(x_all)).data, reference.eval()(Tensor(x_all)).data, **tolerance)


# ---------------------------------------------------------------------- faults
@check
def fail_on_rank_1():
    """Rank 1 raises while the others wait in a collective: every rank must end."""
    if dist.rank() == 1:
        raise RuntimeError("boom on purpose")
    dist.barrier()
    raise AssertionError("the barrier returned although rank 1 failed")


@check
def sigkill_rank_1():
    """Rank 1 is killed while the others wait in a collective: mpiexec must end the job."""
    if dist.rank() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    dist.barrier()
    raise AssertionError("the barrier returned although rank 1 was killed")


@check
def abort_on_rank_1():
    """Rank 1 stops on purpose with dist.abort(3) while the others wait: every rank must end."""
    if dist.rank() == 1:
        dist.abort(3)
        print("abort returned on rank 1", flush=True)
    dist.barrier()
    raise AssertionError("the barrier returned although rank 1 aborted")


def main(names):
    dist.init()
    for name in names:
        CHECKS[name]()
        print(f"ok {name} rank {dist.rank()}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
