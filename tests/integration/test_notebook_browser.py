"""The seed's user, in a real browser: open the URL `dlbox notebook` prints, open
first_pytorch_classifier.ipynb, Run > Run All Cells, wait for the kernel to go idle, read the
accuracy on the page, and keep a screenshot.

Headless Chromium through selenium and chromedriver (CI installs Debian's chromium and
chromium-driver). The notebook runs its smoke settings (DLBOX_NOTEBOOK_SMOKE=1: tiny
synthetic data, one epoch), on a copy in a temp folder so the committed file is never saved
over. Set DLBOX_SCREENSHOT_DIR to keep the screenshot somewhere else as well.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import require
from test_notebook_server import launched_notebook

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "first_pytorch_classifier.ipynb"
NAME = NOTEBOOK.name

pytestmark = [pytest.mark.notebook, pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000",
)
RUN_TIMEOUT_S = 420


def find_chromium() -> str | None:
    candidates = [os.environ.get("DLBOX_CHROMIUM"), "chromium", "chromium-browser",
                  "google-chrome"]
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


def find_chromedriver() -> str | None:
    candidates = [os.environ.get("DLBOX_CHROMEDRIVER"), "chromedriver"]
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


def make_driver(profile_dir: Path):  # -> selenium.webdriver.Chrome
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must not download drivers
    options = webdriver.ChromeOptions()
    options.binary_location = find_chromium() or ""
    for argument in (*CHROMIUM_ARGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(find_chromedriver()))
    driver.set_page_load_timeout(120)
    return driver


NOTEBOOK_STATE_JS = """
const panel = Array.from(document.querySelectorAll('.jp-NotebookPanel'))
    .find(p => !p.classList.contains('lm-mod-hidden'));
if (!panel) { return null; }
const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
return {
  status: indicator ? indicator.getAttribute('data-status') : null,
  prompts: Array.from(panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))
      .map(e => e.textContent.trim()),
  text: panel.textContent,
  images: panel.querySelectorAll('.jp-OutputArea-output img').length,
};
"""


def notebook_state(driver) -> dict | None:
    return driver.execute_script(NOTEBOOK_STATE_JS)


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def dismiss_notifications(driver) -> None:
    """JupyterLab asks about its news feed in a toast; say no so it covers nothing."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='No']"):
        try:
            button.click()
        except Exception:  # noqa: BLE001 - a toast that vanished is fine
            pass


def open_notebook_from_file_browser(driver) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    item = WebDriverWait(driver, 120).until(ec.element_to_be_clickable((
        By.XPATH, f"//li[contains(@class,'jp-DirListing-item')]"
                  f"//span[contains(@class,'jp-DirListing-itemText')][normalize-space()='{NAME}']")))
    ActionChains(driver).double_click(item).perform()
    wait_for(lambda: (s := notebook_state(driver)) and s["prompts"], 120, "the notebook to open")


def run_all_cells(driver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 60)
    wait.until(ec.element_to_be_clickable((
        By.XPATH, "//li[contains(@class,'lm-MenuBar-item')][.//div[normalize-space()='Run']]"
    ))).click()
    wait.until(ec.element_to_be_clickable((
        By.XPATH, "//li[contains(@class,'lm-Menu-item')][.//div[contains(@class,"
                  "'lm-Menu-itemLabel')][normalize-space()='Run All Cells']]"
    ))).click()


def answer_dialog(driver) -> str | None:
    """The text of a JupyterLab dialog that is open (it takes every click: CI once had one
    over the Run menu, unread), after pressing its accept button; None when none is open."""
    from selenium.webdriver.common.by import By

    dialogs = driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog")
    if not dialogs:
        return None
    text = " ".join(dialogs[0].text.split())
    for button in dialogs[0].find_elements(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept"):
        try:
            button.click()
        except Exception:  # noqa: BLE001 - a dialog that closed by itself is fine
            pass
    return text


def all_cells_done(driver) -> dict | None:
    state = notebook_state(driver)
    if not state or state["status"] != "idle":
        return None
    prompts = state["prompts"]
    if any("*" in p for p in prompts):
        return None
    if not all(p.strip("[]: ").isdigit() for p in prompts):
        return None  # not all cells ran (yet)
    return state


@pytest.mark.timeout(RUN_TIMEOUT_S + 180)
def test_run_all_cells_in_headless_chromium(tmp_path: Path) -> None:
    require(importlib.util.find_spec("jupyterlab") is not None, "JupyterLab")
    require(importlib.util.find_spec("selenium") is not None, "selenium")
    require(find_chromium() is not None, "Chromium (apt-get install chromium)")
    require(find_chromedriver() is not None, "chromedriver (apt-get install chromium-driver)")

    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    shutil.copy(NOTEBOOK, notebook_dir / NAME)
    screenshot = tmp_path / "first_pytorch_classifier.png"
    with launched_notebook(notebook_dir, env={"DLBOX_NOTEBOOK_SMOKE": "1"}) as launch:
        driver = make_driver(tmp_path / "chromium-profile")
        try:
            driver.get(launch.url)  # the URL exactly as `dlbox notebook` printed it
            open_notebook_from_file_browser(driver)
            dismiss_notifications(driver)
            wait_for(lambda: (notebook_state(driver) or {}).get("status") == "idle", 120,
                     "the kernel to start")
            # The kernel goes busy (the dot fills), then idle once the last cell is done. On
            # a loaded machine the menu's click can be lost (CI once waited 60 s for it):
            # asked again, once.
            def started() -> bool:
                return any("*" in p for p in (notebook_state(driver) or {})
                           .get("prompts", [])) or all_cells_done(driver)

            run_all_cells(driver)
            try:
                wait_for(started, 45, "Run All to start")
            except AssertionError:
                dialog = answer_dialog(driver)  # said in the failure below, if it fails
                time.sleep(2)
                if not started():
                    run_all_cells(driver)
                wait_for(started, 90, "Run All to start (asked twice; a dialog that was "
                         f"open: {dialog!r})")
            try:
                state = wait_for(lambda: all_cells_done(driver), RUN_TIMEOUT_S,
                                 "every cell to run and the kernel to go idle", poll_s=2)
            except AssertionError:
                driver.save_screenshot(str(screenshot))
                page = (notebook_state(driver) or {}).get("text", "")
                raise AssertionError(f"cells did not finish; screenshot {screenshot}; "
                                     f"page text: {page[-3000:]}") from None
            text = state["text"]
            assert "Traceback" not in text, text[-4000:]
            assert "Accuracy of the network on the 100 test images:" in text, text[-4000:]
            assert "Accuracy for class: airplane is" in text
            assert state["images"] >= 4, state["images"]
            # Bring the accuracy lines into view for the screenshot.
            driver.execute_script("""
                const pre = Array.from(document.querySelectorAll('.jp-OutputArea-output pre'))
                    .find(e => e.textContent.includes('Accuracy of the network'));
                if (pre) { pre.scrollIntoView({block: 'start'}); }
            """)
            time.sleep(1)
            driver.save_screenshot(str(screenshot))
        finally:
            driver.quit()
    assert screenshot.stat().st_size > 20_000
    keep = os.environ.get("DLBOX_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / screenshot.name)
