"""Reading files of a run directory safely.

What a run directory holds is not trusted (runs are copied between machines and users): a file
is read or served only when it is a regular file inside the run directory, reached without
following a link (`open_run_file`, checked at the moment of reading). Nothing here writes: every
file is opened read-only, so the dashboard can watch a run while `kinone.train` writes it, and
cannot damage it.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from pathlib import Path, PurePosixPath

# What the Files section offers for download (paths relative to the run directory).
DOWNLOADS = ("checkpoints/*.npz", "*.onnx")


class UnsafeRunFile(OSError):
    """A path in a run directory that the dashboard refuses to read or serve."""


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
# Without O_NONBLOCK, opening a FIFO waits for a writer: the page would hang.
_OPEN_FILE = _OPEN_FLAGS | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_OPEN_DIR = _OPEN_FLAGS | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_DIRECTORY", 0)
_WALK_WITH_DIR_FD = hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY") and os.open in os.supports_dir_fd


def _relative_parts(relative) -> tuple[str, ...]:
    """The components of a path relative to the run directory; refused when it could leave it."""
    text = str(relative)
    if os.name == "nt":  # "\\" separates folders, and "C:" or "name:stream" name other files
        text = text.replace("\\", "/")
    parts = PurePosixPath(text).parts
    if (
        not parts
        or text.startswith("/")
        or any(part in (".", "..") for part in parts)
        or (os.name == "nt" and any(":" in part for part in parts))
    ):
        raise UnsafeRunFile(f"{relative}: not a regular file inside the run directory (expected a relative path)")
    return parts


def _refused(relative, why: str) -> UnsafeRunFile:
    return UnsafeRunFile(f"{relative}: not a regular file inside the run directory ({why})")


def _open_walking(root: str, parts: tuple[str, ...], relative) -> int:
    """POSIX: open each folder below the run directory, then the file, never following a link
    (O_NOFOLLOW on every component, relative to the folder already open), so a component
    swapped for a link at any moment is refused rather than followed."""
    fd = os.open(root, _OPEN_FLAGS | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, _OPEN_DIR, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refused(relative, f"{part} is a link or not a folder") from None
                raise
            os.close(fd)
            fd = inner
        try:
            return os.open(parts[-1], _OPEN_FILE, dir_fd=fd)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.EISDIR):
                raise _refused(relative, "a link or a folder") from None
            raise
    finally:
        os.close(fd)


def _open_checking(root: str, parts: tuple[str, ...], relative) -> int:
    """Elsewhere (Windows): the path must resolve to itself inside the run directory, and the
    file opened must be the one that path named."""
    path = os.path.join(root, *parts)
    if os.path.realpath(path) != path or os.path.islink(path):
        raise _refused(relative, "it resolves elsewhere")
    before = os.lstat(path)
    fd = os.open(path, _OPEN_FILE)
    after = os.fstat(fd)
    if (before.st_dev, before.st_ino) != (after.st_dev, after.st_ino):
        os.close(fd)
        raise _refused(relative, "it changed while being opened")
    return fd


def open_run_file(run_dir, relative):
    """Open `relative` (a path inside `run_dir`, e.g. "checkpoints/best.npz") for reading in
    binary mode, only when it is a regular file reached without following any link; otherwise
    UnsafeRunFile (FileNotFoundError when it does not exist). Checked on every call, at the
    moment of opening: a file swapped for a link after it was listed is refused."""
    parts = _relative_parts(relative)
    root = os.path.realpath(run_dir)
    fd = (_open_walking if _WALK_WITH_DIR_FD else _open_checking)(root, parts, relative)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refused(relative, "a FIFO, device or socket" if not stat.S_ISDIR(mode) else "a folder")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_download(relative: str) -> bool:
    """Whether `relative` (a posix path inside a run) is of a kind the Files section offers."""
    return any(
        fnmatch.fnmatchcase(relative, pattern) and relative.count("/") == pattern.count("/") for pattern in DOWNLOADS
    )


def run_files(run_dir) -> list[Path]:
    """Files worth downloading: checkpoints/*.npz and *.onnx, each only when it is a regular file
    inside the run directory (not a link, not a FIFO or device; `checkpoints` not a link)."""
    run_dir = Path(run_dir)
    candidates = []
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and not checkpoints.is_symlink():
        candidates += sorted(checkpoints.glob("*.npz"))
    candidates += sorted(run_dir.glob("*.onnx"))
    return [path for path in candidates if _is_plain_file(run_dir, path)]


def _is_plain_file(run_dir: Path, path: Path) -> bool:
    try:
        with open_run_file(run_dir, path.relative_to(run_dir).as_posix()):
            return True
    except OSError:
        return False


def read_run_file(run_dir, relative) -> bytes:
    """The bytes of a file the Files section offers (`DOWNLOADS`), checked as `open_run_file`
    does at the moment of reading; UnsafeRunFile for anything else."""
    parts = _relative_parts(relative)
    if not is_download("/".join(parts)):
        raise _refused(relative, f"only {' and '.join(DOWNLOADS)} are served")
    with open_run_file(run_dir, "/".join(parts)) as f:
        return f.read()
