"""Saving and loading state dicts as `.npz` files: no pickle, atomic writes, bounded reads.

A file holds one array per state-dict key (in order) and, optionally, a JSON metadata object
stored as UTF-8 bytes under `__kinone_metadata__`. Writes go to a temporary file in the same
directory (`.<name>.<8 random characters>.tmp`, made with the user's umask), are fsync'ed,
then renamed over the target: a crash mid-write leaves the previous file whole, and at worst
that temporary, which `remove_stale_temporaries` clears.

Reading does not go through `np.load`, which trusts a file's sizes: it allocates what an
array header declares before reading a byte, and inflates what the zip entry holds. Here
each member is read by `_MemberStream`, which inflates in 1 MiB steps and never past the
size the zip entry declares (more is an error, found after one extra byte); the array header
must agree with that size before anything is allocated; a deflated entry may not declare
more than deflate can produce from its compressed size. So memory is bounded by the sizes
the file declares, and those by what its bytes can hold. Pickled (object) arrays are refused.

`save_bytes` / `load_bytes_with_metadata` are the same format in memory (for a caller that
writes to or reads from an open file object): the bytes are read by the same bounded reader.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import tempfile
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from kinone.autograd import Tensor, backend

METADATA_KEY = "__kinone_metadata__"

_TEMPORARY_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # what atomic_write's mkstemp makes
_READ_CHUNK = 1 << 20
# Deflate emits at most 258 bytes per ~2 bits of input (a longest match with the shortest
# codes): 1032 output bytes per input byte. A larger declared size is a lie.
_DEFLATE_MAX_RATIO = 1032
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, 22 bytes we take from the directory, name/extra lengths
_LOCAL_SIGNATURE = b"PK\x03\x04"


# ---------------------------------------------------------------------------- writing
def _initial_umask() -> int:
    """The umask, read once at import (setting it to read it back is not safe in threads)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK_AT_IMPORT = _initial_umask()


def _current_umask() -> int:
    """The process's umask now, from /proc/self/status (Linux 4.7+), else as it was at import."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK_AT_IMPORT


def atomic_write(path, write) -> None:
    """Call `write(file_object)` on a temporary file beside `path`, then rename it into place.

    The file gets the mode an ordinary `open(path, "w")` would (0o666 less the umask), not
    mkstemp's 0o600, so a dashboard run by another user can read the run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def remove_stale_temporaries(folder) -> list[Path]:
    """Remove the temporaries that killed `atomic_write`s left in `folder` (regular files named
    `.<name>.<8 characters>.tmp`; links and folders are left alone); return their paths.

    Call it when nothing is writing into `folder`, e.g. when a training run starts."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if _TEMPORARY_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed.append(folder / entry.name)
    return removed


def save(state_dict, path, metadata: dict | None = None) -> None:
    """Write `state_dict` (key -> array, Tensor or number) to `path` as `.npz`, atomically.

    Arrays on a CUDA device are copied to the host: files hold NumPy arrays only."""
    arrays = _arrays_to_write(state_dict, metadata)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def save_bytes(state_dict, metadata: dict | None = None) -> bytes:
    """The bytes `save` would write to a file, built in memory."""
    buffer = io.BytesIO()
    np.savez(buffer, **_arrays_to_write(state_dict, metadata))
    return buffer.getvalue()


def _arrays_to_write(state_dict, metadata: dict | None) -> OrderedDict[str, np.ndarray]:
    arrays = OrderedDict()
    for key, value in state_dict.items():
        if key == METADATA_KEY:
            raise ValueError(f"save: the key {METADATA_KEY!r} is reserved")
        array = backend.to_host(value.data if isinstance(value, Tensor) else value)
        if array.dtype.hasobject:
            raise TypeError(
                f"save: {key!r} holds Python objects (dtype object); only numeric arrays can be saved without pickle"
            )
        arrays[key] = array
    if metadata is not None:
        arrays[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)
    return arrays


# ---------------------------------------------------------------------------- reading
def load_with_metadata(path) -> tuple[OrderedDict[str, np.ndarray], dict | None]:
    """Read a file written by `save`: (state dict of arrays in saved order, metadata or None)."""
    arrays = _read_npz(path)
    raw = arrays.pop(METADATA_KEY, None)
    return arrays, None if raw is None else _parse_metadata(raw, path)


def load_bytes_with_metadata(data, name: str = "<bytes>") -> tuple[OrderedDict[str, np.ndarray], dict | None]:
    """`load_with_metadata` of a file's bytes (bytes, bytearray or memoryview) held in memory;
    `name` names them in errors. No size the bytes declare is trusted, as for a path."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"load_bytes_with_metadata: {name}: expected bytes, bytearray or memoryview, got {type(data).__name__}"
        )
    arrays = _read_npz_file(io.BytesIO(data), name)
    raw = arrays.pop(METADATA_KEY, None)
    return arrays, None if raw is None else _parse_metadata(raw, name)


