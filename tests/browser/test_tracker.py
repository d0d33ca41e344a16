"""The onboarding tracker and the funnel in a real browser (issue 14): "Remind now" swaps the
row in place and says so; screenshots for the README."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from onboarding_app.extensions import db

from .conftest import SCREENSHOTS


def _wait_for_mail(mailbox, address: str, count: int, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(mailbox.to(address)) >= count:
            return mailbox.to(address)
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} emails to {address} within {timeout}s")


def test_remind_now_from_the_tracker_without_a_reload(app, page, mailbox):
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["seed-demo"])
        db.session.remove()
    assert result.exit_code == 0, result.output
    mailbox.clear()

    page.sign_in("sam@example.com", "demo-staff-pass-2026")
    page.get_by_role("link", name="Tracker", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Onboarding tracker")
    rows = page.locator("#tracker-results tbody tr")
    # Most stalled first: Hedy (9 days), Rosalind (6), Tim (4), ...
    expect(rows.first).to_contain_text("Hedy Lamarr")
    expect(rows.first.locator(".stalled-days")).to_have_text("9 days")
    page.screenshot_to("tracker.png")
    page.locator("#funnel").screenshot(path=str(SCREENSHOTS / "funnel.png"))
    assert page.axe_violations() == []

    tim = page.locator("tr", has_text="Tim Berners-Lee")
    expect(tim.locator(".reminders-sent")).to_have_text("0")
    page.mark_page()
    page.get_by_role("button", name="Remind Tim Berners-Lee now").click()
    notice = tim.locator(".row-notice")
    expect(notice).to_contain_text("Reminder sent")
    expect(tim.locator(".reminders-sent")).to_have_text("1")
    expect(notice).to_be_focused()  # the button is gone with the old row: focus on what happened
    # Said once the swap has settled. (The browser's own autofocus can focus the notice before
    # that; moving on sooner would race htmx's settle, which focuses the notice again.)
    expect(page.locator("#announcer")).to_have_text(
        "Reminder sent: their open tasks with a link.")
    page.assert_not_reloaded()
    [email] = _wait_for_mail(mailbox, "tim@example.com", 1)
    assert email["Subject"] == "A few steps left to finish setting up your account"

    # The funnel's form swaps the funnel alone.
    funnel_role = page.get_by_label("Role", exact=True).last
    funnel_role.focus()
    funnel_role.select_option("partner")
    expect(page.locator("#funnel .funnel-caption")).to_contain_text("Partner accounts")
    expect(funnel_role).to_be_focused()
    page.assert_not_reloaded()

    # Resend asks in a dialog (Cancel focused, the harmless choice); its answer replaces the row.
    resend = page.locator("button.resend-welcome").first
    row = page.locator("#tracker-results tbody tr", has=resend)
    row_id = row.get_attribute("id")
    name = row.locator("th a").inner_text()
    resend.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Resend the welcome email to {name}?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    assert page.axe_violations() == []
    dialog.get_by_role("button", name="Resend welcome email").click()
    expect(dialog).to_have_count(0)
    notice = page.locator(f"#{row_id} .row-notice")
    expect(notice).to_contain_text("on its way")
    expect(notice).to_be_focused()
    page.assert_not_reloaded()
