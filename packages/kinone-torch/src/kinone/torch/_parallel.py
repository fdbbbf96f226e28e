"""`torch.nn.parallel` (registered under that name by kinone.torch): one device only.

Kinone splits a batch over devices with kinone.distributed (one MPI process per device);
`data_parallel` on one device (or none named) runs the module, on several it refuses.
"""

from __future__ import annotations


def data_parallel(module, inputs, device_ids=None, output_device=None, dim=0, module_kwargs=None):
    if device_ids is not None and len(list(device_ids)) > 1:
        raise NotImplementedError(
            f"kinone.torch.nn.parallel.data_parallel: {len(list(device_ids))} devices asked; Kinone runs one device per "
            "process: launch with mpiexec and use kinone.distributed (DistributedSampler, gradient allreduce)"
        )
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    return module(*inputs, **(module_kwargs or {}))


class DataParallel:
    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        raise NotImplementedError(
            "kinone.torch.nn.parallel.DataParallel: Kinone runs one device per process: launch with mpiexec and use "
            "kinone.distributed (DistributedSampler, gradient allreduce)"
        )
