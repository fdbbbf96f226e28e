"""Stride-phase layouts: an (N, C, H, W) array split by a stride (sh, sw) into its sh·sw
phases, rows ≡ a (mod sh) and columns ≡ b (mod sw). Every kernel offset of a strided window
op then reads or writes one phase with unit-stride rows instead of every sh-th element.

Two layouts, one per use:

- `StridePhases` (pooling): the phases as an (sh, sw, N, C, ceil(H/sh), ceil(W/sw)) array, no
  padding (pooling visits only the window elements inside the input).
- `PhasePlanes` (the depthwise conv): the zero-padded input's phases stored flat per image, so
  that one kernel offset is one contiguous run of C·Hq·Wq elements.

Both split with sh·sw strided slice copies and merge back the same way (no fancy indexing),
on NumPy or CuPy alike.
"""

from __future__ import annotations

import numpy as np

from kinone.autograd.backend import get_array_module


class StridePhases:
    """An (N, C, H, W) array held as its sh·sw stride phases (rows ≡ a mod sh, columns ≡ b mod
    sw), so that the per-offset views of a strided pooling read and write unit-stride rows
    instead of every sh-th element: on (16, 64, 32x32), 3x3 stride 2 float32, max-pool backward
    took 7.4 ms this way against 9.6 ms on stride-2 views of one array (the phase split and the
    final interleave included). With stride 1 it is the plain array, not a copy."""

    def __init__(self, phases, shape, stride):
        self.phases, self.shape, self.stride = phases, shape, stride

    @classmethod
    def zeros(cls, shape, stride, dtype, xp):
        """Zeros of `shape` held as phases, on xp's device (numpy or the CUDA module)."""
        if stride == (1, 1):
            return cls(xp.zeros(shape, dtype=dtype), shape, stride)
        grid = (-(-shape[2] // stride[0]), -(-shape[3] // stride[1]))
        return cls(xp.zeros((*stride, *shape[:2], *grid), dtype=dtype), shape, stride)

    @classmethod
    def split(cls, x, stride):
        if stride == (1, 1):
            return cls(x, x.shape, stride)
        phases = cls.zeros(x.shape, stride, x.dtype, get_array_module(x))
        for a in range(stride[0]):
            for b in range(stride[1]):
                part = x[:, :, a :: stride[0], b :: stride[1]]
                phases.phases[a, b, :, :, : part.shape[2], : part.shape[3]] = part
        return phases

    def view(self, x_part):
        """The elements that x_part (an index from `_window_parts`) selects, as a view."""
        if self.stride == (1, 1):
            return self.phases[x_part]
        rows, cols = x_part[2], x_part[3]
        (sh, sw), last_row, last_col = self.stride, rows.stop - 1, cols.stop - 1
        return self.phases[
            rows.start % sh, cols.start % sw, :, :,
            rows.start // sh : last_row // sh + 1, cols.start // sw : last_col // sw + 1,
        ]  # fmt: skip

    def merge(self) -> np.ndarray:
        """The array as one (N, C, H, W) array."""
        if self.stride == (1, 1):
            return self.phases
        sh, sw = self.stride
        merged = get_array_module(self.phases).empty(self.shape, dtype=self.phases.dtype)
        for a in range(sh):
            for b in range(sw):
                part = merged[:, :, a::sh, b::sw]
                part[...] = self.phases[a, b, :, :, : part.shape[2], : part.shape[3]]
        return merged


class PhasePlanes:
    """The geometry of the depthwise path. Each image of an (N, C, H, W) array, zero-padded, is
    split by the stride into its sh·sw phases (rows ≡ a mod sh, columns ≡ b mod sw) of
    Hq x Wq (Hq = ceil(Hp / sh)) and stored flat as (sh·sw, C, P = Hq·Wq); images follow one
    another in blocks of sh·sw·C·P elements.

    For a kernel offset (d·i, d·j) and an output position (h, w), x_pad[n, c, s·h + d·i, s·w + d·j]
    then sits at  n·block + start(i, j) + c·P + h·Wq + w: within an image one offset is one
    contiguous run of C·P elements. Outputs are computed on the whole Hq x Wq grid and cropped
    to (OH, OW); grid positions past (OH, OW) read whatever follows (the next row, channel or
    image) and are thrown away, and in backward the cotangent is zero there. Elementwise ops
    on long contiguous runs are about twice as fast in NumPy as on strided windows (figures in
    `conv._depthwise_forward`), which is what this layout buys.
    """

    def __init__(self, shape, kernel_size, stride, padding, dilation):
        _, self.channels, self.height, self.width = shape
        self.stride, self.padding = stride, padding
        self.grid = (-(-(self.height + 2 * padding[0]) // stride[0]), -(-(self.width + 2 * padding[1]) // stride[1]))
        self.plane = self.grid[0] * self.grid[1]
        self.run = self.channels * self.plane  # one phase of one image
        self.block = stride[0] * stride[1] * self.run  # one image
        self.starts = []
        for i in range(kernel_size[0]):
            for j in range(kernel_size[1]):
                row, col = i * dilation[0], j * dilation[1]
                phase = (row % stride[0]) * stride[1] + col % stride[1]
                shift = (row // stride[0]) * self.grid[1] + col // stride[1]
                self.starts.append(phase * self.run + shift)
        # An offset's view of t images spans t blocks from its start: room past the last block.
        self.slack = max(self.starts)

    def buffer(self, images, dtype, xp):
        """A zeroed flat buffer for `images` images (xp: numpy or the CUDA module)."""
        return xp.zeros(images * self.block + self.slack, dtype=dtype)

    def _phase_regions(self):
        """For each phase (a, b): the input rows and columns that land in it, as slices, and
        where they land in the phase's grid."""
        (sh, sw), (ph, pw) = self.stride, self.padding
        for a in range(sh):
            first_row = (a - ph) % sh
            rows = slice(first_row, self.height, sh)
            grid_rows = slice((first_row + ph) // sh, (first_row + ph) // sh + len(range(first_row, self.height, sh)))
            for b in range(sw):
                first_col = (b - pw) % sw
                cols = slice(first_col, self.width, sw)
                grid_cols = slice(
                    (first_col + pw) // sw, (first_col + pw) // sw + len(range(first_col, self.width, sw))
                )
                yield a, b, rows, cols, grid_rows, grid_cols

    def _phases(self, flat, images):
        shape = (images, *self.stride, self.channels, *self.grid)
        return flat[: images * self.block].reshape(shape)

    def split(self, x, flat):
        """Write x (t, C, H, W) into `flat`, a buffer for t images whose padding is zero."""
        phases = self._phases(flat, x.shape[0])
        for a, b, rows, cols, grid_rows, grid_cols in self._phase_regions():
            phases[:, a, b, :, grid_rows, grid_cols] = x[:, :, rows, cols]

    def merge(self, flat, out):
        """The inverse of split: write the input region of `flat` into out (t, C, H, W)."""
        phases = self._phases(flat, out.shape[0])
        for a, b, rows, cols, grid_rows, grid_cols in self._phase_regions():
            out[:, :, rows, cols] = phases[:, a, b, :, grid_rows, grid_cols]

    def offset(self, flat, k, images):
        """Kernel offset k's view (t, C, P) of a flat buffer of t images."""
        start = self.starts[k]
        runs = flat[start : start + images * self.block].reshape(images, self.block)[:, : self.run]
        return runs.reshape(images, self.channels, self.plane)