def load(path) -> OrderedDict[str, np.ndarray]:
    """Read the state dict written by `save` (arrays, in the saved order)."""
    return load_with_metadata(path)[0]


def read_metadata(path) -> dict | None:
    """Only the JSON metadata of a file written by `save` (None if it has none); no other
    array is read."""
    raw = _read_npz(path, only=METADATA_KEY).get(METADATA_KEY)
    return None if raw is None else _parse_metadata(raw, path)


def _parse_metadata(raw: np.ndarray, path) -> dict:
    where = f"load: {path}: its metadata ({METADATA_KEY})"
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{where} is not UTF-8 bytes (uint8, 1-d) but {raw.dtype} of shape {raw.shape}")
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{where} is not UTF-8 ({error})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{where} is not valid JSON ({error})") from None
    except RecursionError:
        raise ValueError(f"{where} is nested too deeply to be read as JSON") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{where} must be a JSON object, not {type(metadata).__name__}")
    return metadata


def _read_npz(path, only: str | None = None) -> OrderedDict[str, np.ndarray]:
    """The arrays of an `.npz` file, in stored order (just `only`, if given)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load: no such file: {path}")
    try:
        file = open(path, "rb")
    except OSError as error:
        raise ValueError(f"load: {path} is not a readable Kinone .npz file ({error})") from None
    with file:
        return _read_npz_file(file, path, only)


def _read_npz_file(file, path, only: str | None = None) -> OrderedDict[str, np.ndarray]:
    """The arrays of the `.npz` held by the seekable binary `file` (named `path` in errors)."""
    arrays: OrderedDict = OrderedDict()
    try:
        with zipfile.ZipFile(file) as archive:
            for info in archive.infolist():
                where = f"load: {path}: member {info.filename!r}"
                key = _array_key(info, where)
                if key in arrays:
                    raise ValueError(f"load: {path} holds the member {info.filename!r} twice")
                if only is None or key == only:
                    arrays[key] = _read_member(file, info, where)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"load: {path} is not a readable Kinone .npz file ({error})") from None
    return arrays


def _array_key(info: zipfile.ZipInfo, where: str) -> str:
    if not info.filename.endswith(".npy"):
        raise ValueError(f"{where} is not an .npy array (its name does not end in .npy)")
    return info.filename[: -len(".npy")]


def _read_member(file, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    """One array, read from its zip entry without trusting any size the file declares."""
    stream = _MemberStream(file, info, where)
    shape, fortran_order, dtype = _read_array_header(stream, where)
    nbytes = math.prod(shape) * dtype.itemsize
    if stream.position + nbytes != info.file_size:
        raise ValueError(
            f"{where}: its header declares a {dtype} array of shape {shape} ({nbytes} bytes), but its zip "
            f"entry holds {info.file_size - stream.position} bytes of data"
        )
    array = np.empty(math.prod(shape), dtype)
    if nbytes and stream.readinto(array.view(np.uint8)) != nbytes:
        raise ValueError(f"{where}: ends after {stream.position} of its declared {info.file_size} bytes")
    stream.finish()
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)


def _read_array_header(stream, where: str):
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]}; 1.0 and 2.0 are read")
    except ValueError as error:
        raise ValueError(f"{where} is not an .npy array Kinone reads ({error})") from None
    if dtype.hasobject:
        raise ValueError(f"{where} holds Python objects (dtype {dtype}), which only pickle can read; refused")
    return shape, fortran_order, dtype


class _MemberStream:
    """A zip member's bytes, inflated in bounded steps and never past its declared size.

    `read`/`readinto` stop at the declared size; `finish()` then checks that the entry held
    exactly that much (one more byte is an error, not more memory) and its CRC-32."""

    def __init__(self, file, info: zipfile.ZipInfo, where: str):
        self.where, self.file = where, file
        self.declared, self.position, self.crc, self.expected_crc = info.file_size, 0, 0, info.CRC
        self.compressed_left = info.compress_size
        if info.flag_bits & 0x1:
            raise ValueError(f"{where} is encrypted")
        if info.compress_type == zipfile.ZIP_STORED:
            if info.file_size != info.compress_size:
                raise ValueError(
                    f"{where} is stored uncompressed but declares {info.file_size} bytes in {info.compress_size}"
                )
            self.inflater = None
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            if info.file_size > info.compress_size * _DEFLATE_MAX_RATIO + 64:
                raise ValueError(
                    f"{where} declares {info.file_size} bytes from {info.compress_size} compressed bytes, "
                    f"more than deflate can produce ({_DEFLATE_MAX_RATIO}:1)"
                )
            self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        else:
            raise ValueError(f"{where} uses zip compression method {info.compress_type}; stored and deflated are read")
        file.seek(info.header_offset)
        header = file.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise ValueError(f"{where}: no zip entry at offset {info.header_offset}")
        _, name_length, extra_length = _LOCAL_HEADER.unpack(header)
        start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        if start + info.compress_size > file.seek(0, os.SEEK_END):
            raise ValueError(f"{where} declares {info.compress_size} bytes of data past the end of the file")
        file.seek(start)

    def read(self, size: int) -> bytes:
        buffer = bytearray(min(size, self.declared - self.position))
        return bytes(buffer[: self.readinto(buffer)])

    def readinto(self, buffer) -> int:
        """Fill `buffer` as far as the declared size allows; the number of bytes written."""
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), self.declared - self.position)
        filled = 0
        while filled < wanted:
            step = min(wanted - filled, _READ_CHUNK)
            if self.inflater is None:
                count = self.file.readinto(view[filled : filled + min(step, self.compressed_left)])
                self.compressed_left -= count
            else:
                data = self._inflate(step)
                count = len(data)
                view[filled : filled + count] = data
            if not count:
                break
            self.crc = zlib.crc32(view[filled : filled + count], self.crc)  # while in cache
            filled += count
        self.position += filled
        return filled

    def finish(self) -> None:
        """Check that the member held exactly its declared bytes, with the right CRC-32."""
        if self.position < self.declared:
            raise ValueError(f"{self.where}: ends after {self.position} of its declared {self.declared} bytes")
        if self.inflater is not None and self._inflate(1):
            raise ValueError(f"{self.where}: inflates past its declared {self.declared} bytes; refused")
        if self.crc != self.expected_crc:
            raise ValueError(f"{self.where}: fails its CRC-32 check (the file is corrupt)")

    def _inflate(self, limit: int) -> bytes:
        """Up to `limit` (> 0) more inflated bytes; b"" at the end of the member."""
        inflater = self.inflater
        while not inflater.eof:
            source = inflater.unconsumed_tail
            if not source and self.compressed_left:
                source = self.file.read(min(_READ_CHUNK, self.compressed_left))
                if not source:
                    raise ValueError(f"{self.where}: the file ends inside its compressed data")
                self.compressed_left -= len(source)
            data = inflater.decompress(source, limit)
            if data:
                return data
            if not source:
                return b""  # input used up, nothing pending: a truncated stream, caught by the sizes
        return b""
