#!/usr/bin/env python3
"""Render a leaderboard suite page (plots, colours) in headless Chromium; check it is not blank.

    python scripts/screenshot_leaderboard.py [--html leaderboard/offline-near.html] [--png OUT.png]

Needs a Chromium binary (``apt-get install -y chromium``; or set ``CHROME=/path/to/chrome``).
The page is opened from a file:// URL with networking disabled, so it must render on its own.
"Not blank" is judged by pixel statistics: enough non-background pixels, several colours (the
plot palette) and contrast. Exit 0 when the page rendered, 1 when it looks blank, 2 when no
browser is available.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageStat

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser() -> str | None:
    """``$CHROME`` or the first Chromium-like binary on PATH."""
    if os.environ.get("CHROME"):
        return os.environ["CHROME"]
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(browser: str, html: Path, png: Path, width: int, height: int) -> None:
    """One headless screenshot of the page; a private profile, no network, no GPU."""
    with tempfile.TemporaryDirectory(prefix="oodbench-chrome-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
               "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
               f"--window-size={width},{height}", f"--screenshot={png}",
               html.resolve().as_uri()]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if not png.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        sys.exit(f"error: {browser} wrote no screenshot (exit {result.returncode}): "
                 + " | ".join(tail))


def pixel_stats(png: Path) -> dict[str, float]:
    """Share of non-white pixels, distinct colours (quantised) and grey-level spread."""
    image = Image.open(png).convert("RGB")
    grey = image.convert("L")
    small = image.resize((image.width // 4, image.height // 4)).quantize(colors=64)
    histogram = grey.histogram()
    ink = sum(histogram[:240]) / (image.width * image.height)
    return {"ink": ink, "colours": float(len([c for c in small.getcolors() or [] if c[0] > 20])),
            "stddev": ImageStat.Stat(grey).stddev[0], "width": image.width,
            "height": image.height}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=Path("leaderboard/offline-near.html"))
    parser.add_argument("--png", type=Path, default=Path("leaderboard-screenshot.png"))
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args()
    if not args.html.exists():
        print(f"error: {args.html} does not exist; run `oodbench leaderboard build` first.")
        return 1
    browser = find_browser()
    if browser is None:
        print("error: no Chromium found; install it (apt-get install -y chromium) or set CHROME.")
        return 2
    args.png.unlink(missing_ok=True)
    screenshot(browser, args.html, args.png, args.width, args.height)
    stats = pixel_stats(args.png)
    print(f"{args.png}: {stats['width']:.0f}x{stats['height']:.0f}, non-white "
          f"{100 * stats['ink']:.1f}%, colours {stats['colours']:.0f}, "
          f"grey stddev {stats['stddev']:.1f}")
    blank = stats["ink"] < 0.02 or stats["colours"] < 4 or stats["stddev"] < 10
    print("looks blank" if blank else "rendered")
    return 1 if blank else 0


if __name__ == "__main__":
    sys.exit(main())
