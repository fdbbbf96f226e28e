"""kinone.nn.serialization's bytes entry points: `save_bytes` builds a file's bytes in memory,
`load_bytes_with_metadata` reads them with the same bounded reader as a path (no size in the
bytes is trusted)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import pytest

from kinone.nn.serialization import (
    load_bytes_with_metadata,
    load_with_metadata,
    save,
    save_bytes,
)


def test_bytes_round_trip_keeps_order_dtypes_and_metadata():
    state = {"b": np.arange(6, dtype=np.int64).reshape(2, 3), "a": np.ones((3,), np.float32)}
    data = save_bytes(state, metadata={"epoch": 2})
    arrays, metadata = load_bytes_with_metadata(data)
    assert list(arrays) == ["b", "a"] and metadata == {"epoch": 2}
    assert arrays["b"].dtype == np.int64
    np.testing.assert_array_equal(arrays["b"], state["b"])


def test_bytes_are_what_save_writes_to_a_path(tmp_path):
    state = {"w": np.linspace(0, 1, 5, dtype=np.float32)}
    save(state, tmp_path / "w.npz", metadata={"k": [1, 2]})
    arrays, metadata = load_bytes_with_metadata((tmp_path / "w.npz").read_bytes())
    np.testing.assert_array_equal(arrays["w"], state["w"])
    assert metadata == {"k": [1, 2]}
    from_path = load_with_metadata(tmp_path / "w.npz")
    assert list(from_path[0]) == list(arrays)


def test_a_bytes_like_object_is_read_too():
    data = save_bytes({"x": np.zeros(2, np.float32)})
    arrays, metadata = load_bytes_with_metadata(memoryview(data))
    assert metadata is None and arrays["x"].shape == (2,)


def test_a_member_declaring_more_data_than_the_bytes_hold_is_refused():
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 28,)})
    body = header.getvalue()
    name, crc = b"big.npy", zlib.crc32(body)
    declared = len(body) + 4 * (1 << 28)  # a gigabyte the bytes do not hold
    sizes = (0x21, crc, declared, declared, len(name), 0)  # dos date, crc, compressed, size, name, extra
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, *sizes) + name + body
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, *sizes, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local), 0)
    with pytest.raises(ValueError, match="past the end of the file"):
        load_bytes_with_metadata(bytes(local + central + end), name="upload.pt")


def test_pickled_arrays_and_garbage_are_refused_naming_the_source():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("obj.npy", "w") as member:
            np.lib.format.write_array(member, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="holds Python objects"):
        load_bytes_with_metadata(buffer.getvalue())
    with pytest.raises(ValueError, match=r"load: model\.pt is not a readable Kinone \.npz file"):
        load_bytes_with_metadata(b"not a zip at all", name="model.pt")
    with pytest.raises(TypeError, match="bytes"):
        load_bytes_with_metadata("a str is not bytes")


def test_save_bytes_refuses_the_reserved_key_and_object_arrays():
    with pytest.raises(ValueError, match="reserved"):
        save_bytes({"__kinone_metadata__": np.zeros(1)})
    with pytest.raises(TypeError, match="Python objects"):
        save_bytes({"o": np.array([None], dtype=object)})
    arrays, metadata = load_bytes_with_metadata(save_bytes({}, metadata={"a": 1}))
    assert not arrays and metadata == {"a": 1}
