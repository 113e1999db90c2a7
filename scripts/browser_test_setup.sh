#!/usr/bin/env bash
# What tests/browser needs, installed through the ordinary clients: Debian's Chromium (the tests never download a
# browser), JupyterLab and Playwright's Python client (its bundled driver only; no `playwright install`), and the
# default model's offline packages (the browser test's model; NL2SQL_BROWSER_MODEL=qwen2.5-coder-0.5b picks the
# 0.5B sibling, installed by the model-small extra).
# Run as root from the repository root; then: python3 -m pytest -m browser tests/browser
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
apt-get update -q
apt-get install -y -q chromium
python3 -m pip install -q jupyterlab playwright
python3 -m pip install -q -e '.[model]'
/usr/bin/chromium --version
python3 -c "import playwright.sync_api, jupyterlab; print('playwright + jupyterlab', jupyterlab.__version__)"
