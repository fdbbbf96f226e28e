"""State-dict and checkpoint files against hostile or broken input, and how they land on disk:
zip members read within their declared sizes, unreadable metadata named, files that follow
the user's umask, and the temporaries of killed writes removed."""

from __future__ import annotations

import io
import os
import signal
import stat
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from kinone import nn
from kinone.nn.serialization import METADATA_KEY, remove_stale_temporaries
from kinone.train import load_checkpoint, read_checkpoint_progress, save_checkpoint
from kinone.train.run_log import RunWriter

MiB = 1 << 20


# ---------------------------------------------------------------------- hand-made zip files
def npy_header(shape, dtype=np.float32, fortran_order=False) -> bytes:
    """The .npy magic and header of an array of `shape`, without its data."""
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": fortran_order, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def deflate(pieces) -> bytes:
    """Raw deflate (as zip stores it) of the concatenated byte strings `pieces`, chunk by chunk."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [compressor.compress(piece) for piece in pieces]
    return b"".join(out) + compressor.flush()


def handmade_zip(path, members) -> None:
    """Write a zip whose headers say exactly what each member tuple says:
    (name, method, crc, data as stored, declared inflated size)."""
    local, central = bytearray(), bytearray()
    for name, method, crc, data, declared in members:
        name = name.encode()
        offset = len(local)
        local += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), declared, len(name), 0
        )
        local += name + data
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            0,
            method,
            0,
            0x21,
            crc,
            len(data),
            declared,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))


def peak_memory_of(call) -> int:
    """Bytes of the peak traced allocation while `call()` runs (NumPy's buffers are traced)."""
    tracemalloc.start()
    try:
        call()
    except ValueError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# ---------------------------------------------------------------------- zip members within bounds
def test_a_member_inflating_past_its_declared_size_fails_naming_the_member_without_inflating_it(tmp_path):
    """1 KiB declared (and its CRC of the first KiB, so zipfile trusts it), 64 MiB of zeros inflated."""
    header = npy_header((224,))
    declared = len(header) + 224 * 4
    assert declared == 1024
    zeros = bytes(MiB)
    stream = deflate([header] + [zeros] * 64)
    assert len(stream) < 100_000  # a ~64 KiB file
    first_kib = (header + zeros)[:declared]
    path = tmp_path / "bomb.npz"
    handmade_zip(path, [("weight.npy", zipfile.ZIP_DEFLATED, zlib.crc32(first_kib), stream, declared)])

    with pytest.raises(ValueError) as caught:
        nn.load(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "'weight.npy'" in message
    assert "past its declared 1024 bytes" in message
    assert peak_memory_of(lambda: nn.load(path)) < 4 * MiB


def test_an_array_header_larger_than_its_zip_entry_is_refused_before_allocating(tmp_path):
    """The array header claims 1 GiB; the zip entry holds 1 KiB."""
    header = npy_header((1 << 28,))
    data = header + bytes(1024)
    path = tmp_path / "liar.npz"
    handmade_zip(path, [("weight.npy", zipfile.ZIP_STORED, zlib.crc32(data), data, len(data))])
    with pytest.raises(ValueError, match=r"'weight.npy'.*1073741824 bytes.*1024"):
        nn.load(path)
    assert peak_memory_of(lambda: nn.load(path)) < 4 * MiB


def test_a_size_no_deflate_stream_can_reach_is_refused_before_allocating(tmp_path):
    """Both headers agree on 1 GiB, from a 1 KiB compressed stream: deflate cannot expand that far."""
    header = npy_header((1 << 28,))
    stream = deflate([header, bytes(1000)])
    path = tmp_path / "impossible.npz"
    handmade_zip(path, [("weight.npy", zipfile.ZIP_DEFLATED, 0, stream, len(header) + (1 << 30))])
    with pytest.raises(ValueError, match=r"'weight.npy'.*more than deflate"):
        nn.load(path)
    assert peak_memory_of(lambda: nn.load(path)) < 4 * MiB


def test_a_member_shorter_than_declared_or_with_a_bad_crc_names_the_member(tmp_path):
    header = npy_header((8,))
    data = header + np.arange(8, dtype=np.float32).tobytes()
    short = tmp_path / "short.npz"
    stream = deflate([data[:-4]])
    handmade_zip(short, [("w.npy", zipfile.ZIP_DEFLATED, zlib.crc32(data), stream, len(data))])
    with pytest.raises(ValueError, match=r"short.npz.*'w.npy'.*ends after"):
        nn.load(short)
    bad_crc = tmp_path / "crc.npz"
    handmade_zip(bad_crc, [("w.npy", zipfile.ZIP_STORED, zlib.crc32(data) ^ 1, data, len(data))])
    with pytest.raises(ValueError, match=r"crc.npz.*'w.npy'.*CRC"):
        nn.load(bad_crc)


def test_members_that_are_not_plain_arrays_are_refused(tmp_path):
    objects = npy_header((1,), dtype=object) + b"\x80\x04N."  # a pickle of None
    raw = b"not an array"
    for name, data, expected in [
        ("a.npy", objects, "Python objects"),
        ("a.txt", raw, "not an .npy array"),
        ("a.npy", raw, "not an .npy array"),
    ]:
        path = tmp_path / "odd.npz"
        handmade_zip(path, [(name, zipfile.ZIP_STORED, zlib.crc32(data), data, len(data))])
        with pytest.raises(ValueError, match=expected):
            nn.load(path)
    twice = npy_header((1,)) + bytes(4)
    handmade_zip(path, [("a.npy", zipfile.ZIP_STORED, zlib.crc32(twice), twice, len(twice))] * 2)
    with pytest.raises(ValueError, match="'a.npy' twice"):
        nn.load(path)


def test_files_numpy_writes_still_load(tmp_path):
    """Compressed members, Fortran order, 0-d and empty arrays, structured-free dtypes."""
    arrays = {
        "weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "fortran": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
        "scalar": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 5), np.float32),
        "flags": np.array([True, False]),
        "zeros": np.zeros(100_000, np.float32),  # compresses ~1000:1
    }
    for writer in (np.savez, np.savez_compressed):
        path = tmp_path / f"{writer.__name__}.npz"
        writer(path, **arrays)
        loaded = nn.load(path)
        assert list(loaded) == list(arrays)
        for key, array in arrays.items():
            assert loaded[key].dtype == array.dtype and np.array_equal(loaded[key], array), key
        assert loaded["fortran"].flags.f_contiguous


