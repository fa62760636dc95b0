"""Headless Debian Chromium for the browser tests, driven by Playwright (no browser download).

The flags keep Chromium off the network: this machine and CI have no internet, and without them
Chromium keeps trying to reach Google's services at every start.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"


def require_chromium() -> None:
    """Skip, saying why, only where Chromium is missing; CI installs it (.ci/run)."""
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium chromium-driver)")


@contextlib.contextmanager
def chromium(viewport=(1400, 1000)):
    """A fresh page in a fresh profile; the browser is closed however the test ends."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    executable = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    with tempfile.TemporaryDirectory(prefix="mcollapse-chromium-") as profile:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                args=FLAGS,
                headless=True,
                viewport={"width": viewport[0], "height": viewport[1]},
            )
            try:
                yield context
            finally:
                context.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
