"""The two flows of issue 5 in a real browser, and axe-core on the main pages.

Only what needs a browser is checked here: htmx swaps (in place, out of band, retargeted),
no page reload, confirm dialogs, events between regions (feed-changed), what the browser
does with an htmx redirect, accessibility (axe), and the screenshots. What the server
answers (pages, fragments, emails, database state) is checked by the view tests
(test_crm_views.py, test_onboarding_views.py, test_auth_views.py), which need no browser.
"""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from onboarding_app import accounts, provisioning
from onboarding_app.extensions import db
from onboarding_app.models import Contact
from tests.conftest import NEW_PASSWORD, STAFF_PASSWORD


def _wait_for_mail(mailbox, address: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mailbox.to(address):
            return mailbox.to(address)
        time.sleep(0.05)
    raise AssertionError(f"no email to {address} within {timeout}s")


def _approve(app, make, name: str, email: str, actor_id: int) -> int:
    """A QUALIFIED contact approved by staff (through the service), as the first flow does."""
    contact_id = make.contact("QUALIFIED", name=name, email=email)
    with app.app_context():
        provisioning.provision_account(db.session, contact_id, actor=actor_id)
        db.session.remove()
    return contact_id


def test_staff_approves_a_qualified_contact_without_a_reload(app, make, page, mailbox):
    make.user("staff", email="sam@example.com", name="Sam")
    contact_id = make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    make.contact("LEAD", name="Grace Hopper", email="grace@example.com")

    page.sign_in("sam@example.com", STAFF_PASSWORD)
    expect(page.locator("#waiting")).to_contain_text("Ada Lovelace")
    page.screenshot_to("staff-dashboard.png")
    page.get_by_role("link", name="Contacts").click()
    page.screenshot_to("crm-contacts.png")
    page.get_by_role("link", name="Ada Lovelace").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ada Lovelace")
    expect(page.locator("#contact-status .badge")).to_have_text("QUALIFIED")

    page.mark_page()
    page.get_by_role("button", name="Approve & Create Account").click()
    # An in-page dialog, not the browser's confirm(): the name and what will happen.
    dialog = page.get_by_role("dialog", name="Approve Ada Lovelace?")
    expect(dialog).to_contain_text("email ada@example.com the welcome email")
    dialog.get_by_role("button", name="Approve & Create Account").click()
    expect(dialog).to_have_count(0)

    result = page.locator(f"#approve-{contact_id}")
    expect(result.locator(".notice")).to_contain_text("Account created for ada@example.com")
    expect(result.locator(".notice")).to_contain_text("onboarding 0 of 4 required done")
    expect(page.locator("#contact-status .badge")).to_have_text("ONBOARDING")  # out of band
    expect(result.locator(".welcome-email")).to_contain_text("sent")
    expect(page.get_by_role("button", name="Approve & Create Account")).to_have_count(0)
    page.assert_not_reloaded()
    page.screenshot_to("crm-contact-approved.png")
    assert [m["To"] for m in _wait_for_mail(mailbox, "ada@example.com")] == ["ada@example.com"]

    # The page as anyone opening it later sees it: progress, email state, resend.
    page.reload()  # the page as anyone opening it later sees it (checked in test_crm_views)
    page.screenshot_to("crm-contact.png")


def test_new_user_completes_the_checklist_without_a_reload(app, make, page):
    # The temporary password and the password page are the axe test's and test_auth_views';
    # the checklist before and after is test_onboarding_views'. Here: the swaps in between.
    sam = make.user("staff", email="sam@example.com", name="Sam")
    contact_id = _approve(app, make, "Margaret Hamilton", "margaret@example.com", sam)
    with app.app_context():
        accounts.set_password(db.session, db.session.get(Contact, contact_id).user_id, NEW_PASSWORD)
        db.session.remove()

    user = page
    user.sign_in("margaret@example.com", NEW_PASSWORD)
    expect(user.page).to_have_url(re.compile(r"/dashboard$"))
    widget = user.locator("#onboarding-widget")
    progress = user.locator("#onboarding-progress")
    expect(progress).to_contain_text("1 of 4 required done")

    user.mark_page()
    # The profile's form opens inline; an invalid submit shows its message next to the field.
    row = user.locator("#task-complete-profile")
    row.get_by_role("button", name="Fill in").click()
    row.get_by_label("Full name").fill("")
    row.get_by_label("Company").fill("Apollo Software")
    row.get_by_label("Time zone").select_option("Europe/Paris")
    row.get_by_role("button", name="Save profile").click()
    expect(row.locator("#task-complete-profile-name-error")).to_have_text("This field is required.")
    expect(row.get_by_label("Full name")).to_be_focused()
    expect(progress).to_contain_text("1 of 4 required done")
    # The browser logs the expected 422 of that refusal as a failed resource load.
    user.console_errors[:] = [e for e in user.console_errors if "status of 422" not in e]
    row.get_by_label("Full name").fill("Margaret Hamilton")
    row.get_by_label("Job title").fill("Director")
    row.get_by_role("button", name="Save profile").click()
    expect(row.locator(".badge.state-done")).to_have_text("Done")
    expect(row.get_by_role("button", name="Edit")).to_be_visible()
    expect(row).to_contain_text("Europe/Paris")
    expect(progress).to_contain_text("2 of 4 required done")
    expect(progress.locator("progress")).to_have_attribute("value", "2")

    # The terms are readable in the row before accepting.
    row = user.locator("#task-accept-terms")
    row.get_by_role("button", name="Read and accept").click()
    expect(row.locator(".document-text")).to_contain_text("Your data stays yours")
    row.get_by_label("I have read and accept version 1").check()
    row.get_by_role("button", name="Accept", exact=True).click()
    expect(row).to_contain_text("Accepted version 1")
    expect(progress).to_contain_text("3 of 4 required done")
    # The feed below reloads itself after each completion (HX-Trigger: feed-changed).
    expect(user.locator("#feed")).to_contain_text("Margaret Hamilton completed “Review and accept the service terms”")

    # An optional task swaps its row and leaves the required count alone.
    user.locator("#task-book-kickoff-call").get_by_role("button", name="Mark done").click()
    expect(user.locator("#task-book-kickoff-call")).to_contain_text("Done")
    expect(progress).to_contain_text("3 of 4 required done")
    # The widget with the billing form open, at desktop and phone width.
    row = user.locator("#task-add-billing-contact")
    row.get_by_role("button", name="Add").click()
    row.get_by_label("Billing contact's name").fill("Accounts Payable")
    row.get_by_label("Billing email").fill("ap@apollo.example")
    row.scroll_into_view_if_needed()
    user.screenshot_to("user-dashboard.png")
    user.page.set_viewport_size({"width": 390, "height": 844})
    row.scroll_into_view_if_needed()
    # The widget and its open form fit the phone's width (the page header is the UX work's).
    assert user.evaluate("""() => [...document.querySelectorAll('#onboarding-widget *')]
        .every(e => e.getBoundingClientRect().right <= window.innerWidth + 1)""")
    user.screenshot_to("user-dashboard-phone.png")
    user.page.set_viewport_size({"width": 1280, "height": 900})

    row.get_by_role("button", name="Save billing contact").click()
    expect(widget.get_by_role("heading", name="You're all set")).to_be_visible()
    expect(user.locator("#onboarding-progress")).to_have_count(0)
    # The optional task still open stays doable in place.
    row = user.locator("#task-invite-teammates")
    row.get_by_role("button", name="Invite").click()
    row.get_by_label("Email addresses").fill("dev@apollo.example")
    row.get_by_role("button", name="Send invitations").click()
    expect(user.locator("#task-invite-teammates")).to_contain_text("Invited: dev@apollo.example")
    # The feed reloaded itself after the last required task and the optional one.
    expect(user.locator("#feed")).to_contain_text("Margaret Hamilton finished onboarding and is now active")
    expect(user.locator("#feed li").first).to_contain_text("Margaret Hamilton completed “Invite your teammates”")
    user.assert_not_reloaded()
    user.screenshot_to("user-dashboard-done.png")


def test_contact_search_as_you_type_swaps_the_results(make, page):
    make.user("staff", email="sam@example.com", name="Sam")
    make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    make.contact("LEAD", name="Grace Hopper", email="grace@example.com")
    page.sign_in("sam@example.com", STAFF_PASSWORD)
    page.open("/crm/contacts")
    page.mark_page()
    page.get_by_label("Search").press_sequentially("grac")
    expect(page.locator("#contact-results")).to_contain_text("Grace Hopper")
    expect(page.locator("#contact-results")).not_to_contain_text("Ada Lovelace")
    page.get_by_label("Search").fill("")
    page.get_by_label("Status").select_option("QUALIFIED")
    expect(page.locator("#contact-results")).to_contain_text("Ada Lovelace")
    expect(page.locator("#contact-results")).not_to_contain_text("Grace Hopper")
    assert page.evaluate("window.__noReload") == "still here"
    assert "status=QUALIFIED" in page.url  # hx-push-url keeps the address shareable


def test_pages_have_no_serious_accessibility_violations(app, make, new_page, mailbox):
    sam = make.user("staff", email="sam@example.com", name="Sam")
    qualified = make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    provisioned = _approve(app, make, "Margaret Hamilton", "margaret@example.com", sam)
    make.contact("LEAD", name="Grace Hopper", email="grace@example.com")
    temporary = mailbox.temporary_password("margaret@example.com")

    found = {}
    staff = new_page()
    staff.open("/login")
    found["sign-in"] = staff.axe_violations()
    staff.sign_in("sam@example.com", STAFF_PASSWORD)
    for name, path in [
        ("staff dashboard", "/dashboard"),
        ("contact list", "/crm/contacts"),
        ("qualified contact", f"/crm/contacts/{qualified}"),
        ("provisioned contact", f"/crm/contacts/{provisioned}"),
        ("new contact form", "/crm/contacts/new"),
    ]:
        staff.open(path)
        found[name] = staff.axe_violations()

    user = new_page()
    user.sign_in("margaret@example.com", temporary)
    found["password page"] = user.axe_violations()
    user.get_by_label("Current password", exact=True).fill(temporary)
    user.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    user.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    user.get_by_role("button", name="Set password").click()
    expect(user.locator("#onboarding-progress")).to_be_visible()
    found["user dashboard"] = user.axe_violations()

    assert {page: v for page, v in found.items() if v} == {}


def test_staff_approves_from_the_dashboard_and_the_counts_follow(make, page, mailbox):
    make.user("staff", email="sam@example.com", name="Sam")
    ada = make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    make.contact("QUALIFIED", name="Edsger Dijkstra", email="edsger@example.com")
    page.sign_in("sam@example.com", STAFF_PASSWORD)
    expect(page.locator("#pipeline .pipeline-QUALIFIED strong")).to_have_text("2")
    page.mark_page()
    page.locator(f"#approve-{ada}").get_by_role("button", name="Approve & Create Account").click()
    page.get_by_role("dialog").get_by_role("button", name="Approve & Create Account").click()
    expect(page.locator(f"#approve-{ada}")).to_contain_text("Account created for ada@example.com")
    expect(page.locator("#pipeline .pipeline-QUALIFIED strong")).to_have_text("1")  # out of band
    expect(page.locator("#pipeline .pipeline-ONBOARDING strong")).to_have_text("1")
    expect(page.locator("#feed li").first).to_contain_text("Sam approved Ada Lovelace; account created")
    expect(page.locator("#waiting")).to_contain_text("Edsger Dijkstra")
    page.assert_not_reloaded()
    _wait_for_mail(mailbox, "ada@example.com")


def test_an_ended_session_during_an_htmx_request_shows_the_sign_in_page(app, make, page, mailbox):
    sam = make.user("staff", email="sam@example.com", name="Sam")
    make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    page.sign_in("sam@example.com", STAFF_PASSWORD)
    with app.app_context():  # signed out everywhere, e.g. from another device
        accounts.end_all_sessions(db.session, sam)
        db.session.remove()
    page.get_by_role("button", name="Approve & Create Account").click()
    expect(page.page).to_have_url(re.compile(r"/login\?next=%2Fdashboard$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert mailbox.messages == []
