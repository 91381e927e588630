"""The system's headless Chromium, driven by Playwright, for the page's tests and benchmark.

Playwright's own browser download is never used (it needs the network): the browser is
Debian's ``chromium`` (scripts/ensure-system.sh installs it), or ``CHROMIUM``. The flags
keep a headless run from reaching out (no background networking, updates, sync, QUIC)
and let it run as root (``--no-sandbox``); Playwright gives each launch a fresh profile.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from starlette.applications import Starlette

from federation.tools.localcluster import free_port

FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).parents[1] / ".artifacts"))


def chromium_path() -> str:
    """The system browser; a missing one is an error, not a skip (``make`` installs it)."""
    configured = os.environ.get("CHROMIUM")
    found = configured or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError(
            "no chromium on PATH: run `make install` (scripts/ensure-system.sh installs "
            "Debian's chromium) or set CHROMIUM=/path/to/chromium"
        )
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=list(FLAGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """A page with every console error and uncaught exception it raised."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def watch(self) -> Tab:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(message.text)

        self.page.on("console", on_console)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return self

    def screenshot(self, name: str) -> Path:
        path = ARTIFACTS / "page" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=path, full_page=True)
        return path


@contextmanager
def uvicorn_thread(app: Starlette) -> Iterator[str]:
    """The app on uvicorn, on a free loopback port, in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
