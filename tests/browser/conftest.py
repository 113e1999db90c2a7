"""Browser tests: a real JupyterLab driven by Debian's Chromium through Playwright (marked ``browser``)."""

from __future__ import annotations


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "browser: drives JupyterLab in Chromium through Playwright (needs "
                                       "/usr/bin/chromium, playwright, jupyterlab and a real model; about a minute)")
