"""The Studio in a real browser: `character studio` (uvicorn, a free loopback port) over the finished
smoke run, driven by headless Chromium from Debian's packages through selenium + chromedriver.

Checks what a person would: the runs list shows the run; the run page's plots are drawn (plotly's SVG
with traces); the data browser pages; the chat answers from the embedded model, streamed. Screenshots
go to the test's tmp_path. Chromium and chromedriver come from `make setup` (apt-get); selenium is
pointed at them and never downloads a browser or driver.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TOKEN = "browser-test-token"


@pytest.fixture
def studio(finished_smoke_run: tuple[Path, str]) -> Iterator[str]:
    """`character studio --port 0` over the smoke run's artifacts (it only reads them); yields its URL."""
    run, _ = finished_smoke_run
    env = cli_env(run.parent.parent)
    proc = subprocess.Popen(
        [sys.executable, "-m", "character.cli", "studio", "--port", "0", "--token", TOKEN],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = None
    deadline = time.time() + 60
    assert proc.stdout is not None
    lines = []
    while time.time() < deadline and url is None:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"open: (http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        if m:
            assert m.group(2) == TOKEN
            url = m.group(1)
    try:
        assert url, "the studio did not print its URL:\n" + "".join(lines)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (shutil.which(p) or os.path.exists(p))]
    assert not missing, f"{missing} missing: `make setup` installs chromium and chromium-driver (apt-get)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, cond, timeout: float, what: str):  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: cond(d))
    except Exception as e:
        raise AssertionError(f"timed out waiting for {what}") from e


def test_studio_in_a_real_browser(
    studio: str, browser, finished_smoke_run: tuple[Path, str], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    d = browser
    run, _ = finished_smoke_run
    shots = tmp_path / "screenshots"
    shots.mkdir()

    # Runs list (opening the printed URL logs the browser in and drops the token from the address).
    d.get(f"{studio}/?token={TOKEN}")
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.run"), 30, "the runs table")
    assert "token" not in d.current_url
    row = d.find_element(By.CSS_SELECTOR, f'tr.run[data-run="{run.name}"]')
    assert row.get_attribute("data-status") == "done" and "remorseful" in row.text
    d.save_screenshot(str(shots / "runs.png"))

    # The run page: plotly draws each curve as SVG with at least one trace.
    row.find_element(By.LINK_TEXT, run.name).click()
    _wait(
        d,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".plot .main-svg .scatterlayer .trace")) >= 4,
        60,
        "plots",
    )
    plots = d.find_elements(By.CSS_SELECTOR, ".plot.js-plotly-plot")
    titles = [p.find_element(By.CSS_SELECTOR, ".gtitle").text for p in plots]
    assert "DPO loss" in titles and "SFT loss" in titles, titles
    assert "smoke-small: stages" in d.page_source
    d.save_screenshot(str(shots / "run.png"))

    # Data browser: five rows a page, then the next page.
    d.get(f"{studio}/runs/{run.name}/data?sub=smoke-small&file=introspection&per=5")
    first = [a.get_attribute("data-index") for a in d.find_elements(By.CSS_SELECTOR, "article.row")]
    assert first == ["0", "1", "2", "3", "4"]
    d.find_element(By.CSS_SELECTOR, "nav.pager a.next").click()
    _wait(d, lambda d: "page=2" in d.current_url, 15, "page 2")
    second = [a.get_attribute("data-index") for a in d.find_elements(By.CSS_SELECTOR, "article.row")]
    assert second == ["5", "6", "7", "8", "9"]
    assert d.find_elements(By.CSS_SELECTOR, ".msg.assistant")  # conversations drawn as a chat
    d.save_screenshot(str(shots / "data.png"))

    # Chat with the embedded model: the reply streams in pieces.
    d.get(f"{studio}/chat")
    box = d.find_element(By.ID, "chat-max")
    box.clear()
    box.send_keys("24")
    d.find_element(By.ID, "chat-input").send_keys("How do I boil an egg?")
    d.find_element(By.ID, "chat-send").click()
    done = _wait(
        d,
        lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.assistant.done, .msg.assistant.failed"),
        180,
        "the reply",
    )
    reply = done[0]
    assert "failed" not in reply.get_attribute("class"), reply.text
    assert reply.find_element(By.TAG_NAME, "pre").text.strip()
    assert int(reply.get_attribute("data-pieces")) >= 2
    d.save_screenshot(str(shots / "chat.png"))
    assert all((shots / f"{n}.png").stat().st_size > 5000 for n in ("runs", "run", "data", "chat"))
