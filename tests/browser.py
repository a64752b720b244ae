"""Test helpers for the HTML report: a headless Chromium (installed by the test set-up when missing) and PNG pixels."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    """The first headless-capable Chromium on PATH."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def ensure_chromium() -> str:
    """A Chromium binary; installs Debian's `chromium` package when missing (as root or in CI), else skips."""
    found = find_browser()
    if found:
        return found
    may_install = os.environ.get("CI") == "true" or (hasattr(os, "geteuid") and os.geteuid() == 0)
    if not may_install or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be installed here (needs apt-get as root, or CI=true)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        done = subprocess.run([*sudo, *command], env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            pytest.skip(f"installing chromium failed ({' '.join(command)}): {done.stderr.strip()[-300:]}")
    found = find_browser()
    if not found:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    return found


def screenshot(browser: str, page: Path, png: Path, size: str = "1280,2400") -> subprocess.CompletedProcess:
    """Render a local page in headless Chromium into a PNG, with networking disabled."""
    profile = png.parent / "chromium-profile"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={size}",
               "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
               f"--screenshot={png}", page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and raw RGB(A) rows of an 8-bit non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and interlace == 0 and colour_type in (2, 6), f"unsupported PNG {header}"
    step = 4 if colour_type == 6 else 3
    raw, stride, rows, previous = zlib.decompress(idat), width * step, [], bytes(width * step)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - step] if x >= step else 0
            up, corner = previous[x], previous[x - step] if x >= step else 0
            line[x] = (line[x] + _predict(kind, left, up, corner)) & 0xFF
        rows.append(bytes(line))
        previous = bytes(line)
    return width, height, rows


def _predict(kind: int, left: int, up: int, corner: int) -> int:
    """The PNG filter predictor of one byte."""
    if kind == 0:
        return 0
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return (left + up) // 2
    estimate = left + up - corner
    a, b, c = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
    return left if a <= b and a <= c else (up if b <= c else corner)


def colours(path: Path, every: int = 4) -> dict[bytes, int]:
    """How many sampled pixels have each colour (every `every`-th pixel of every `every`-th row)."""
    width, _height, rows = png_pixels(path)
    step = len(rows[0]) // width
    counts: dict[bytes, int] = {}
    for row in rows[::every]:
        for x in range(0, width, every):
            pixel = row[x * step:x * step + 3]
            counts[pixel] = counts.get(pixel, 0) + 1
    return counts
