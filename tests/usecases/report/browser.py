"""A page opened as a person opens it: Debian's headless Chromium (driven by Playwright), a
fresh profile, no network beyond the page; what it loaded, logged and drew."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-quic", "--no-first-run", "--disable-sync"]


@dataclass
class Opened:
    requests: list[str]  # every URL the page asked for, itself first
    console: list[tuple[str, str]]  # (type, text) of every console message
    page_errors: list[str]
    images: list[tuple[str, int]]  # (alt, natural width: 0 when it did not decode)
    screenshot: Path


def open_page(page: Path, profile: Path, screenshot: Path) -> Opened:
    assert shutil.which(CHROMIUM), "Debian's chromium is needed (scripts/setup.sh test installs it)"
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    console: list[tuple[str, str]] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1200, "height": 900})
        try:
            tab = browser.new_page()
            tab.on("request", lambda r: requests.append(r.url))
            tab.on("console", lambda m: console.append((m.type, m.text)))
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(page.as_uri(), wait_until="load")
            images = tab.eval_on_selector_all(
                "img", "els => els.map(e => [e.alt, e.complete ? e.naturalWidth : 0])")
            tab.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return Opened(requests, console, errors, [(alt, int(w)) for alt, w in images], screenshot)


def coloured_pixels(screenshot: Path, colour: tuple[int, int, int], tolerance: int = 8) -> int:
    """How many pixels of the screenshot are (about) this colour."""
    with Image.open(screenshot) as image:
        rgb = image.convert("RGB")
        return sum(count for count, pixel in rgb.getcolors(rgb.width * rgb.height) or []
                   if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True)))
