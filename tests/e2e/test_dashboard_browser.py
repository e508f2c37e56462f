"""``ecash-tpm demo --web`` in a real browser: Debian's Chromium driven by Selenium.

The demo runs as a user runs it (a subprocess with real swtpm and party processes); headless
Chromium opens the page while the story runs. Checked: the page loads and runs with no console
error; the story's steps appear, in order, while the demo runs (the page is seen with some
steps done and others not yet); the double spend turns its case red and shows the member the
demo's own report names, with "proof verified"; every card ends in its expected state. A
screenshot of the whole page is saved as a test artifact (``tests/artifacts/dashboard.png``;
with ``ECASH_TPM_UPDATE_SCREENSHOT=1`` also ``docs/img/dashboard.png``, the README's).

Selenium Manager never runs: the driver and the browser are given by path (and SE_OFFLINE is
set), so nothing is downloaded. Skipped only when chromium or chromedriver is missing
(``scripts/bootstrap`` installs both).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecash_tpm.demo.story import STEPS

pytestmark = [pytest.mark.swtpm, pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("ECASH_TPM_TEST_ARTIFACTS", REPO / "tests" / "artifacts"))
README_IMAGE = REPO / "docs" / "img" / "dashboard.png"
#: Chromium as root on a closed network: no sandbox, no GPU, and nothing phoning home.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,1000",
)
#: The page's own record of the story: each step's state and the order it started in.
PAGE_STATE = """
const steps = Array.from(document.querySelectorAll('#steps li.step')).map(li => [
  li.dataset.step, li.dataset.state, Number(li.dataset.order || 0)]);
const ds = document.getElementById('card-double_spend');
return {steps: steps, ended: document.body.dataset.ended || null,
        doubleSpend: ds ? ds.dataset.state : null};
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver, with the console log captured."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/bootstrap installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a driver
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path))
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "driver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _start_demo(workdir: Path, stderr_path: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECASH_TPM_")}
    return subprocess.Popen(
        [sys.executable, "-m", "ecash_tpm", "demo", "--web", "--json", "--workdir", str(workdir)],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=stderr_path.open("w"),
    )


def _dashboard_url(proc: subprocess.Popen[str], stderr_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"dashboard at (http://127\.0\.0\.1:\d+/)", stderr_path.read_text())
        if found:
            return found.group(1)
        if proc.poll() is not None:
            pytest.fail(f"the demo exited early: {stderr_path.read_text()[-3000:]}")
        time.sleep(0.05)
    pytest.fail("the demo printed no dashboard URL")


def _watch(driver: Any, timeout: float) -> list[dict[str, Any]]:
    """The page's state, sampled until the story ends."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script(PAGE_STATE)
        seen.append(state)
        if state["ended"]:
            return seen
        time.sleep(0.1)
    pytest.fail(f"the page never saw the story end; last state {seen[-1] if seen else None}")


def _save_screenshot(driver: Any, target: Path) -> Path:
    """The whole page: the window is made as tall as the document first."""
    for _ in range(3):  # the window's height includes the browser's frame: converge on it
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        inner = int(driver.execute_script("return window.innerHeight"))
        if inner >= height:
            break
        outer = driver.get_window_size()["height"]
        driver.set_window_size(1500, min(outer + height - inner, 8000))
    time.sleep(1.5)  # the highlight animations of the last cards fade
    target.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(target)), target
    return target


def test_dashboard_shows_the_story_live(browser: Any, tmp_path: Path) -> None:
    err = tmp_path / "demo.err"
    proc = _start_demo(tmp_path / "demo", err)
    try:
        url = _dashboard_url(proc, err, timeout=60)
        browser.get(url)
        assert browser.title.endswith("live attestation dashboard")
        seen = _watch(browser, timeout=240)

        # the steps appeared in the story's order, all ok, while the demo ran
        final = {name: (state, order) for name, state, order in seen[-1]["steps"]}
        assert [s for s, _ in sorted(final.items(), key=lambda kv: kv[1][1])] == list(STEPS)
        assert {state for state, _ in final.values()} == {"ok"}, final
        assert seen[-1]["ended"] == "ok"
        done = [sum(1 for _, state, _ in s["steps"] if state == "ok") for s in seen]
        assert any(0 < n < len(STEPS) for n in done), "the page saw no step while the demo ran"
        assert done == sorted(done), "a step went back"

        # the double-spend case turned red only once the double spend happened
        running = [
            s
            for s in seen
            if dict((n, st) for n, st, _ in s["steps"]).get("double_spend_rejected")
            in ("pending", "running")
        ]
        assert {s["doubleSpend"] for s in running} <= {"pending"}
        case = browser.find_element("id", "card-double_spend")
        assert "state-alarm" in case.get_attribute("class")
        assert case.value_of_css_property("border-top-color") == "rgba(192, 38, 45, 1)"

        shot = _save_screenshot(browser, ARTIFACTS / "dashboard.png")
        if os.environ.get("ECASH_TPM_UPDATE_SCREENSHOT") == "1":
            README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, README_IMAGE)

        # what the page says against what the demo reports
        text = case.text
        proc.send_signal(signal.SIGINT)  # the page stays up after the story until Ctrl-C
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.read_text()[-3000:]
        report = json.loads(out)
        steps = {s["step"]: s["detail"] for s in report["steps"]}
        member = steps["double_spender_identified"]["member_id"]
        assert member == steps["join"]["member_id"]
        assert member in text and "proof verified" in text and "DOUBLE SPEND" in text
        cards = {
            c.get_attribute("id"): c.get_attribute("data-state")
            for c in browser.find_elements("css selector", "#cards article.card")
        }
        assert cards == {
            "card-parties": "ok",
            "card-evidence": "ok",
            "card-registry": "info",
            "card-coins": "ok",
            "card-ledger": "ok",
            "card-double_spend": "alarm",
            "card-refusals": "ok",
            "card-audit": "ok",
            "card-exchange": "ok",
        }
        registry = browser.find_element("id", "card-registry").text
        assert member in registry and "revoked" in registry
        assert steps["join"]["account_id"] not in browser.find_element("id", "cards").text

        # and not one console error, from loading to the end of the stream
        logs = browser.get_log("browser")
        assert [e for e in logs if e["level"] == "SEVERE"] == [], logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
