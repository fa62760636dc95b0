"""The reader's path in a real browser: JupyterLab, notebook 01 at profile ci, Run All, figures.

Nbval runs the notebooks' code; this test runs what a reader does (``make lab``, edit the
parameters cell, Run All Cells) in headless Chromium, so a broken kernel spec, a figure that only
renders headless, or a Lab that cannot open the notebook shows up here.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from _browser import SCREENSHOTS, chromium, free_port, require_chromium

from mcollapse import paths

pytestmark = pytest.mark.browser

NOTEBOOK = "01_gaussian_theory.ipynb"
START_TIMEOUT = 120  # seconds for the server, the page and the kernel to come up
RUN_TIMEOUT = 600  # seconds for Run All at profile ci (about 15-60 s on 2 cores)


@pytest.fixture
def lab(tmp_path):
    """``jupyter lab`` from the project's environment on loopback with a token, as ``make lab``
    starts it, on a copy of the notebook, with its own settings; shut down however the test ends.
    """
    require_chromium()
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(paths.NOTEBOOKS / NOTEBOOK, root / NOTEBOOK)
    # Every cell in the page, not only those scrolled into view, so all figures can be checked;
    # no toast asking about Jupyter news over the notebook.
    _setting(tmp_path, "notebook-extension/tracker", windowingMode="none")
    _setting(tmp_path, "apputils-extension/notification", fetchNews="false")
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # figures render inline
    env.update(
        JUPYTER_PREFER_ENV_PATH="1",  # the project's python3 kernel, as make lab sets it
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    command = [
        str(Path(sys.executable).parent / "jupyter"),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = open(tmp_path / "lab.log", "wb")  # noqa: SIM115 (closed below, after the server)
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _api(url, token, "/api/status") is not None, START_TIMEOUT, "server start")
        yield {"url": url, "token": token, "root": root, "log": tmp_path / "lab.log"}
    finally:
        _stop(server, url, token)
        log.close()


def test_notebook_01_runs_in_jupyterlab_at_profile_ci(lab):
    url, token = lab["url"], lab["token"]
    source = nbformat.read(lab["root"] / NOTEBOOK, as_version=4)
    param_index = next(
        i for i, c in enumerate(source.cells) if "parameters" in c.metadata.get("tags", [])
    )
    n_code = sum(c.cell_type == "code" for c in source.cells)
    with chromium() as context:
        page = context.new_page()
        page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}&reset", timeout=START_TIMEOUT * 1000)
        cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
        cells.nth(len(source.cells) - 1).wait_for(timeout=START_TIMEOUT * 1000)
        _wait(lambda: _kernel_state(url, token) == "idle", START_TIMEOUT, "kernel start")

        # The reader sets the profile in the parameters cell ...
        editor = cells.nth(param_index).locator(".cm-content")
        editor.click()
        page.keyboard.press("Control+Home")
        page.keyboard.press("Shift+End")
        page.keyboard.insert_text('profile = "ci"')
        assert editor.inner_text().splitlines()[0] == 'profile = "ci"'

        # ... and runs all cells from the Run menu.
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt")

        def finished():
            texts = prompts.all_inner_texts()
            done = len(texts) == n_code and all(re.fullmatch(r"\[\d+\]:", t) for t in texts)
            return done and _kernel_state(url, token) == "idle"

        _wait(finished, RUN_TIMEOUT, "Run All Cells", poll=2)

        errors = page.locator(".jp-OutputArea-output", has_text="Traceback").count()
        images = page.locator(".jp-OutputArea-output img")
        widths = [img.evaluate("i => i.complete ? i.naturalWidth : 0") for img in images.all()]
        images.first.scroll_into_view_if_needed()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "lab_01_ci.png"))

        # Save, then read back what Lab wrote: every code cell ran, none ended in an error.
        cells.nth(0).click()
        page.keyboard.press("Control+s")
        saved_path = lab["root"] / NOTEBOOK
        _wait(lambda: _all_ran(saved_path), 60, "saving the notebook")

    saved = nbformat.read(saved_path, as_version=4)
    assert saved.cells[param_index].source.startswith('profile = "ci"')
    code = [c for c in saved.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a code cell did not run"
    failed = [c.source[:60] for c in code if any(o.output_type == "error" for o in c.outputs)]
    assert not failed and errors == 0, f"cells with errors: {failed}"
    n_png = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert n_png >= 7, f"expected the notebook's 7 figures inline, found {n_png}"
    assert len(widths) >= n_png and all(w > 0 for w in widths), f"image widths {widths}"


def _setting(tmp_path: Path, plugin: str, **values) -> None:
    path = tmp_path / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))


def _api(url: str, token: str, path: str):
    """JSON from the server's REST API, or None while it does not answer."""
    request = urllib.request.Request(f"{url}{path}", headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


def _kernel_state(url: str, token: str) -> str | None:
    sessions = _api(url, token, "/api/sessions") or []
    states = [s["kernel"]["execution_state"] for s in sessions if s.get("kernel")]
    return states[0] if len(states) == 1 else None


def _all_ran(path: Path) -> bool:
    """True once the file on disk has an execution count in every code cell."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 (half-written while Lab saves)
        return False
    return all(c.execution_count for c in nb.cells if c.cell_type == "code")


def _wait(condition, timeout: float, what: str, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _stop(server: subprocess.Popen, url: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels too); terminate, then kill, if it won't."""
    request = urllib.request.Request(
        f"{url}/api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
    )
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except OSError:
        pass
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
