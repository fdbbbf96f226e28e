"""Regenerates docs/dashboard.png, the README's screenshot: the dashboard over a finished
`kinone-train --sample` run, in headless Debian chromium driven by Playwright.

    hatch run kinone-train --sample --run-dir runs/sample
    hatch run python packages/kinone-dashboard/docs/make_screenshot.py runs sample
"""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(runs_dir: str = "runs", run: str = "sample", out: str | None = None) -> None:
    out = Path(out or Path(__file__).with_name("dashboard.png"))
    port = free_port()
    server = subprocess.Popen(["kinone-dashboard", runs_dir, "--port", str(port)])
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 2600}, device_scale_factor=1)
            page.goto(f"http://127.0.0.1:{port}/?run={run}")
            page.wait_for_selector("[data-testid='stVegaLiteChart'] svg", timeout=60_000)
            page.wait_for_timeout(2500)
            page.screenshot(path=str(out), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(*sys.argv[1:])
