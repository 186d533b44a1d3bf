"""The LMS settings page, as a new admin uses it, in Debian's headless Chromium driven by Playwright."""

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Each state of the page worth looking at, kept for a person to open after the run (not compared).
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".rostersync" / "screenshots"
SCREENSHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True)
    opened = context.new_page()
    yield opened
    opened.screenshot(path=str(tmp_path / "last.png"), full_page=True)
    context.close()


@pytest.fixture
def approve_page_on(stack: Stack) -> Iterator[None]:
    """The simulator shows Canvas's Authorize page instead of approving at once (other tests rely on that)."""
    config = f"{stack.canvas_url}/_sim/config"
    requests.post(config, json={"auto_approve": False}, timeout=10).raise_for_status()
    yield
    requests.post(config, json={"auto_approve": True}, timeout=10).raise_for_status()


def new_tenant_by_operator(stack: Stack) -> str:
    operator = stack.cli_ok("admin", "token", "--tenant", "operators", "--operator")
    created = requests.post(
        f"{stack.api_url}/admin/tenants",
        json={"name": "Browser University", "allow_insecure_canvas": True},
        headers={"Authorization": f"Bearer {operator}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["tenant_id"])


def test_a_new_admin_connects_canvas_and_syncs_from_the_settings_page(
    stack: Stack, page: Page, approve_page_on: None
) -> None:
    tenant_id = new_tenant_by_operator(stack)
    key = requests.post(
        f"{stack.canvas_url}/_sim/developer_keys",
        json={"name": "rostersync", "redirect_uri": f"{stack.api_url}/oauth/callback"},
        timeout=10,
    ).json()
    token = stack.cli_ok("admin", "token", "--tenant", tenant_id)

    first = page.goto(f"{stack.api_url}/console#access_token={token}")
    assert first is not None and first.status == 200
    assert "frame-ancestors 'none'" in first.headers["content-security-policy"]
    expect(page.locator("#whoami")).to_contain_text(tenant_id)
    assert "access_token" not in page.url  # the token left the address bar
    expect(page.locator("#status")).to_have_text("not configured")
    expect(page.locator("#connection-banner")).to_contain_text("Enter your Canvas server")
    expect(page.get_by_role("button", name="Sync now")).to_be_disabled()
    page.screenshot(path=str(SCREENSHOTS / "new-tenant.png"), full_page=True)
    expect(page.locator("#scopes")).to_contain_text("url:GET|/api/v1/courses/:course_id/enrollments")
    expect(page.locator("#redirect-uri")).to_have_text(f"{stack.api_url}/oauth/callback")

    # Settings: a private address is refused in place; then the real values are saved.
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Canvas Server").fill("https://10.0.0.5")
    page.get_by_label("Client ID").fill(key["client_id"])
    page.get_by_label("Client Secret").fill(key["client_secret"])
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#canvas_url-error")).to_contain_text("10.0.0.5")
    page.get_by_label("Canvas Server").fill(stack.canvas_url)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#canvas-notice")).to_contain_text("Settings saved")
    expect(page.locator("#status")).to_contain_text("pending authorization")
    expect(page.locator("#connection-banner")).to_contain_text("not connected to Canvas yet")
    expect(page.get_by_label("Client Secret")).to_have_value("")
    assert key["client_secret"] not in page.content()

    # Generate Key: Canvas's Authorize page, then back to the settings page, connected.
    page.get_by_role("button", name="Generate Key").click()
    page.wait_for_url(f"{stack.canvas_url}/login/oauth2/auth*")
    expect(page.locator("#scopes")).to_contain_text("url:GET|/api/v1/accounts/:account_id/courses")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{stack.api_url}/console?connected=*")
    expect(page.locator("#notice")).to_contain_text("Connected to Canvas: authorized by")
    expect(page.locator("#status")).to_have_text("active")
    expect(page.locator("#connection-banner")).to_be_hidden()
    tenant = json.loads(stack.cli_ok("tenant", "show", tenant_id))
    expect(page.locator("#root-account")).to_have_text(str(tenant["root_account_id"]))
    expect(page.locator("#authorized-by")).to_contain_text(tenant["authorized_by"])

    # Self-test: every check answers, the token works and no scope is missing.
    page.get_by_role("button", name="Run self-test").click()
    results = page.locator("#self-test-results tbody tr")
    expect(results).to_have_count(5)
    expect(results.filter(has_text="Token works")).to_contain_text("pass")
    expect(results.filter(has_text="Scopes granted")).to_contain_text("pass")

    # Sync now: the page follows the run, then shows the roster counts and the sync errors.
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#sync-notice")).to_contain_text("started")
    expect(page.locator("#notice")).to_be_empty()  # the connection's notice went stale with a new action
    expect(page.locator("#runs tbody tr").first).to_contain_text("completed", timeout=120_000)
    totals = _exported_totals(stack, tenant_id)
    for name, count in totals.items():
        expect(page.locator(f"#total-{name}")).to_have_text(str(count))
    assert totals["enrollments"] > 0
    error_rows = page.locator("#errors tbody tr")
    expect(error_rows.first).to_contain_text("missing_identifier")
    every_error = error_rows.count()
    page.get_by_label("Filter").fill("no such reason anywhere")
    expect(error_rows).to_have_count(0)
    page.get_by_label("Filter").fill("missing_identifier")
    assert 0 < error_rows.count() <= every_error
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.startswith("run_id,course_id,user_id,code") and "missing_identifier" in csv_text

    # Course selection: a CSV-managed sync list; Replace asks first; a bad line is named.
    page.get_by_label("Course sync list").fill("course_id\n101\nsis_course_id:BIO-101\n")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#course-selection")).to_contain_text("the 2 courses of the sync list")
    dialogs = Dialogs(accept=False)
    page.on("dialog", dialogs)
    page.get_by_label("Course sync list").fill("102\n")
    page.get_by_role("button", name="Replace").click()
    assert dialogs.asked(page, 1) == ["replace would swap the 2 listed courses for 1; confirm to proceed"]
    expect(page.locator("#course-selection")).to_contain_text("the 2 courses of the sync list")
    page.get_by_label("Course sync list").fill("not a course\n")
    page.get_by_role("button", name="Remove").click()
    expect(page.locator("#course-list-error")).to_contain_text("line 1")

    # An account's name is not an account: refused beside the field, nothing widened.
    page.get_by_label("All published courses of account").fill("School of Law")
    page.get_by_role("button", name="Use all courses of this account").click()
    expect(page.locator("#account-error")).to_contain_text("account_id")
    expect(page.locator("#course-selection")).to_contain_text("the 2 courses of the sync list")

    # Leaving the list for every course of the root account widens what syncs: asked, declined, then accepted.
    page.get_by_label("All published courses of account").fill("")
    page.get_by_role("button", name="Use all courses of this account").click()
    question = dialogs.asked(page, 2)[-1]
    assert question.startswith("this syncs all published courses of the root account instead"), question
    expect(page.locator("#course-selection")).to_contain_text("the 2 courses of the sync list")
    dialogs.accept = True
    page.get_by_role("button", name="Use all courses of this account").click()
    expect(page.locator("#course-selection")).to_have_text(
        "Syncing all published courses of the root account."
    )
    expect(page.locator("#courses-notice")).to_contain_text("the next sync uses every published course")
    page.screenshot(path=str(SCREENSHOTS / "connected-and-synced.png"), full_page=True)


def test_a_held_mass_drop_is_approved_from_the_page(stack: Stack, page: Page) -> None:
    tenant_id = stack.connect_tenant()
    stack.cli_ok("sync", "run", "--tenant", tenant_id, "--wait", "--force")
    course = max(stack.export(tenant_id)["courses"], key=lambda c: len(c["enrollments"]))
    students = [e for e in course["enrollments"] if e["type"] == "StudentEnrollment" and e["active"]]
    dropped = students[: len(students) // 2 + 1]
    for enrollment in dropped:
        stack.canvas("POST", "/_sim/changes/drop", json={"enrollment_id": enrollment["canvas_id"]})
    held = stack.cli(
        "sync", "run", "--tenant", tenant_id, "--course", str(course["canvas_id"]), "--wait", "--force"
    )
    assert held.returncode != 0 and "held" in held.stderr

    page.goto(stack.cli_ok("admin", "token", "--tenant", tenant_id, "--console-url"))
    hold = page.locator("#holds tbody tr")
    expect(hold).to_have_count(1)
    expect(hold).to_contain_text(str(course["canvas_id"]))
    expect(hold).to_contain_text(f"{len(dropped)} enrollments")
    # The would-be drops by name and identifier, one line each.
    hold.locator("summary").click()
    users = {user["canvas_id"]: user for user in course["users"]}
    expect(hold.locator("li")).to_have_count(len(dropped))
    for enrollment in dropped:
        user = users[enrollment["user_id"]]
        expect(hold).to_contain_text(
            f"{user['name']} ({user['sis_user_id']}, enrollment {enrollment['canvas_id']})"
        )
    page.screenshot(path=str(SCREENSHOTS / "hold-detail.png"), full_page=True)

    # Approve asks first: dismissing the question changes nothing.
    questions: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    hold.get_by_role("button", name="Approve drops").click()
    expect(hold).to_have_count(1)
    assert questions == [f"Drop {len(dropped)} enrollments from course {course['canvas_id']}? "
                         "They leave the roster the platform sees."]  # fmt: skip
    page.once("dialog", lambda dialog: dialog.accept())
    hold.get_by_role("button", name="Approve drops").click()
    expect(page.locator("#holds-notice")).to_contain_text("drops approved")
    expect(hold).to_have_count(0)
    decided = page.locator("#decided-holds tbody tr")
    expect(decided).to_have_count(1)
    expect(decided).to_contain_text("approved")
    expect(decided).to_contain_text(str(course["canvas_id"]))
    page.screenshot(path=str(SCREENSHOTS / "hold-decided.png"), full_page=True)
    exported = next(c for c in stack.export(tenant_id)["courses"] if c["canvas_id"] == course["canvas_id"])
    enrollments = {e["canvas_id"]: e for e in exported["enrollments"]}
    assert not any(enrollments[e["canvas_id"]]["active"] for e in dropped)
    (record,) = json.loads(
        stack.cli_ok("holds", "list", "--tenant", tenant_id, "--decided", "--format", "json")
    )
    assert record["status"] == "approved" and record["decided_by"] and record["decided_at"]


@dataclass
class Dialogs:
    """Answers the page's confirmations (and keeps their questions); `accept` says how."""

    accept: bool = False
    questions: list[str] = field(default_factory=list)

    def __call__(self, dialog: Dialog) -> None:
        self.questions.append(dialog.message)
        if self.accept:
            dialog.accept()
        else:
            dialog.dismiss()

    def asked(self, page: Page, count: int) -> list[str]:
        """The questions, once the page has asked `count` of them (it asks after a server round trip)."""
        for _ in range(200):
            if len(self.questions) >= count:
                return self.questions
            page.wait_for_timeout(50)
        raise AssertionError(f"the page asked {len(self.questions)} questions, not {count}")


def _exported_totals(stack: Stack, tenant_id: str) -> dict[str, int]:
    export = stack.export(tenant_id)
    courses = export["courses"]
    return {
        "courses": len(courses),
        "sections": sum(len(course["sections"]) for course in courses),
        "users": len({user["canvas_id"] for course in courses for user in course["users"]}),
        "enrollments": sum(len(course["enrollments"]) for course in courses),
    }


def test_the_sync_settings_the_cli_sets_are_on_the_page(stack: Stack, page: Page) -> None:
    tenant_id = stack.connect_tenant()
    page.goto(stack.cli_ok("admin", "token", "--tenant", tenant_id, "--console-url"))
    roles = page.locator("#role-mapping tbody tr")
    expect(roles.filter(has_text="Lab Student")).to_have_count(1)  # a custom role, read from Canvas
    names = roles.locator("td:first-child").all_inner_texts()
    assert {"Student (StudentEnrollment)", "Teacher (TeacherEnrollment)", "Lab Student"} <= set(names), names

    page.get_by_label("Identify users by").select_option("login_id")
    page.get_by_label("Lab Student in the roster as").select_option("excluded")
    page.locator("#schedule_daily").check()
    page.locator("#daily_at").fill("06:30")
    page.get_by_label("Time zone").fill("America/Chicago")
    page.get_by_label("Hold a course's sync for approval").fill("30")
    page.get_by_label("Unpublished courses too").check()  # widens what syncs: asked first
    dialogs = Dialogs(accept=False)
    page.on("dialog", dialogs)
    page.get_by_role("button", name="Save sync settings").click()
    assert "unpublished too" in dialogs.asked(page, 1)[0]
    assert json.loads(stack.cli_ok("tenant", "show", tenant_id))["settings"]["courses"]["published_only"]
    dialogs.accept = True
    page.get_by_role("button", name="Save sync settings").click()
    expect(page.locator("#sync-settings-notice")).to_contain_text("Sync settings saved")
    page.screenshot(path=str(SCREENSHOTS / "sync-settings.png"), full_page=True)

    settings = json.loads(stack.cli_ok("tenant", "show", tenant_id))["settings"]
    assert settings["user_id_field"] == "login_id"
    assert settings["role_overrides"] == {"Lab Student": "excluded"}
    assert settings["schedule"] == {"every_minutes": None, "daily_at": "06:30", "timezone": "America/Chicago"}
    assert (settings["mass_drop_threshold"], settings["courses"]["published_only"]) == (0.3, False)

    # A time zone that does not exist is refused beside the form, and nothing is saved.
    page.get_by_label("Time zone").fill("Mars/Olympus")
    page.get_by_role("button", name="Save sync settings").click()
    expect(page.locator("#sync-settings-error")).to_contain_text("unknown time zone")
    assert json.loads(stack.cli_ok("tenant", "show", tenant_id))["settings"]["schedule"]["timezone"] == (
        "America/Chicago"
    )
