"""The dashboard in a real browser: `kinone-dashboard` serves a runs folder on a free localhost
port; headless Debian chromium, driven by Playwright, waits for the charts, checks what they
show, sees the page follow lines appended to metrics.jsonl, and saves a screenshot.

Needs Playwright's Python package and /usr/bin/chromium (Debian's `chromium`; never
`playwright install`). Without them the test is skipped, except under CI (CI set), where it fails.
The screenshot goes to $KINONE_ARTIFACTS_DIR, else tests/dashboard/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dashboard_rundirs import snapshot, train_line, val_line, write_metrics, write_run_json

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 90_000


def _requirements() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


def _require_browser() -> None:
    missing = _requirements()
    if missing and os.environ.get("CI"):
        pytest.fail(f"the browser test must run in CI: {missing}")
    if missing:
        pytest.skip(missing)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command() -> str:
    """The installed `kinone-dashboard` console script of this environment."""
    local = Path(sys.executable).with_name("kinone-dashboard")
    found = str(local) if local.exists() else shutil.which("kinone-dashboard")
    assert found, "the kinone-dashboard command is not installed in this environment"
    return found


def _artifacts_dir() -> Path:
    path = Path(os.environ.get("KINONE_ARTIFACTS_DIR") or Path(__file__).parent / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def server(tmp_path):
    """A live run under a fresh runs folder, served by `kinone-dashboard` on a free port."""
    runs = tmp_path / "runs"
    live = runs / "live"
    write_run_json(live, "running")  # this test process plays the trainer
    write_metrics(live, steps=40, epochs=2)
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(
        [_command(), str(runs), "--port", str(port), "--refresh", "1"], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"kinone-dashboard did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield url, runs
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _svg_texts(chart) -> list[str]:
    return chart.locator("svg text").all_text_contents()


def test_dashboard_in_chromium(server):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    url, runs = server
    live = runs / "live"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.set_default_timeout(TIMEOUT_MS)
            # The runs list.
            page.goto(url)
            expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
            expect(page.locator("[data-testid='stDataFrame']")).to_be_visible()

            # Open the run; wait for its charts to be drawn (Vega renders them as SVG).
            page.goto(url + "/?run=live")
            expect(page.get_by_role("heading", name="live", exact=True)).to_be_visible()
            loss = page.locator("[data-testid='stVegaLiteChart']").filter(has_text="loss (train and validation)")
            expect(loss.locator("svg path").first).to_be_attached()
            expect(page.locator("[data-testid='stVegaLiteChart'] svg")).to_have_count(7)
            texts = _svg_texts(loss)
            assert "train" in texts and "validation" in texts and "step" in texts  # legend and axis
            assert "40" in texts  # the x axis reaches the last step
            assert "100" not in texts
            auroc = page.locator("[data-testid='stVegaLiteChart']").filter(has_text="AUROC per finding")
            assert "Atelectasis" in _svg_texts(auroc) and "Hernia" in _svg_texts(auroc)
            step = (
                page.locator("[data-testid='stMetric']")
                .filter(has_text="step")
                .locator("[data-testid='stMetricValue']")
            )
            expect(step.first).to_have_text("40")

            # The trainer writes on: the page follows without a reload.
            with open(live / "metrics.jsonl", "a") as f:
                f.writelines([train_line(s, 1) for s in range(41, 101)] + [val_line(100, 1, 0.93)])
            before = snapshot(runs)
            expect(step.first).to_have_text("100")
            page.wait_for_function(
                """() => [...document.querySelectorAll("[data-testid='stVegaLiteChart']")]
                          .filter(c => c.textContent.includes("loss (train and validation)"))
                          .some(c => [...c.querySelectorAll("svg text")].some(t => t.textContent === "100"))""",
                timeout=TIMEOUT_MS,
            )
            val = (
                page.locator("[data-testid='stMetric']")
                .filter(has_text="val mean AUROC")
                .locator("[data-testid='stMetricValue']")
            )
            expect(val.first).to_have_text("0.9300")
            page.wait_for_timeout(1500)  # let the last redraw settle before the picture
            shot = _artifacts_dir() / "dashboard-browser.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            assert snapshot(runs) == before  # the app wrote nothing into the run directory
        finally:
            browser.close()


def test_graph_view_in_chromium(server):
    """The Graph view draws graph.dot with Streamlit's own Graphviz (no system binary): one SVG
    node per node of the file, Kinone's own attributes notwithstanding."""
    _require_browser()
    import numpy as np
    from playwright.sync_api import expect, sync_playwright

    from kinone import nn

    url, runs = server
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    dot = nn.graph(model, np.zeros((1, 1, 4, 4), np.float32), expand=True)
    (runs / "live" / "graph.dot").write_text(dot)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url + "/?run=live")
            expect(page.get_by_role("heading", name="live", exact=True)).to_be_visible()
            page.get_by_test_id("stSidebar").get_by_text("Graph", exact=True).click()
            expect(page.get_by_role("heading", name="live: model graph")).to_be_visible()
            nodes = page.locator("[data-testid='stGraphVizChart'] svg g.node")
            expect(nodes).to_have_count(dot.count("kinone_kind="))
            assert "Conv2d" in " ".join(nodes.all_text_contents())
        finally:
            browser.close()
