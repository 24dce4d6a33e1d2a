"""A real browser answers a quiz in real JupyterLab.

Starts `jupyter lab` on a free local port (no token) over a copy of chapter 0, drives the system
Chromium with Playwright: runs the notebook, ticks the three steps of RLHF, clicks Check, reads
the feedback, answers a second question wrongly and reads that feedback too, and answers a
third with the keyboard alone. Checks that the
attempts reached the progress file and saves a screenshot under test-artifacts/.

Without Chromium the test is skipped with the reason — except under CI (CI=true), where a missing
browser is a failure, so CI can never pass by skipping it.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("ALIGNLAB_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
# No news or update checks: their pop-ups could cover the notebook.
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                {"fetchNews": "false", "checkForUpdates": False}}

pytestmark = pytest.mark.slow


def _need(thing: str, why: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} CI must run the browser test.")
    pytest.skip(why)


def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        _need("chromium", "No Chromium found: install it (Debian/Ubuntu: `apt-get install chromium`) "
                          "or set CHROMIUM=/path/to/chrome to run the browser test.")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server over a copy of chapter 0; yields (url, env)."""
    root, settings = tmp_path / "book", tmp_path / "lab-settings"
    root.mkdir()
    shutil.copy(ROOT / "chapters" / "00_how_to_use.ipynb", root)
    for name, value in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    port = free_port()
    env = {**os.environ, "ALIGNLAB_HOME": str(tmp_path / "home"), "ALIGNLAB_PROFILE": "ci",
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
           "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", "--allow-root", "--LabApp.expose_app_in_browser=True",
           f"--ServerApp.root_dir={root}"]
    log = open(tmp_path / "jupyter.log", "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"jupyter lab exited:\n{(tmp_path / 'jupyter.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not answer within 60 s")
        yield url, env
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_quiz_in_jupyterlab(lab):
    sync_api = pytest.importorskip("playwright.sync_api") if os.environ.get("CI") != "true" \
        else __import__("playwright.sync_api", fromlist=["sync_playwright"])
    exe = chromium()
    url, env = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        try:
            _answer_quiz(page, url)
        finally:
            page.screenshot(path=str(ARTIFACTS / "quiz_chapter00.png"))
            browser.close()
    saved = json.loads((Path(env["ALIGNLAB_HOME"]) / "quiz_progress.json").read_text())
    entries = saved["chapters"]["00"]["questions"]
    assert entries["rlhf-pipeline"]["correct"] is True
    assert entries["cai-difference"]["attempts"][-1]["correct"] is False
    assert entries["rl-technique"]["correct"] is True


def _answer_quiz(page, url: str) -> None:
    page.goto(f"{url}/lab/tree/00_how_to_use.ipynb")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=60_000)
    # Run only once the kernel is up: run-all on a kernel still starting executes nothing.
    page.evaluate("""async () => {
        const panel = window.jupyterapp.shell.currentWidget;
        await panel.context.ready;
        await panel.sessionContext.ready;
        while (!panel.sessionContext.session?.kernel ||
               panel.sessionContext.session.kernel.connectionStatus !== 'connected' ||
               panel.sessionContext.session.kernel.status !== 'idle') {
            await new Promise(r => setTimeout(r, 200));
        }
        await window.jupyterapp.commands.execute('notebook:run-all-cells');
    }""")
    first_quiz = page.locator(".widget-vbox").filter(has_text="Quiz — chapter 00").first
    first_quiz.wait_for(timeout=90_000)

    steps = first_quiz.locator(".widget-vbox").filter(has_text="Select all three").first
    for label in ["Supervised fine-tuning", "Training a reward model", "Optimising the policy"]:
        steps.get_by_role("checkbox", name=label).check()
    steps.get_by_role("button", name="Check").click()
    feedback = steps.locator(".alignlab-quiz-feedback")
    feedback.filter(has_text="Correct").wait_for(timeout=20_000)
    assert "Ouyang et al. (2022)" in feedback.inner_text()

    cai = first_quiz.locator(".widget-vbox").filter(has_text="Constitutional AI").first
    cai.get_by_role("radio", name="It replaces PPO with direct preference optimisation").check()
    cai.get_by_role("button", name="Check").click()
    wrong = cai.locator(".alignlab-quiz-feedback").filter(has_text="Not quite")
    wrong.wait_for(timeout=20_000)
    assert "RLAIF" in wrong.inner_text()

    # Keyboard only: focus the first option, Space selects it, Tab on to Check, Enter presses it.
    rl = first_quiz.locator(".widget-vbox").filter(has_text="Which RL technique").first
    button = rl.get_by_role("button", name="Check")
    rl.get_by_role("radio").first.focus()
    page.keyboard.press("Space")
    for _ in range(6):  # past the other options (each radio is a tab stop in ipywidgets)
        page.keyboard.press("Tab")
        if button.evaluate("b => b === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the Check button")
    page.keyboard.press("Enter")
    rl.locator(".alignlab-quiz-feedback").filter(has_text="Correct").wait_for(timeout=20_000)


@pytest.fixture
def site_server(tmp_path):
    """The built website (`make site`; built here if missing) on a local static server; yields its URL."""
    from test_site import HTML, build_site
    if not (HTML / "chapters" / "09_capstone.html").exists():
        build_site()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(HTML)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(50):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def test_site_chapter_in_a_real_browser(site_server):
    """Chapter 9's page: math rendered by the local MathJax, every figure loaded, and its quiz
    accepting a right answer and rejecting a wrong one with the bank's feedback."""
    sync_api = pytest.importorskip("playwright.sync_api") if os.environ.get("CI") != "true" \
        else __import__("playwright.sync_api", fromlist=["sync_playwright"])
    exe = chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        failed = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        try:
            page.goto(f"{site_server}/chapters/09_capstone.html")
            page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=30_000)
            images = page.evaluate("[...document.images].map(i => [i.src, i.complete && i.naturalWidth > 0])")
            assert images and all(ok for _, ok in images), [src for src, ok in images if not ok]
            question = page.locator('.aq-question[data-id="win-rate-ties"]')
            question.wait_for(timeout=30_000)
            box, feedback = question.locator("input.aq-input"), question.locator(".aq-feedback")
            box.fill("0.5")
            question.locator("button.aq-check").click()
            page.wait_for_function("document.querySelector('.aq-question[data-id=\"win-rate-ties\"] .aq-feedback')"
                                   ".classList.contains('aq-wrong')", timeout=10_000)
            assert "ties as losses" in feedback.inner_text()
            box.fill("5/8")
            box.press("Enter")
            page.wait_for_function("document.querySelector('.aq-question[data-id=\"win-rate-ties\"] .aq-feedback')"
                                   ".classList.contains('aq-right')", timeout=10_000)
            assert feedback.inner_text().startswith("Right.")
            question.scroll_into_view_if_needed()
        finally:
            page.screenshot(path=str(ARTIFACTS / "site_chapter09.png"))
            browser.close()
    assert not [u for u in failed if u.startswith(site_server)], failed
