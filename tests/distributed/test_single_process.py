"""kinone.distributed in one process: world-size-1 semantics (every collective returns its
input, so single-process code needs no branches), the launcher detection, the optimizer
wrapper and the batch-norm conversion. This pytest process never initialises MPI; the tests
that need `init()` run it in a child process."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import kinone.distributed as dist
from kinone import nn
from kinone.autograd import Tensor
from kinone.optim import SGD, Optimizer
from kinone.optim.lr_scheduler import StepLR


def _run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---------------------------------------------------------------------- runtime
def test_import_does_not_initialise_mpi():
    out = _run_python("import sys, kinone.distributed as d; print('mpi4py' in sys.modules, d.is_initialized())")
    assert out.split() == ["False", "False"]


def test_init_in_one_process_is_world_size_one_and_idempotent(
    run_mpi,
):  # run_mpi: skips (or fails under CI) without MPI
    out = _run_python(
        "import sys, kinone.distributed as d\n"
        "hook = sys.excepthook\n"
        "d.init(); d.init()\n"
        "print(d.is_initialized(), d.rank(), d.world_size(), d.local_rank(), d.is_main(), sys.excepthook is hook)\n"
        "d.barrier()\n"
    )
    assert out.split() == ["True", "0", "1", "0", "True", "True"]  # one rank: the excepthook is left alone


def test_without_init_rank_zero_of_one():
    assert not dist.is_initialized()
    assert (dist.rank(), dist.world_size(), dist.local_rank(), dist.is_main()) == (0, 1, 0, True)
    dist.barrier()
    with pytest.raises(SystemExit) as exited:
        dist.abort(4)
    assert exited.value.code == 4


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, False),
        ({"PMI_SIZE": "2", "PMI_RANK": "1"}, True),
        ({"PMI_SIZE": "1", "PMI_RANK": "0"}, False),  # mpiexec -n 1
        ({"PMI_SIZE": "2"}, False),  # a size without a rank: not a launched rank
        ({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3"}, True),
        ({"OMPI_COMM_WORLD_SIZE": "1", "OMPI_COMM_WORLD_RANK": "0"}, False),
        ({"PMIX_RANK": "0"}, True),
        ({"SLURM_NTASKS": "8", "SLURM_PROCID": "5"}, True),
        ({"SLURM_NTASKS": "8"}, False),  # inside an allocation, not started by srun
        ({"SLURM_NTASKS": "8", "SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1"}, False),  # srun -n 1 in a big job
        ({"PMI_SIZE": "two", "PMI_RANK": "0"}, False),
    ],
)
def test_launched_under_mpi_reads_the_launchers_variables(environ, expected):
    assert dist.launched_under_mpi(environ) is expected


# ---------------------------------------------------------------------- collectives at world size 1
def test_collectives_return_their_input_in_one_process():
    p = nn.Parameter(np.ones(3, np.float32))
    p.grad = grad = Tensor(np.array([1.0, 2.0, 3.0], np.float32))
    dist.allreduce_gradients([p])
    assert p.grad is grad and p.grad._version_counter is None  # untouched, no version bump
    np.testing.assert_array_equal(grad.data, [1, 2, 3])

    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    dist.broadcast_parameters(model)
    dist.average_buffers(model)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])

    state = {"state": {0: {"m": np.zeros(2)}}, "param_groups": []}
    assert dist.broadcast_state(state) is state
    rows = np.arange(6.0).reshape(3, 2)
    assert dist.all_gather(rows) is rows
    dist.check_same_everywhere("config", {"lr": 0.1})


def test_errors_in_one_process_are_the_same_as_under_mpi():
    with pytest.raises(TypeError, match="check_same_everywhere: 'config' is not JSON-able"):
        dist.check_same_everywhere("config", {"fn": print})
    with pytest.raises(ValueError, match="all_gather: expected an array with at least 1 dim"):
        dist.all_gather(np.float32(1))
    with pytest.raises(ValueError, match=r"broadcast_state: root must be a rank in \[0, 0\], got 1"):
        dist.broadcast_state({}, root=1)
    with pytest.raises(ValueError, match=r"broadcast_parameters: root must be a rank in \[0, 0\]"):
        dist.broadcast_parameters(nn.Linear(1, 1), root=-1)


# ---------------------------------------------------------------------- DistributedOptimizer
def _sgd_model():
    model = nn.Linear(3, 1)
    return model, SGD(model.parameters(), lr=0.1, momentum=0.9)


def test_distributed_optimizer_is_the_wrapped_optimizer_for_everything_but_step():
    model, sgd = _sgd_model()
    opt = dist.DistributedOptimizer(sgd)
    assert isinstance(opt, SGD) and isinstance(opt, Optimizer) and isinstance(opt, dist.DistributedOptimizer)
    assert type(opt).__name__ == "DistributedSGD"
    assert type(dist.DistributedOptimizer(_sgd_model()[1])) is type(opt)  # one subclass per optimizer class
    assert opt.param_groups is sgd.param_groups and opt.defaults is sgd.defaults
    assert opt.averaged_parameters == list(model.parameters())

    scheduler = StepLR(opt, step_size=1, gamma=0.5)  # schedulers accept the wrapper
    x = Tensor(np.ones((2, 3), np.float32))
    model(x).sum().backward()
    opt.step()
    scheduler.step()
    assert sgd.param_groups[0]["lr"] == 0.05
    assert sgd.state[model.weight]["momentum_buffer"] is not None  # the wrapped optimizer stepped
    state = opt.state_dict()
    assert state["param_groups"][0]["lr"] == 0.05

    opt.zero_grad()
    assert model.weight.grad is None
    _, fresh = _sgd_model()
    wrapped = dist.DistributedOptimizer(fresh)
    wrapped.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == 0.05
    opt.foo = 3  # attributes are the wrapped optimizer's
    assert sgd.foo == 3
    with pytest.raises(TypeError, match="already a DistributedOptimizer"):
        dist.DistributedOptimizer(opt)


def test_distributed_optimizer_runs_the_closure_before_stepping():
    model, sgd = _sgd_model()
    opt = dist.DistributedOptimizer(sgd, parameters=[model.weight])
    assert opt.averaged_parameters == [model.weight]
    weight = model.weight.data.copy()

    def closure():
        opt.zero_grad()
        loss = model(Tensor(np.ones((2, 3), np.float32))).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, Tensor)
    np.testing.assert_allclose(model.weight.data, weight - 0.1 * 2.0)


# ---------------------------------------------------------------------- SyncBatchNorm
def _bn_model():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 3), nn.BatchNorm1d(3)),
    )


def test_convert_sync_batchnorm_keeps_parameters_buffers_keys_and_order():
    model = _bn_model()
    model[1].eval()
    params, buffers = list(model.parameters()), list(model.buffers())
    keys = list(model.state_dict())

    converted = dist.convert_sync_batchnorm(model)
    assert converted is model
    assert isinstance(model[1], dist.SyncBatchNorm) and isinstance(model[3][2], dist.SyncBatchNorm)
    assert isinstance(model[1], nn.BatchNorm2d)
    assert all(a is b for a, b in zip(model.parameters(), params)) and len(list(model.parameters())) == len(params)
    assert all(a is b for a, b in zip(model.buffers(), buffers))
    assert list(model.state_dict()) == keys
    assert not model[1].training and model[3][2].training  # each keeps its mode
    assert (model[1].eps, model[1].momentum, model[1].num_features) == (1e-5, 0.1, 4)

    single = nn.BatchNorm2d(3)
    assert isinstance(dist.SyncBatchNorm.convert_sync_batchnorm(single), dist.SyncBatchNorm)


@pytest.mark.parametrize("training", [True, False])
def test_sync_batchnorm_in_one_process_is_batchnorm(training):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 6, 6)).astype(np.float32)
    plain, synced = _bn_model(), dist.convert_sync_batchnorm(_bn_model())
    synced.load_state_dict(plain.state_dict())
    plain.train(training), synced.train(training)
    outputs = []
    for model in (plain, synced):
        xt = Tensor(x, requires_grad=True)
        out = model(xt)
        out.sum().backward()
        outputs.append((out.data, xt.grad.data, [p.grad.data for p in model.parameters()], model.state_dict()))
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
    np.testing.assert_array_equal(outputs[0][1], outputs[1][1])
    for a, b in zip(outputs[0][2], outputs[1][2]):
        np.testing.assert_array_equal(a, b)
    for key in outputs[0][3]:
        np.testing.assert_array_equal(outputs[0][3][key], outputs[1][3][key])


def test_sync_batch_norm_function_refuses_bad_inputs():
    x = Tensor(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"sync_batch_norm: weight must be a Tensor of shape \(3,\)"):
        dist.sync_batch_norm(x, None, None, Tensor(np.ones(2, np.float32)))
    with pytest.raises(ValueError, match="give both running_mean and running_var"):
        dist.sync_batch_norm(x, Tensor(np.zeros(3, np.float32)), None)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        dist.sync_batch_norm(Tensor(np.ones((1, 3), np.float32)), None, None)


def test_a_converted_model_exports_to_onnx(tmp_path):
    """In eval mode SyncBatchNorm is plain batch norm: export writes BatchNormalization."""
    onnx_export = pytest.importorskip("kinone.onnx", reason="kinone-onnx is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    model = dist.convert_sync_batchnorm(_bn_model())
    path = tmp_path / "model.onnx"
    proto = onnx_export.export(model, Tensor(np.ones((2, 2, 6, 6), np.float32)), path)
    assert [n.op_type for n in proto.graph.node].count("BatchNormalization") == 2
    onnx_export.verify(model, path, Tensor(np.random.default_rng(1).standard_normal((2, 2, 6, 6)).astype(np.float32)))
