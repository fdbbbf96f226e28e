"""`kinone-dashboard`: serve the Streamlit dashboard over a folder of run directories.

    kinone-dashboard                     # runs/ on http://127.0.0.1:8501
    kinone-dashboard runs/ --port 8600   # another port
    kinone-dashboard runs/ --host 0.0.0.0   # reachable from other machines (only when asked)

It runs `python -m streamlit run app.py -- RUNS_DIR` with the server bound to HOST, headless,
and with Streamlit's usage statistics off.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

APP = Path(__file__).with_name("app.py")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kinone-dashboard",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "runs_dir",
        nargs="?",
        type=Path,
        default=Path("runs"),
        help="a folder of run directories, or one run directory (default: runs)",
    )
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 serves every interface)",
    )
    parser.add_argument("--refresh", type=float, default=2.0, help="seconds between live updates (default 2; 0: off)")
    return parser


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """The command line that serves the app."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--",
        str(args.runs_dir.resolve()),
        "--refresh",
        str(args.refresh),
    ]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.port < 65536:
        raise SystemExit(f"kinone-dashboard: --port must be in 1..65535, got {args.port}")
    if not args.runs_dir.exists():
        raise SystemExit(
            f"kinone-dashboard: {args.runs_dir} does not exist (expected a folder of run directories, "
            "e.g. the runs/ that kinone-train writes)"
        )
    command = streamlit_command(args)
    print(f"kinone-dashboard: serving {args.runs_dir.resolve()} on http://{args.host}:{args.port}", flush=True)
    if os.name == "nt":
        import subprocess

        return subprocess.call(command)
    os.execv(command[0], command)  # the server replaces this process: signals reach it directly
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
