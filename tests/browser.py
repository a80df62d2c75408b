"""A page opened in a real headless Chromium (Debian's, installed by `make browser`), with what it logged and
fetched: for the report and month page tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Opened:
    page: Any
    """playwright's Page, loaded and ready (``body[data-ready=yes]``)."""
    problems: list[str] = field(default_factory=list)
    """Console errors and warnings, and uncaught page errors."""
    requests: list[str] = field(default_factory=list)
    """Every URL the page fetched, itself included."""


@contextmanager
def opened(html_file: Path) -> Iterator[Opened]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is missing: `make browser` installs it"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            seen = Opened(page)
            page.on("console", lambda m: seen.problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda exc: seen.problems.append(str(exc)))
            page.on("request", lambda req: seen.requests.append(req.url))
            page.goto(html_file.as_uri())
            page.wait_for_selector("body[data-ready=yes]")
            yield seen
        finally:
            browser.close()
