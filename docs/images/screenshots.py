"""The README's pictures, taken in headless Chromium from a real sweep: run it again after the UI changes.

    .venv/bin/python docs/images/screenshots.py [--folder DIR]

In DIR (default: a temporary folder) it sweeps experiments/digits-sweep.yaml, writes its report,
serves ``cnnkeras ui`` and saves into docs/images/: the landing page, the sweep's trials in MLflow
(runs table and comparison), a trial's run page and the report.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
CNNKERAS = str(Path(sys.executable).with_name("cnnkeras"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--port", type=int, default=5870)
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="cnnkeras-shots-"))
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "digits-sweep.yaml"
    shutil.copy(REPO / "experiments" / "digits-sweep.yaml", config)
    env_uri = f"sqlite:///{folder / 'mlflow.db'}"
    if not (folder / ".cnnkeras" / "digits-sweep.journal").exists():
        subprocess.run([CNNKERAS, "sweep", str(config), "-q", "--tracking-uri", env_uri], cwd=folder, check=True)
        subprocess.run([CNNKERAS, "report", str(config), "--uri", env_uri], cwd=folder, check=True)

    from playwright.sync_api import sync_playwright

    import cnnkeras.api

    running = cnnkeras.api.ui(root=folder, uri=env_uri, port=args.port, reports=folder / "reports", wait=False)
    try:
        running.wait_ready()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                                 args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(running.landing)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(OUT / "landing.png"))
            row = page.locator('tr[data-study="digits-sweep"]')
            for name, link, wait in (("mlflow-sweep", "runs", "trial-"), ("mlflow-compare", "compare",
                                                                          "Parallel Coordinates")):
                page.goto(running.landing.rstrip("/") + row.locator(f"a.sweep-{link}").get_attribute("href"))
                page.get_by_text(wait).first.wait_for(timeout=90000)
                page.wait_for_timeout(3000)
                page.screenshot(path=str(OUT / f"{name}.png"))
                page.goto(running.landing)
            report = folder / "reports" / "digits-sweep.html"
            page.goto(report.resolve().as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=60000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(OUT / "report.png"))
            page.locator("#predictions").scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            page.screenshot(path=str(OUT / "report-predictions.png"))
            browser.close()
    finally:
        running.stop()
    print(f"screenshots in {OUT} (from {folder})")


if __name__ == "__main__":
    main()
