"""`kinone-prepare`: decode and resize every NIH ChestX-ray14 image once, into an image cache.

    kinone-prepare --data-dir /data/nih --out /data/nih-256 --image-size 256 --workers 8
    kinone-train --data-dir /data/nih --cache /data/nih-256 ...       # then train from it

Every image the metadata CSV names is converted to 8-bit gray and resized with Pillow
(antialiased) to --image-size, into memory-mappable uint8 .npy shards with a JSON index
(kinone.data.cache). Interrupted (Ctrl-C, a crash, a full disk), the same command continues
where it stopped. A source that cannot be decoded is named, listed in the index under
"corrupt", and does not stop the rest. A finished cache whose sources changed since (size or
mtime; images added or removed) is refused with the reason; --update re-prepares only what
changed. A cache made with other parameters (--image-size, --resample) is refused.

Errors are one line (exit 2: a flag; exit 1: the data or the cache); --debug shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .cache import RESAMPLE_FILTERS, CacheError, prepare_cache


class UsageError(Exception):
    """A flag is wrong: exit code 2."""


class DataError(Exception):
    """The data or the cache is wrong: exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints the whole usage block)
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kinone-prepare",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--data-dir", type=Path, required=True, help="the NIH ChestX-ray14 folder (Data_Entry_2017*.csv, images*/)")
    add("--out", type=Path, required=True, help="the cache folder (created; an interrupted one is continued)")
    add("--image-size", type=int, default=256, help="side of the square cached images, in pixels (default 256)")
    add(
        "--resample",
        choices=sorted(RESAMPLE_FILTERS),
        default="bilinear",
        help="Pillow's resampling filter, antialiased when shrinking (default bilinear: what "
        "kinone-train's Resize uses, so the cache holds the pixels training from the PNGs sees)",
    )
    add(
        "--workers",
        type=int,
        default=None,
        help=f"decoding processes (default: every core, {os.cpu_count()} here; 0: this process)",
    )
    add(
        "--update",
        action="store_true",
        help="the cache is outdated: keep what still matches, prepare only new and changed images",
    )
    add("--shard-size", type=int, help="images per shard (default: about 64 MB of pixels)")
    add("--no-progress", action="store_true", help="no progress bar (it is off anyway when not on a terminal)")
    add("--debug", action="store_true", help="show the traceback of an error")
    return parser


def check_args(args) -> None:
    if args.image_size < 8:
        raise UsageError(f"--image-size {args.image_size}: expected at least 8")
    if args.workers is None:
        args.workers = os.cpu_count() or 1
    if args.workers < 0:
        raise UsageError(f"--workers {args.workers}: expected 0 or more")
    if args.shard_size is not None and args.shard_size < 1:
        raise UsageError(f"--shard-size {args.shard_size}: expected at least 1")
    if not args.data_dir.is_dir():
        raise UsageError(f"--data-dir {args.data_dir} does not exist (expected the NIH ChestX-ray14 folder)")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a folder")
    if args.out.resolve() == args.data_dir.resolve():
        raise UsageError(f"--out {args.out} is --data-dir itself; choose a folder of its own for the cache")


def run(args) -> int:
    check_args(args)
    result = prepare_cache(
        args.data_dir,
        args.out,
        image_size=args.image_size,
        resample=args.resample,
        workers=args.workers,
        update=args.update,
        shard_size=args.shard_size,
        progress=None if not args.no_progress else False,
        report=lambda line: print(f"kinone-prepare: {line}", file=sys.stderr, flush=True),
    )
    for name, reason in result.corrupt.items():
        print(f"kinone-prepare: corrupt image {name}: {reason}", file=sys.stderr)
    notes = []
    if result.corrupt:
        notes.append(f'{len(result.corrupt)} corrupt (listed in index.json under "corrupt")')
    if result.missing:
        notes.append(f"{len(result.missing)} named in the CSV have no file")
    if result.dropped:
        notes.append(f"{len(result.dropped)} whose source is gone were dropped")
    rate = result.written_shards and f", {result.seconds:.0f} s"
    print(
        f"kinone-prepare: {result.root}: {result.images} images of {args.image_size} x {args.image_size} "
        f"({result.written_shards} shard(s) written, {result.kept_shards} kept{rate or ''})"
        + (f"; {'; '.join(notes)}" if notes else "")
    )
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UsageError as error:
        print(f"kinone-prepare: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "kinone-prepare: interrupted; the finished shards are kept: run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    except Exception as error:
        if args.debug:
            raise
        known = isinstance(error, (DataError, CacheError, OSError, ValueError))
        hint = "" if known else " (--debug shows the traceback)"
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"kinone-prepare: {message}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
