"""The HTML report in a real browser: headless Chromium renders it, runs its script, logs nothing."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pytest_sslrobust.report.render import render_report

TIMEOUT_S = 60
WINDOW = (1280, 2000)


def _chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
    )
    if found is None:
        pytest.skip("chromium not installed: apt-get install chromium (CI installs it)")
    return found


def _run(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Chromium headless on a local file, with everything that could reach a network off."""
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def console_problems(stderr: str) -> list[str]:
    """Console lines in Chromium's log: uncaught errors, CSP refusals, console.* calls.

    Chromium logs every console message as ``INFO:CONSOLE`` whatever its level (an error
    does not say "error"), so any console line counts: the report's script logs nothing.
    """
    return [
        line
        for line in stderr.splitlines()
        if "CONSOLE" in line or "Uncaught" in line or "Content Security Policy" in line
    ]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The same 3-model document as the structural tests (tests/ is on sys.path there too).
    from _report_helpers import realistic_document

    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_report(realistic_document()), encoding="utf-8")
    return path


def test_screenshot_shows_the_page_without_console_errors(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "shot.png"
    done = _run(
        report,
        tmp_path / "profile",
        f"--screenshot={shot}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert shot.is_file() and shot.stat().st_size > 0
    with Image.open(shot) as image:
        assert image.size == WINDOW
        pixels = np.asarray(image.convert("RGB"))
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    print(f"\nscreenshot {shot}: {len(colours)} colours, grey std {pixels.mean(axis=2).std():.1f}")
    # A blank or unstyled page has a handful of colours; text, badges and tables have many.
    assert len(colours) > 50
    assert pixels.mean(axis=2).std() > 10
    assert console_problems(done.stderr) == []


def test_sorting_script_runs(report: Path, tmp_path: Path) -> None:
    done = _run(report, tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr[-4000:]
    dom = done.stdout
    assert 'id="contracts-table"' in dom
    # Set by the page's script once sorting and filtering are wired up: proves the CSP
    # hash matches and the script ran without throwing.
    assert "data-sortable-ready" in dom
    assert "30 of 30 shown" in dom
    assert 'title="sort by value"' in dom  # headings were made clickable
    assert console_problems(done.stderr) == []


# Clicks the value heading twice, filters by outcome and text, follows a result anchor, and
# writes what it saw into the page for --dump-dom to carry out.
DRIVER = """
var table = document.getElementById("contracts-table");
function shown() {
  return Array.prototype.filter.call(table.tBodies[0].rows, function (row) { return !row.hidden; })
    .map(function (row) { return Number(row.cells[0].textContent); });
}
var seen = {};
var heading = table.tHead.rows[0].cells[6];
heading.click();
seen.ascending = shown();
seen.state = heading.getAttribute("aria-sort");
heading.click();
seen.descending = shown();
var outcome = document.getElementById("contracts-outcome");
outcome.value = "failed";
outcome.dispatchEvent(new Event("change"));
seen.failed = shown();
outcome.value = "";
outcome.dispatchEvent(new Event("change"));
var filter = document.getElementById("contracts-filter");
filter.value = "MAE-VITB16";
filter.dispatchEvent(new Event("input"));
seen.filtered = shown().length;
seen.count = document.getElementById("contracts-count").textContent;
location.hash = "#result-3";
window.dispatchEvent(new HashChangeEvent("hashchange"));
seen.opened = document.getElementById("result-3").open;
var probe = document.createElement("pre");
probe.id = "probe";
probe.textContent = JSON.stringify(seen);
document.body.appendChild(probe);
"""


def test_sorting_and_filtering_work(report: Path, tmp_path: Path) -> None:
    from _report_helpers import realistic_document

    text = report.read_text(encoding="utf-8")
    # The page's CSP admits only its own script; this copy drops it to let the driver run.
    text, dropped = re.subn(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    assert dropped == 1
    page = tmp_path / "driven.html"
    page.write_text(text.replace("</body>", f"<script>{DRIVER}</script></body>"), "utf-8")
    done = _run(page, tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr[-4000:]
    assert console_problems(done.stderr) == []
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.DOTALL)
    assert match, "the driver script did not finish"
    seen = json.loads(html.unescape(match.group(1)))

    results = realistic_document()["results"]
    by_value = sorted(range(1, len(results) + 1), key=lambda n: results[n - 1]["value"])
    assert seen["ascending"] == by_value
    assert seen["state"] == "ascending"
    assert seen["descending"] == by_value[::-1]
    assert seen["failed"] == [n for n, r in enumerate(results, 1) if not r["passed"]]
    assert seen["filtered"] == sum("mae-vitb16" in r["test"] for r in results) == 10
    assert seen["count"] == f"10 of {len(results)} shown"
    assert seen["opened"] is True


def test_console_problems_are_detected(tmp_path: Path) -> None:
    """The check above would pass vacuously if Chromium stopped logging the console."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body><p>x</p>"
        "<script>console.error('boom'); undefinedFunction();</script></body></html>",
        encoding="utf-8",
    )
    done = _run(page, tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr[-4000:]
    problems = console_problems(done.stderr)
    assert any("boom" in line for line in problems)
    assert any("Uncaught" in line for line in problems)
