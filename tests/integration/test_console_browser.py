"""The console in a real browser (Debian's chromium, headless, driven by Selenium through
chromium-driver): the pending list, a diff, one hunk approved and another rejected, the
workspace changed accordingly; a hostile diff renders as inert text."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import Cli, require
from tests.integration.test_serve_sessions import README, pending_session
from tests.support.serve import free_port, make_token, serving

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    require(CHROMIUM is not None and DRIVER is not None,
            "chromium and chromium-driver (scripts/setup.sh --dev installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sbx-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _login(driver: WebDriver, base: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/login")
    driver.find_element(By.NAME, "token").send_keys(token)
    driver.find_element(By.TAG_NAME, "form").submit()


def _wait(driver: WebDriver, cond: object, timeout: float = 20) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(cond)  # type: ignore[arg-type]


def _click(driver: WebDriver, path: str, act: str, hunk: int | None = None) -> None:
    from selenium.webdriver.common.by import By

    section = driver.find_element(By.CSS_SELECTOR, f'section.file[data-path="{path}"]')
    sel = f'button[data-act="{act}"]' + (f'[data-hunk="{hunk}"]' if hunk else ":not([data-hunk])")
    old = driver.find_element(By.TAG_NAME, "html")
    section.find_element(By.CSS_SELECTOR, sel).click()

    def reloaded(d: WebDriver) -> bool:
        try:
            old.tag_name  # noqa: B018 - raises once the page was replaced
            return False
        except Exception:
            return d.execute_script("return document.readyState") == "complete"  # type: ignore[no-any-return]

    _wait(driver, reloaded)


def test_console_review_in_a_browser(cli: Cli, workspace: Path, browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By

    pending_session(cli, workspace, "web-1")
    token = make_token(cli, "rita", "reviewer")
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"
    with serving(cli, listen):
        _login(browser, base, token)
        _wait(browser, lambda d: d.find_elements(By.ID, "pending"))
        link = browser.find_element(By.CSS_SELECTOR, '#pending a[href="/s/web-1"]')
        link.click()
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "section.file"))
        hunks = browser.find_elements(By.CSS_SELECTOR, 'section[data-path="README.md"] .hunk')
        assert len(hunks) == 2
        browser.find_element(By.ID, "message").send_keys("first ok, second not")
        _click(browser, "README.md", "approve", hunk=1)
        text = (workspace / "README.md").read_text()
        assert "line two\n" in text and "line twenty-eight" not in text
        hunks = browser.find_elements(By.CSS_SELECTOR, 'section[data-path="README.md"] .hunk')
        assert len(hunks) == 1 and "twenty-eight" in hunks[0].text
        _click(browser, "README.md", "reject", hunk=1)
        assert not browser.find_elements(By.CSS_SELECTOR, 'section[data-path="README.md"]')
        assert browser.find_elements(By.CSS_SELECTOR, 'section[data-path="new.txt"]')
        assert (workspace / "README.md").read_text() == README.replace("line 2\n", "line two\n")


HOSTILE = ("<script>window.__xss = 1</script>\n"
           "<img src=x onerror=\"window.__xss = 2\">\n"
           "access = 'user\u202e \u2066// admin\u2069\u2066'\n"
           "\x1b[31mred\x1b[0m and zero\u200bwidth\n")


def test_hostile_diff_renders_inert(cli: Cli, workspace: Path, browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By

    (workspace / "evil.txt").write_text("x\n")
    p = cli("run", "--level", "2", "--session", "evil", "--", "sh", "-c",
            "cat > evil.txt", cwd=workspace, input=HOSTILE.encode())
    assert p.returncode == 0, p.stderr
    token = make_token(cli, "vera", "viewer")
    listen = f"127.0.0.1:{free_port()}"
    with serving(cli, listen):
        _login(browser, f"http://{listen}", token)
        browser.get(f"http://{listen}/s/evil")
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "section.file"))
        assert browser.execute_script("return window.__xss") is None
        assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script")
        shown = browser.find_element(By.CSS_SELECTOR, 'section[data-path="evil.txt"]').text
        assert "<script>window.__xss = 1</script>" in shown
        assert "\\u202e" in shown and "\\u2066" in shown and "\\x1b[31m" in shown
        assert "\\u200b" in shown
        for ch in ("\u202e", "\u2066", "\x1b", "\u200b"):
            assert ch not in browser.page_source
