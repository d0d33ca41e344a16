"""Issue 15 in a real browser: every page at 390 px without sideways scrolling and without a
serious axe-core violation; the approve dialog with the keyboard alone; focus and the live
region after "Mark done"; times in the browser's zone, and relative times that stay current."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from playwright.sync_api import expect

from onboarding_app import accounts, provisioning
from onboarding_app.extensions import db
from onboarding_app.web import relative_time
from tests.conftest import NEW_PASSWORD, STAFF_PASSWORD

PHONE = {"width": 390, "height": 844}


def _provisioned(app, make, name: str, email: str, staff_id: int, password: str | None = None) -> int:
    contact_id = make.contact("QUALIFIED", name=name, email=email)
    with app.app_context():
        user_id = provisioning.provision_account(db.session, contact_id, actor=staff_id).user.id
        if password:
            accounts.set_password(db.session, user_id, password)
        db.session.remove()
    return contact_id


def _overflow(page) -> int:
    """How many CSS pixels the page is wider than the viewport (0: no sideways scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def test_every_page_fits_a_phone_and_passes_axe(app, make, new_page, mailbox):
    sam = make.user("staff", email="sam@example.com", name="Sam Staff")
    qualified = make.contact("QUALIFIED", name="Ada Lovelace", email="ada.lovelace.with.a.long.address@analytical-engines.example")
    lead = make.contact("LEAD", name="Grace Hopper", email="grace@example.com")
    provisioned = _provisioned(app, make, "Margaret Hamilton", "margaret@example.com", sam, NEW_PASSWORD)
    temporary_contact = _provisioned(app, make, "Katherine Johnson", "katherine@example.com", sam)
    temporary = mailbox.temporary_password("katherine@example.com")

    found, wide = {}, {}

    def check(page, name: str) -> None:
        wide[name] = _overflow(page)
        found[name] = page.axe_violations()
        page.screenshot_to(f"phone-{name.replace(' ', '-')}.png")

    staff = new_page(viewport=PHONE)
    staff.open("/login")
    check(staff, "sign in")
    staff.sign_in("sam@example.com", STAFF_PASSWORD)
    for name, path in [
        ("staff dashboard", "/dashboard"),
        ("contact list", "/crm/contacts"),
        ("contact search", "/crm/contacts?q=ada"),
        ("onboarding tracker", "/crm/onboarding"),
        ("qualified contact", f"/crm/contacts/{qualified}"),
        ("provisioned contact", f"/crm/contacts/{provisioned}"),
        ("new contact form", "/crm/contacts/new"),
        ("edit contact form", f"/crm/contacts/{lead}/edit"),
        ("approve confirmation page", f"/crm/contacts/{qualified}/provision"),
        ("delete confirmation page", f"/crm/contacts/{lead}/delete"),
        ("password page", "/account/password"),
    ]:
        staff.open(path)
        check(staff, name)
    staff.open(f"/crm/contacts/{qualified}")
    staff.get_by_role("button", name="Approve & Create Account").click()
    expect(staff.get_by_role("dialog")).to_be_visible()
    check(staff, "approve dialog")

    user = new_page(viewport=PHONE)
    user.sign_in("margaret@example.com", NEW_PASSWORD)
    expect(user.locator("#onboarding-progress")).to_be_visible()
    check(user, "user dashboard")

    forced = new_page(viewport=PHONE)
    forced.sign_in("katherine@example.com", temporary)
    expect(forced.page).to_have_url(re.compile(r"/account/password$"))
    check(forced, "forced password page")
    assert temporary_contact

    # Round-2 pages: the admin's webhooks page and checklist editor (its Up/Down/Edit/Retire).
    make.user("admin", email="ada.admin@example.com", name="Ada Admin")
    admin = new_page(viewport=PHONE)
    admin.sign_in("ada.admin@example.com", STAFF_PASSWORD)
    for name, path in [
        ("webhooks page", "/crm/webhooks"),
        ("checklist editor", "/crm/checklists/client"),
        ("checklist task edit page", "/crm/checklists/client/tasks/complete-profile/edit"),
    ]:
        admin.open(path)
        check(admin, name)

    assert {name: px for name, px in wide.items() if px > 0} == {}
    assert {name: v for name, v in found.items() if v} == {}


def test_the_approve_dialog_works_with_the_keyboard_alone(make, page, mailbox):
    make.user("staff", email="sam@example.com", name="Sam Staff")
    contact_id = make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    page.sign_in("sam@example.com", STAFF_PASSWORD)
    page.open(f"/crm/contacts/{contact_id}")
    page.mark_page()
    approve = page.get_by_role("button", name="Approve & Create Account")
    approve.focus()
    page.keyboard.press("Enter")

    dialog = page.get_by_role("dialog", name="Approve Ada Lovelace?")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.matches(':modal')")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # the harmless choice first
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(approve).to_be_focused()  # back where it was opened
    assert mailbox.messages == []

    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Approve & Create Account")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    result = page.locator(f"#approve-{contact_id} .approve-result")
    expect(result).to_contain_text("Account created for ada@example.com")
    expect(result).to_be_focused()
    expect(page.locator("#announcer")).to_have_text(
        "Account created for ada@example.com; the welcome email is on its way.")
    expect(page.locator("#contact-status .badge")).to_have_text("ONBOARDING")
    # The timeline reloaded itself with the approval.
    expect(page.locator("#timeline li").first).to_contain_text("Sam Staff approved Ada Lovelace; account created")
    page.assert_not_reloaded()


def test_mark_done_moves_focus_to_the_next_task_and_announces_it(app, make, new_page):
    sam = make.user("staff", email="sam@example.com", name="Sam Staff")
    _provisioned(app, make, "Margaret Hamilton", "margaret@example.com", sam, NEW_PASSWORD)
    user = new_page()
    user.sign_in("margaret@example.com", NEW_PASSWORD)
    user.mark_page()
    row = user.locator("#task-complete-profile")
    row.get_by_role("button", name="Fill in").click()
    row.get_by_label("Company").fill("Apollo Software")
    row.get_by_label("Time zone").select_option("Europe/Paris")
    row.get_by_label("Job title").fill("Director")
    user.keyboard.press("Enter")  # submits the profile form
    expect(row.locator(".badge.state-done")).to_have_text("Done")
    # The next open task's control: the terms row's "Read and accept".
    expect(user.locator("#task-accept-terms").get_by_role("button", name="Read and accept")).to_be_focused()
    expect(user.locator("#announcer")).to_have_text("Complete your profile: done. 2 of 4 required done.")
    # Only the one region speaks: no other live region on the page.
    assert user.locator("[aria-live]").count() == 1
    user.assert_not_reloaded()


def test_times_follow_the_browser_zone(app, make, browser, live_server):
    make.user("staff", email="sam@example.com", name="Sam Staff")
    contact_id = make.contact("LEAD", name="Ada Lovelace")
    titles = {}
    for zone in ("Asia/Tokyo", "America/Los_Angeles"):
        context = browser.new_context(timezone_id=zone)
        page = context.new_page()
        page.goto(live_server.url + "/login")  # app.js writes the zone cookie here
        page.get_by_label("Email").fill("sam@example.com")
        page.get_by_label("Password").fill(STAFF_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{live_server.url}/crm/contacts/{contact_id}")
        time = page.locator("dl.details time")
        expect(time).to_have_text("just now")
        titles[zone] = time.get_attribute("title")
        context.close()
    assert titles["Asia/Tokyo"].endswith("(Asia/Tokyo)")
    assert titles["America/Los_Angeles"].endswith("(America/Los_Angeles)")


def test_relative_times_stay_current_on_an_open_page(make, page):
    make.user("staff", email="sam@example.com", name="Sam Staff")
    contact_id = make.contact("LEAD", name="Ada Lovelace")
    page.clock.install()  # the page's timers and Date follow this clock from now on
    page.sign_in("sam@example.com", STAFF_PASSWORD)
    page.open(f"/crm/contacts/{contact_id}")
    page.mark_page()
    created = page.locator("dl.details time")
    expect(created).to_have_text("just now")
    # Left open: the text follows the clock, by the server's rule (Babel's), without a reload.
    page.clock.fast_forward("50:00")
    expect(created).to_have_text("50 minutes ago")
    page.clock.fast_forward("02:00")
    expect(created).to_have_text("1 hour ago")  # 52 minutes is at least 0.85 of an hour
    page.clock.fast_forward("24:00:00")
    expect(created).to_have_text("1 day ago")
    page.clock.fast_forward(3 * 24 * 3600 * 1000)
    expect(created).to_have_text("4 days ago")
    assert created.get_attribute("title").endswith(")")  # the exact time stays on hover
    page.assert_not_reloaded()

    # The page's rule is the server's, unit by unit and at the edges (2.5 rounds half to even).
    now = datetime.now(timezone.utc)
    for seconds in (-10, -44, -45, -3000, -3120, -5400, -9000, -216000, -86400 * 6, -86400 * 45,
                    -86400 * 400, 7200, 86400 * 3):
        server = relative_time(now + timedelta(seconds=seconds), now)
        assert page.evaluate("s => relativeText(s)", seconds) == server, seconds
