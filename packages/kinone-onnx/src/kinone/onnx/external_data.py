"""External data read by Kinone itself, only from regular files inside the model's folder.

An ONNX tensor may keep its bytes in another file (`data_location = EXTERNAL`, with the keys
`location`, `offset` and `length`), the location being relative to the folder of the model
file. A model file is input like any other: its locations may name `/etc/passwd`, climb out
with `..`, or point through a symbolic link. So `load` reads the model with
`load_external_data=False` and fills every external tensor here, after checking:

- the location is a relative POSIX path with no `..` component (and no backslash, which is
  no separator to ONNX but is one on Windows);
- no component on the way is a symbolic link (checked with `lstat`, and each folder and the
  file opened with `O_NOFOLLOW` relative to the one before, so a link swapped in after the
  check is refused too), and the file is a regular file;
- `offset` and `length` lie inside the file, and the bytes are what the tensor's shape and
  type need.

Anything else is a ValueError of one line naming the tensor, the location and why.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import numpy as np

import onnx
from onnx import helper

_SUB_BYTE = {
    getattr(onnx.TensorProto, name)
    for name in ("INT4", "UINT4", "FLOAT4E2M1", "INT2", "UINT2")
    if hasattr(onnx.TensorProto, name)
}


class _Refused(Exception):
    """Why one tensor's external data is not read (turned into the ValueError by `inline`)."""


def external_tensors(graph: onnx.GraphProto):
    """Every tensor of the graph and its subgraphs that may keep its data outside, with what
    to call it: (label, tensor)."""
    for tensor in graph.initializer:
        yield f"initializer {tensor.name!r}", tensor
    for sparse in graph.sparse_initializer:
        yield f"sparse initializer {sparse.values.name!r}", sparse.values
        yield f"indices of sparse initializer {sparse.values.name!r}", sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            for tensor in ([attribute.t] if attribute.HasField("t") else []) + list(attribute.tensors):
                yield f"tensor {tensor.name!r} of node {node.name!r}", tensor
            for subgraph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from external_tensors(subgraph)


def inline(proto: onnx.ModelProto, folder: Path | None) -> None:
    """Read every external tensor of `proto` into its `raw_data`, from `folder` (the model
    file's folder; None for a ModelProto given as such, whose external data is refused).
    Every location is checked as text before any file is opened."""
    pending = []
    for label, tensor in external_tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            info = {entry.key: entry.value for entry in tensor.external_data}
            with _naming(label, info):
                if folder is None:
                    raise _Refused("a ModelProto has no folder; load the file by its path")
                pending.append((label, tensor, info, _parts(info.get("location", "")), _range(info)))
    for label, tensor, info, parts, span in pending:
        with _naming(label, info):
            tensor.raw_data = _read(folder, parts, span, _expected(tensor))
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


@contextmanager
def _naming(label: str, info: dict):
    """Turn a refusal into the one-line ValueError naming the tensor and its location."""
    try:
        yield
    except _Refused as why:
        raise ValueError(
            f"kinone.onnx.load: {label}: external data location {info.get('location', '')!r}: {why}"
        ) from None


def _range(info: dict) -> tuple[int, int | None]:
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise _Refused(f"offset {info.get('offset')!r} and length {info.get('length')!r} must be integers") from None
    if offset < 0 or (length is not None and length < 0):
        raise _Refused(f"offset {offset} and length {length} must not be negative")
    return offset, length


def _expected(tensor: onnx.TensorProto) -> tuple[int, str] | None:
    """The size of the tensor's raw data and what the tensor is ("a 3x4 FLOAT tensor"); None
    for types whose elements are not whole bytes (or are strings)."""
    if tensor.data_type in _SUB_BYTE or tensor.data_type == onnx.TensorProto.STRING:
        return None
    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
        type_name = onnx.TensorProto.DataType.Name(tensor.data_type)
    except (KeyError, TypeError, ValueError):
        return None
    shape = "x".join(str(d) for d in tensor.dims) or "scalar"
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize, f"a {shape} {type_name} tensor"


def _parts(location: str) -> list[str]:
    if not location:
        raise _Refused("no location given")
    if "\\" in location:
        raise _Refused("a backslash; ONNX locations are POSIX paths relative to the model's folder")
    path = PurePosixPath(location)
    if path.is_absolute():
        raise _Refused("an absolute path; the data must lie in the model's folder")
    parts = [part for part in path.parts if part != "."]
    if ".." in parts:
        raise _Refused("'..' leaves the model's folder")
    if not parts:
        raise _Refused("names the model's folder, not a file")
    return parts


def _read(folder: Path, parts: list[str], span: tuple[int, int | None], expected: tuple[int, str] | None) -> bytes:
    fd = _open_inside(folder, parts)
    with os.fdopen(fd, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        offset, length = span
        if offset > size:
            raise _Refused(f"offset {offset} is past the end of a {size}-byte file")
        if length is None:
            length = size - offset
        elif offset + length > size:
            raise _Refused(f"bytes {offset}..{offset + length} of a {size}-byte file")
        if expected is not None and length != expected[0]:
            raise _Refused(f"holds {length} bytes, {expected[1]} needs {expected[0]}")
        file.seek(offset)
        data = file.read(length)
    if len(data) != length:
        raise _Refused(f"read {len(data)} of {length} bytes (the file changed while being read)")
    return data


def _open_inside(folder: Path, parts: list[str]) -> int:
    """A read-only descriptor of folder/parts..., refusing a symbolic link at any step."""
    if os.open not in os.supports_dir_fd or not hasattr(os, "O_NOFOLLOW"):
        return _open_inside_by_path(folder, parts)
    try:
        dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as error:
        raise _Refused(f"the model's folder {str(folder)!r} cannot be opened ({error.strerror})") from None
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = "/".join(parts[: i + 1])
            _check_kind(_lstat(part, folder, where, dir_fd=dir_fd), where, last)
            flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
            flags |= os.O_NONBLOCK if last else getattr(os, "O_DIRECTORY", 0)
            try:
                next_fd = os.open(part, flags, dir_fd=dir_fd)
            except OSError as error:
                raise _Refused(f"{where!r} cannot be opened ({error.strerror})") from None
            os.close(dir_fd)
            dir_fd = next_fd
            _check_kind(os.fstat(dir_fd), where, last)  # what was opened, not what was looked at
        fd, dir_fd = dir_fd, -1
        return fd
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)


def _open_inside_by_path(folder: Path, parts: list[str]) -> int:
    """The same where the OS has no `dir_fd` or `O_NOFOLLOW` (Windows): lstat every step, then open."""
    path = folder
    for i, part in enumerate(parts):
        path = path / part
        where = "/".join(parts[: i + 1])
        _check_kind(_lstat(path, folder, where), where, i == len(parts) - 1)
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError as error:
        raise _Refused(f"cannot be opened ({error.strerror})") from None


def _lstat(path, folder: Path, where: str, dir_fd: int | None = None) -> os.stat_result:
    try:
        return os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise _Refused(f"no such file in {str(folder)!r}") from None
    except OSError as error:
        raise _Refused(f"{where!r} cannot be looked at ({error.strerror})") from None


def _check_kind(info: os.stat_result, where: str, last: bool) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise _Refused(f"{where!r} is a symbolic link; only files inside the model's folder are read")
    if last and not stat.S_ISREG(info.st_mode):
        raise _Refused("not a regular file")
    if not last and not stat.S_ISDIR(info.st_mode):
        raise _Refused(f"{where!r} is not a folder")