def test_a_large_state_dict_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    state = {f"layer{i}.weight": rng.standard_normal((256, 1024)).astype(np.float32) for i in range(4)}
    nn.save(state, tmp_path / "big.npz", metadata={"epoch": 2})
    loaded, metadata = nn.load_with_metadata(tmp_path / "big.npz")
    assert metadata == {"epoch": 2} and all(np.array_equal(loaded[k], v) for k, v in state.items())


# ---------------------------------------------------------------------- metadata
def write_with_raw_metadata(path, raw: bytes) -> None:
    np.savez(path, weight=np.ones(2, np.float32), **{METADATA_KEY: np.frombuffer(raw, np.uint8)})


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b'{"epoch": ', "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "a JSON object, not list"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_unreadable_metadata_names_the_file_and_what_was_expected(tmp_path, raw, expected):
    path = tmp_path / "state.npz"
    write_with_raw_metadata(path, raw)
    for read in (nn.load_with_metadata, read_checkpoint_progress):
        with pytest.raises(ValueError) as caught:
            read(path)
        message = str(caught.value)
        assert "\n" not in message and str(path) in message and expected in message


def test_checkpoint_metadata_of_the_wrong_shape_names_the_file(tmp_path):
    model = nn.Linear(2, 2)
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, epoch=1)
    arrays, metadata = nn.load_with_metadata(path)
    for broken, expected in [
        ({**metadata, "progress": [1]}, "'progress'"),
        ({k: v for k, v in metadata.items() if k != "rng"}, "'rng'"),
        ({**metadata, "rng": {"__array__": "rng.nowhere"}}, "'rng.nowhere'"),
    ]:
        nn.save(arrays, path, metadata=broken)
        with pytest.raises(ValueError) as caught:
            load_checkpoint(path, model)
        message = str(caught.value)
        assert "\n" not in message and str(path) in message and expected in message


def test_read_checkpoint_progress_reads_only_the_metadata(tmp_path, monkeypatch):
    model = nn.Linear(300, 300)
    save_checkpoint(tmp_path / "c.npz", model, epoch=4, step=40)
    assert read_checkpoint_progress(tmp_path / "c.npz") == {"epoch": 4, "step": 40}
    assert peak_memory_of(lambda: read_checkpoint_progress(tmp_path / "c.npz")) < 300 * 300 * 4 // 2


# ---------------------------------------------------------------------- modes
@pytest.fixture
def umask():
    previous = os.umask(0o022)

    def set_umask(mask):
        os.umask(mask)

    yield set_umask
    os.umask(previous)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    nn.save({"a": np.ones(2)}, tmp_path / "state.npz")
    save_checkpoint(tmp_path / "checkpoint.npz", nn.Linear(2, 2), epoch=0)
    writer = RunWriter(tmp_path / "run")
    for path in (tmp_path / "state.npz", tmp_path / "checkpoint.npz", writer.run_json):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


# ---------------------------------------------------------------------- stale temporaries
def test_remove_stale_temporaries_removes_only_the_leftovers_of_atomic_writes(tmp_path):
    folder = tmp_path / "checkpoints"
    assert remove_stale_temporaries(folder) == []  # no folder yet
    nn.save({"a": np.ones(2)}, folder / "latest.npz")
    stale = [folder / ".latest.npz.k2j4_x9a.tmp", folder / ".best.npz.0abcdefg.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    keep = [
        folder / "notes.tmp",  # not a hidden temporary
        folder / ".latest.npz.tmp",  # no random part
        folder / ".latest.npz.abc.tmp",  # not mkstemp's 8 characters
        folder / ".hidden",
    ]
    for path in keep:
        path.write_bytes(b"user data")
    (folder / ".dir.npz.abcdefgh.tmp").mkdir()  # only regular files
    outside = tmp_path / "precious.tmp"
    outside.write_bytes(b"precious")
    link = folder / ".link.npz.abcdefgh.tmp"
    link.symlink_to(outside)  # not a regular file either: neither the link nor its target goes

    removed = remove_stale_temporaries(folder)
    assert sorted(removed) == sorted(stale)
    assert not any(path.exists() for path in stale) and all(path.exists() for path in keep)
    assert (folder / "latest.npz").exists() and (folder / ".dir.npz.abcdefgh.tmp").is_dir()
    assert link.is_symlink() and outside.read_bytes() == b"precious"
    assert remove_stale_temporaries(str(folder)) == []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_the_temporary_of_a_killed_write_is_found_and_removed(tmp_path):
    """What a SIGKILL mid-write leaves: the temporary atomic_write made, never renamed nor removed."""
    script = (
        "import os, signal, sys\n"
        "from kinone.nn.serialization import atomic_write\n"
        "def write(f):\n"
        "    f.write(b'x' * 100_000)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "atomic_write(sys.argv[1], write)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "latest.npz")], capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".latest.npz.")
    assert remove_stale_temporaries(tmp_path) == leftovers and not any(tmp_path.iterdir())
