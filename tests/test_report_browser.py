"""report.html in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright): it
loads from disk with no network request, every image renders, the headline accuracy is the JSON's,
no console errors; a screenshot is kept under the test's tmp dir and in artifacts/ (gitignored)."""
import json
import os
import shutil

import pytest

from conftest import ROOT, SAMPLE, invoke

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def test_report_in_chromium(runner, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    res = invoke(runner, "evaluate", "mnist", "--data-dir", SAMPLE, "--limit", "300", "--json",
                 "--report-dir", "rep")
    assert res.exit_code == 0, res.output
    accuracy = json.loads(res.stdout)["accuracy"]
    page_path = tmp_path / "rep" / "report.html"
    outside, problems = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(60_000)
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else outside.append(r.url))
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(page_path.as_uri(), wait_until="load")
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        shown = page.inner_text("#accuracy")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert outside == [] and problems == []
    assert len(widths) == 5 and all(w > 0 for w in widths)
    assert float(shown) == pytest.approx(accuracy, abs=5e-5) and shown == f"{accuracy:.4f}"
    assert (tmp_path / "report.png").stat().st_size > 10_000
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "report.png", artifacts / "report-mnist.png")
