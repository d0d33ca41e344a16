"""The checklist editor in a real browser (issue 14): an admin reorders a task with the Up
button and retires one; the list is swapped in place, focus lands on the moved row and the
live region says what happened."""

from __future__ import annotations

from playwright.sync_api import expect

from ..conftest import STAFF_PASSWORD


def _titles(page) -> list[str]:
    return [t.split("\n")[0].strip() for t in page.locator("#checklist-tasks tbody th").all_inner_texts()]


def test_admin_reorders_and_retires_tasks_without_a_reload(make, page):
    make.user("admin", email="root@example.com", name="Root Admin")
    page.sign_in("root@example.com", STAFF_PASSWORD)
    page.goto(page.url.split("/dashboard")[0] + "/crm/checklists/client")
    expect(page.get_by_role("heading", level=1)).to_have_text("Client checklist")
    before = _titles(page)
    assert before[:3] == ["Set your password", "Complete your profile", "Review and accept the service terms"]
    assert page.axe_violations() == []

    page.mark_page()
    page.get_by_role("button", name="Move Review and accept the service terms up").click()
    expect(page.locator("#checklist-tasks tbody tr").nth(1)).to_contain_text("Review and accept the service terms")
    assert _titles(page)[:3] == ["Set your password", "Review and accept the service terms", "Complete your profile"]
    expect(page.locator("#task-row-accept-terms")).to_be_focused()
    expect(page.locator("#announcer")).to_contain_text("Review and accept the service terms")
    page.assert_not_reloaded()

    page.get_by_role("button", name="Retire Invite your teammates").click()
    expect(page.locator("#task-row-invite-teammates .state")).to_have_text("Retired")
    page.assert_not_reloaded()
    page.screenshot_to("checklist-editor.png")
