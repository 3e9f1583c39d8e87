"""Read an HTML page as a reader sees it: headless Chromium loads it, runs its layout, and reports.

Chromium is Debian's ``chromium`` package. ``chromium_or_skip`` installs it where the tests
may (root with apt-get, as on CI) and skips the test with the reason where they may not.
``inspect`` loads a copy of the page with a small script appended that measures, after the
load event, what the checks need (visible code cells, images and their natural width,
elements past the page's right edge, the visible text); ``--dump-dom`` hands that back.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

#: The viewport a reader's laptop gives a page.
WIDTH, HEIGHT = 1280, 900
_MARK = "factory-browser-check"

# Run at the load event (images decoded by then). An element past the right edge counts only
# when no ancestor clips or scrolls it horizontally: a wide table in a scrolling box is fine.
_PROBE = """<script>
window.addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const shown = el => { const r = el.getBoundingClientRect(), s = getComputedStyle(el);
                        return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none"; };
  const contained = el => {
    for (let p = el.parentElement; p && p !== document.body && p !== document.documentElement; p = p.parentElement) {
      if (["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(p).overflowX)) return true;
    }
    return false;
  };
  const name = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
                     (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "");
  const result = {
    width: width,
    scroll_width: document.documentElement.scrollWidth,
    height: document.documentElement.scrollHeight,
    // Markdown cells sit in a .jp-InputArea too (rendered text, not code): only code cells count.
    code_cells: [...document.querySelectorAll(".jp-CodeCell .jp-InputArea, .jp-CodeCell .jp-InputPrompt, div.input_area")]
                .filter(shown).length,
    images: [...document.images].map(i => ({natural_width: i.naturalWidth, src: i.src.slice(0, 60)})),
    overflowing: [...document.body.querySelectorAll("*")]
                 .filter(el => el.id !== "MARK" && shown(el) && el.getBoundingClientRect().right > width + 1 && !contained(el))
                 .slice(0, 10).map(el => name(el) + " right=" + Math.round(el.getBoundingClientRect().right)),
    text: document.body.innerText,
  };
  const pre = document.createElement("pre");
  pre.id = "MARK";
  pre.style.display = "none";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>""".replace("MARK", _MARK)


def chromium() -> str | None:
    """The Chromium executable on PATH, if any."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def chromium_or_skip() -> str:
    """Chromium, installed with apt-get when missing and this process is root; else the test skips."""
    import pytest

    found = chromium()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("headless Chromium is needed: install Debian's `chromium` package (apt-get install chromium)")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0:
            pytest.skip(f"could not install chromium ({' '.join(command)}): {done.stderr.strip()[-300:]}")
    return chromium() or pytest.skip("apt-get installed chromium, but no chromium is on PATH")


def _run(browser: str, *arguments: str, timeout: int = 120) -> str:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--hide-scrollbars", "--no-first-run", "--mute-audio", "--force-device-scale-factor=1", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def inspect(page: Path, browser: str) -> dict:
    """What a reader's browser shows of ``page``: see the module docstring for the fields."""
    page = Path(page)
    with tempfile.TemporaryDirectory(prefix="factory-browser-") as folder:
        # The copy sits beside the original's name in a scratch folder; the reports embed their images.
        probe = Path(folder) / page.name
        text = page.read_text(encoding="utf-8")
        probe.write_text(text.replace("</body>", _PROBE + "</body>") if "</body>" in text else text + _PROBE,
                         encoding="utf-8")
        dom = _run(browser, f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=10000", "--dump-dom",
                   probe.as_uri())
    found = re.search(rf'<pre id="{_MARK}"[^>]*>(.*?)</pre>', dom, re.S)
    if not found:
        raise RuntimeError(f"{page}: the page never finished loading in chromium")
    return json.loads(html.unescape(found.group(1)))


def reader_problems(seen: dict) -> list[str]:
    """What a reader should not meet: code cells, broken images, overflow, tracebacks, NaN, figure reprs."""
    problems = []
    if seen["code_cells"]:
        problems.append(f"{seen['code_cells']} code cells are visible")
    broken = [image["src"] for image in seen["images"] if image["natural_width"] <= 0]
    if broken:
        problems.append(f"{len(broken)} images did not load: {broken[:3]}")
    if seen["overflowing"] or seen["scroll_width"] > seen["width"]:
        problems.append(f"the page is {seen['scroll_width']} px wide in a {seen['width']} px window: "
                        f"{seen['overflowing']}")
    for word, pattern in (("Traceback", r"Traceback"), ("NaN", r"\bNaN\b"), ("<Figure size", r"<Figure size")):
        if re.search(pattern, seen["text"]):
            line = next(line for line in seen["text"].splitlines() if re.search(pattern, line))
            problems.append(f"the text shows {word!r}: {line.strip()[:120]!r}")
    return problems


def screenshot(page: Path, png: Path, browser: str, max_height: int = 2400) -> Path:
    """A PNG of the top of ``page`` (up to ``max_height`` px), palette-compressed for committing."""
    from PIL import Image

    height = min(max(inspect(page, browser)["height"], HEIGHT), max_height)
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(browser, f"--window-size={WIDTH},{height}", "--virtual-time-budget=10000", f"--screenshot={png}",
         Path(page).resolve().as_uri())
    with Image.open(png) as image:
        image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)
    return png
