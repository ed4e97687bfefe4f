"""End to end in real headless Chromium: sign in, watch a live alert arrive while a writer
keeps publishing snapshots, acknowledge it with a note, download and verify its evidence
pack, and save the README screenshots.  At 1400 px the triage buttons show their whole
labels; a finding full of hostile platform text shows no link and loads nothing; and the
browser's network log shows that no request ever leaves localhost (the dashboard works
air-gapped).

The server is the real command (``python -m monitor dashboard``, which becomes ``streamlit
run``) on a free port; the data is a snapshot directory rewritten atomically by a background
thread, as the live sink does.  Every wait is explicit, with a timeout.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from dashboard.state import StateStore
from tests import hostile_text as H
from tests.dashboard import factories as F
from tests.screenshots import screenshot_dir

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WAIT = 45  # seconds for any one UI change on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


HOSTILE = F.finding(
    H.BIDI,
    platform=H.PLATFORM,
    severity="low",
    event_time=F.T0 + dt.timedelta(hours=2),
    evidence={
        **F.series_evidence(),
        "note": H.HTML,
        "disclosures_checked": [{"platform": H.PLATFORM, "intervention": H.LINK, "label": H.IMAGE}],
    },
)


def requested(browser) -> list[str]:  # noqa: ANN001
    """Every URL requested since the last call (Chrome DevTools network events)."""
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            browser.requests.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            browser.requests.append(message["params"]["url"])
    return browser.requests


def leaves_localhost(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome", "devtools"):
        return False
    return parts.hostname not in ("127.0.0.1", "localhost", "::1")


class Writer(threading.Thread):
    """Keeps publishing snapshots (growing exposure counts); adds ``late`` once asked."""

    def __init__(self, directory: Path, late: F.Finding) -> None:
        super().__init__(daemon=True)
        self.directory, self.late = directory, late
        self.add_late, self.stop = threading.Event(), threading.Event()
        self.writes = 0

    def run(self) -> None:
        base = F.default_findings() + [HOSTILE]
        while not self.stop.is_set():
            self.writes += 1
            rows = [
                msgspec.structs.replace(f, n_exposures=f.n_exposures + self.writes) for f in base
            ]
            if self.add_late.is_set():
                rows.append(self.late)
            F.write_snapshot(self.directory, rows, F.default_measurements())
            self.stop.wait(0.4)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, Writer]]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Chromium is missing: run `make browser` (apt chromium chromium-driver)")
    snap = tmp_path / "snapshots"
    late = F.finding(
        "acc-4",
        severity="critical",
        event_time=F.T0 + dt.timedelta(hours=8),
        detected_at=dt.datetime.now(dt.UTC),
    )
    writer = Writer(snap, late)
    F.write_snapshot(snap, F.default_findings() + [HOSTILE], F.default_measurements())
    config = tmp_path / "amplimon.yaml"
    config.write_text(F.CONFIG_YAML)
    state = tmp_path / "dash.sqlite"
    F.users(state)
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor",
            "dashboard",
            "--data",
            str(snap),
            "--config",
            str(config),
            "--state",
            str(state),
            "--port",
            str(port),
            "--refresh",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:  # noqa: S310
                return r.status == 200
        except OSError:
            return False

    try:
        wait_until(healthy, 90, "the dashboard server")
        writer.start()
        yield url, state, writer
    finally:
        writer.stop.set()
        if writer.is_alive():
            writer.join(timeout=10)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def browser(tmp_path: Path):  # noqa: ANN201
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.downloads = downloads
    driver.requests = []  # every URL the page asked for (network log), gathered as it goes
    try:
        yield driver
    finally:
        driver.quit()


def test_analyst_flow_in_chromium(server, browser) -> None:  # noqa: ANN001
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, state_path, writer = server
    # the alerts fragment re-renders every second: an element found may be replaced at once
    wait = WebDriverWait(
        browser,
        WAIT,
        poll_frequency=0.1,
        ignored_exceptions=(
            NoSuchElementException,
            StaleElementReferenceException,
            ElementClickInterceptedException,
        ),
    )

    def css(selector: str):  # noqa: ANN202
        return wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, selector)))

    def click(selector: str) -> None:
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, selector).click() or True)

    def text_of(selector: str, *parts: str) -> None:
        wait.until(
            lambda d: all(p in d.find_element(By.CSS_SELECTOR, selector).text for p in parts)
        )

    def present(selector: str):  # noqa: ANN202
        return wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, selector)))

    def text_appears(text: str) -> None:
        wait.until(
            ec.presence_of_element_located(
                (By.XPATH, f"//*[contains(normalize-space(.), {text!r})]")
            )
        )

    browser.get(url)
    css("input[aria-label='User name']").send_keys("analyst")
    css("input[aria-label='Password']").send_keys(F.PASSWORDS["analyst"])
    click("[data-testid='stFormSubmitButton'] button")
    text_appears("Live alerts")
    for finding in F.default_findings():
        present(f".st-key-alert-{finding.finding_id}")

    # a live alert arrives while the writer keeps writing; the page is not reloaded
    browser.execute_script("window.__amplimon_marker = 42")
    writes_before = writer.writes
    writer.add_late.set()
    late = writer.late.finding_id
    text_of(f".st-key-alert-{late}", "JUST IN", "CRITICAL", "Party A")
    assert writer.writes > writes_before
    assert browser.execute_script("return window.__amplimon_marker") == 42
    assert browser.save_screenshot(str(screenshot_dir() / "alerts.png"))

    # open it, acknowledge it with a note
    click(f".st-key-alert-{late} a")
    text_appears("Party A — amplification 1.90× on chirp in DE")
    # at 1400 px every triage button shows its whole label (they were cut to "Ackn…")
    for action in ("Acknowledge", "Escalate", "Dismiss", "Resolve"):
        button = present(f".st-key-triage-{action.lower()} button")
        assert button.text == action
        assert browser.execute_script(
            "const b = arguments[0]; return [...b.querySelectorAll('*'), b].every("
            "e => e.scrollWidth <= e.clientWidth + 1)",
            button,
        ), f"{action} is cut off"
    note = css("textarea[aria-label='Note (required to dismiss or reopen)']")
    note.send_keys("Checked the holdout arm; forwarding to the enforcement unit.")
    click(".st-key-triage-acknowledge button")
    text_appears("Status: new → acknowledged (the store of record applies it within seconds).")
    wait.until(
        lambda d: (
            d.find_element(
                By.CSS_SELECTOR, "textarea[aria-label='Note (required to dismiss or reopen)']"
            ).get_property("value")
            == ""
        )
    )  # a fresh, empty note
    history = StateStore(state_path).history(late)
    assert [(e.who, e.to_status, e.note) for e in history] == [
        ("analyst", "acknowledged", "Checked the holdout arm; forwarding to the enforcement unit.")
    ]

    # build, download and verify the evidence pack
    click(".st-key-prepare_pack button")
    click(".st-key-download_pack button")

    def downloaded() -> list[Path]:
        return [p for p in browser.downloads.glob("*.zip") if not p.name.endswith(".crdownload")]

    wait_until(
        lambda: bool(downloaded()) and downloaded()[0].stat().st_size > 0,
        WAIT,
        "the evidence pack download",
    )
    zip_path = downloaded()[0]
    wait_until(
        lambda: not list(browser.downloads.glob("*.crdownload")), WAIT, "the download to finish"
    )
    (digest,) = [e["manifest_sha256"] for e in StateStore(state_path).exports(late)]
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "verify", str(zip_path), "--expect", digest],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{zip_path.name}: valid: ")

    browser.set_window_size(1400, 1900)
    browser.execute_script("arguments[0].scrollIntoView()", present(".st-key-back_to_alerts"))
    present(".st-key-prepare_pack")
    assert "acknowledged" in browser.find_element(By.TAG_NAME, "main").text
    assert browser.save_screenshot(str(screenshot_dir() / "finding.png"))

    # a finding full of hostile platform text: shown as text, no link, nothing loaded
    click(".st-key-back_to_alerts button")
    click(f".st-key-alert-{HOSTILE.finding_id} a")
    text_appears("Verify evidence here")
    main = present("main")
    wait.until(lambda d: H.LINK in main.text.replace("\u2060", "") and "⟨U+202E⟩" in main.text)
    assert "\u202e" not in main.text
    for link in main.find_elements(By.CSS_SELECTOR, "a[href]"):
        assert not leaves_localhost(link.get_attribute("href")), link.get_attribute("href")
    for image in main.find_elements(By.CSS_SELECTOR, "img"):
        assert not leaves_localhost(image.get_attribute("src")), image.get_attribute("src")
    assert not main.find_elements(By.XPATH, ".//a[contains(., 'Verify evidence here')]")

    # air-gapped: nothing the dashboard served asked for anything beyond this machine
    urls = requested(browser)
    assert any(u.startswith(url) for u in urls) and len(urls) > 20
    assert [u for u in urls if leaves_localhost(u)] == []
