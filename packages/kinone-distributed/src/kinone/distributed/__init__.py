"""kinone.distributed: data-parallel training of Kinone models over MPI (mpi4py).

Launched with `mpiexec -n N python train.py` (or srun), one process per CPU socket or GPU:

    from kinone import distributed as dist

    dist.init()                                    # MPI; any rank's exception aborts all ranks
    model = dist.convert_sync_batchnorm(model)     # optional: global batch statistics
    dist.broadcast_parameters(model)               # everyone starts from rank 0's weights
    optimizer = dist.DistributedOptimizer(SGD(model.parameters(), lr=0.1))
    sampler = dist.DistributedSampler(dataset, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=B, sampler=sampler)   # B per process
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad(); loss_fn(model(x), y).backward(); optimizer.step()
        dist.average_buffers(model)                # before validation and checkpoints
        if dist.is_main(): ...                     # only rank 0 writes files

Without `init()`, or in a single process, rank() is 0, world_size() is 1 and every collective
returns its input: the same script runs unchanged without mpiexec. mpi4py is imported by
`init()`, not by `import kinone.distributed`.
"""

from .__about__ import __version__
from .broadcast import broadcast_parameters, broadcast_state
from .collectives import all_gather, average_buffers, check_same_everywhere
from .gradients import DistributedOptimizer, allreduce_gradients
from .runtime import abort, barrier, init, is_initialized, is_main, launched_under_mpi, local_rank, rank, world_size
from .sampler import DistributedSampler
from .sync_batchnorm import SyncBatchNorm, SyncBatchNormTraining, convert_sync_batchnorm, sync_batch_norm

__all__ = [
    "DistributedOptimizer",
    "DistributedSampler",
    "SyncBatchNorm",
    "SyncBatchNormTraining",
    "__version__",
    "abort",
    "all_gather",
    "allreduce_gradients",
    "average_buffers",
    "barrier",
    "broadcast_parameters",
    "broadcast_state",
    "check_same_everywhere",
    "convert_sync_batchnorm",
    "init",
    "is_initialized",
    "is_main",
    "launched_under_mpi",
    "local_rank",
    "rank",
    "sync_batch_norm",
    "world_size",
]
