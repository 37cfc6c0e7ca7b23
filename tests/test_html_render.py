"""The HTML report renders in a real browser: headless Chromium, offline.

Two looks at the page: a screenshot (must not be blank) with Chromium's console log on stderr (no
console errors), and a DOM dump of a copy carrying a probe script that records, after load, every
image's natural size and every error event (a broken image is one) into the DOM.
"""
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

import reports
from _reports_fakes import QUICK, bench_records, check_records, scaling_cases, write_jsonl

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
PROBE = """<script>
window.__errs = [];
window.addEventListener('error', function (e) {
  var t = e.target && e.target.tagName ? e.target.tagName + ' failed to load' : String(e.message);
  window.__errs.push(t);
}, true);
var __ce = console.error;
console.error = function () { window.__errs.push([].slice.call(arguments).join(' ')); __ce.apply(console, arguments); };
window.addEventListener('load', function () {
  var imgs = [].map.call(document.images, function (i) {
    var f = i.closest('figure');
    return {w: i.naturalWidth, h: i.naturalHeight, cw: i.clientWidth, ch: i.clientHeight,
            kind: f ? f.getAttribute('data-kind') : null};
  });
  var p = document.createElement('pre');
  p.id = 'probe';
  p.textContent = JSON.stringify({imgs: imgs, errs: window.__errs, tables: document.querySelectorAll('table').length});
  document.body.appendChild(p);
});
</script>"""


def _ensure_chromium() -> str:
    if not Path(CHROMIUM).exists():
        if shutil.which("apt-get") and os.geteuid() == 0:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run("apt-get update -qq && apt-get install -y -qq chromium", shell=True, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
        if not Path(CHROMIUM).exists():
            pytest.skip(f"{CHROMIUM} is missing and could not be installed (apt-get as root)")
    return CHROMIUM


@pytest.fixture(scope="module")
def chromium() -> str:
    return _ensure_chromium()


def _run(chromium: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=180)


def screenshot(chromium: str, page: Path, tmp: Path) -> tuple[np.ndarray, list[str]]:
    """(RGB pixels of a 1400x3000 screenshot, console-error lines from Chromium's log)."""
    shot = tmp / f"{page.stem}.png"
    r = _run(chromium, tmp, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1400,3000",
             "--virtual-time-budget=5000", page.as_uri())
    assert shot.exists(), f"no screenshot; chromium said:\n{r.stderr[-2000:]}"
    import matplotlib.image

    console = [ln for ln in r.stderr.splitlines() if re.search(r"CONSOLE", ln)
               and re.search(r"error|uncaught|failed", ln, re.I)]
    return matplotlib.image.imread(shot)[..., :3], console


def probe(chromium: str, page: Path, tmp: Path) -> dict:
    """Load a probed copy of ``page`` and return what the probe recorded."""
    text = page.read_text()
    copy = page.with_name(page.stem + ".probe.html")
    copy.write_text(text.replace("<head>", "<head>" + PROBE, 1))
    r = _run(chromium, tmp, "--dump-dom", "--virtual-time-budget=5000", copy.as_uri())
    m = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout, re.S)
    assert m, f"probe did not report; chromium said:\n{r.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1)))


def blank(pixels: np.ndarray) -> bool:
    """A page is blank when under 1 % of its pixels differ visibly from the background."""
    bg = np.median(pixels.reshape(-1, 3), axis=0)
    return float((np.abs(pixels - bg).max(axis=-1) > 0.1).mean()) < 0.01


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html")
    f = reports.load([write_jsonl(out / "bench.jsonl", bench_records(cases=QUICK + scaling_cases(("hw",))))])
    return reports.write_report(f, out, formats=("html",), check_records=check_records(bad="im2col"))["html"]


def test_report_renders_in_chromium(chromium, report, tmp_path):
    pixels, console = screenshot(chromium, report, tmp_path)
    assert not blank(pixels)
    assert console == []
    seen = probe(chromium, report, tmp_path)
    assert seen["errs"] == []
    assert seen["tables"] >= 4
    kinds = {i["kind"] for i in seen["imgs"]}
    assert {"scaling", "roofline", "speedup", "crossover"} <= kinds
    for img in seen["imgs"]:  # every plot decoded and laid out at a visible size
        assert img["w"] > 300 and img["h"] > 200 and img["cw"] > 300 and img["ch"] > 100, img


def test_checks_fire_on_a_broken_page(chromium, tmp_path):
    """Planted faults: a blank page, a broken image, a console error, a script error."""
    empty = tmp_path / "empty.html"
    empty.write_text("<!DOCTYPE html><html><head></head><body></body></html>")
    assert blank(screenshot(chromium, empty, tmp_path)[0])
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><head></head><body><h1>Report</h1>"
                      "<figure data-kind='roofline'><img src='data:image/png;base64,AAAA'></figure>"
                      "<script>console.error('boom'); undefinedFunction();</script></body></html>")
    _, console = screenshot(chromium, broken, tmp_path)
    assert console, "console errors were not seen in chromium's log"
    seen = probe(chromium, broken, tmp_path)
    assert any("boom" in e for e in seen["errs"]) and any("IMG failed" in e for e in seen["errs"])
    assert seen["imgs"][0]["w"] == 0
