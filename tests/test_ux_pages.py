"""Issue 15 through the test client: word search, times in the viewer's zone, what a swap
announces and where focus goes, confirm dialogs and their no-JS pages, deleting a contact,
editing the email, the waiting list, the contact timeline, the header and flash messages."""

from __future__ import annotations

import json
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import select, update

from onboarding_app import accounts, contacts, provisioning
from onboarding_app.extensions import db
from onboarding_app.models import Contact, FeedEvent, User, utcnow
from tests.answers import form
from tests.conftest import NEW_PASSWORD

HX = {"HX-Request": "true"}


# --- a small HTML reader (stdlib): elements with their attributes and text --------------------

class Element:
    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs, self.children, self.parts = tag, attrs, [], []

    @property
    def text(self) -> str:
        return " ".join("".join(p if isinstance(p, str) else p.text for p in self.parts).split())

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs) -> list[Element]:
        def matches(e: Element) -> bool:
            if tag and e.tag != tag:
                return False
            for key, value in attrs.items():
                key = key.rstrip("_").replace("_", "-")
                if key == "class":
                    if value not in (e.attrs.get("class") or "").split():
                        return False
                elif e.attrs.get(key) != value:
                    return False
            return True
        return [e for e in self.iter() if matches(e)]

    def find(self, tag: str | None = None, **attrs) -> Element:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag or '*'} {attrs}>"
        return found[0]


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs))
        self.stack[-1].children.append(element)
        self.stack[-1].parts.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        self.stack[-1].parts.append(data)


def parse(html: str) -> Element:
    reader = _Reader()
    reader.feed(html)
    return reader.root


def announcement(response) -> dict:
    return json.loads(response.headers["HX-Trigger-After-Settle"])["onb:announce"]


@pytest.fixture
def token(staff, auth):
    return auth.csrf("/dashboard")


# --- search ------------------------------------------------------------------------------------

def _names(session, q: str) -> list[str]:
    return sorted(c.name for c in contacts.list_contacts(session, q=q).items)


def test_search_matches_every_word_in_any_order_ignoring_case_and_accents(app, make, session):
    make.contact("LEAD", name="Ada Lovelace", email="ada@example.com")
    make.contact("LEAD", name="Zoë Åström", email="zoe@firma.example")
    make.contact("LEAD", name="Ada Byron", email="byron@example.com")
    make.contact("LEAD", name="José Müller", email="jm@example.com")
    contacts.update_contact(session, contacts.list_contacts(session, q="jm@").items[0].id, {"company": "Crème Brûlée AG"})
    assert _names(session, "lovelace ada") == ["Ada Lovelace"]
    assert _names(session, "ADA") == ["Ada Byron", "Ada Lovelace"]
    assert _names(session, "zoe astrom") == ["Zoë Åström"]
    assert _names(session, "ÅSTRÖM firma") == ["Zoë Åström"]
    assert _names(session, "creme brulee") == ["José Müller"]  # the company, kept on update
    assert _names(session, "ada lovelace byron") == []  # every word must match
    assert _names(session, "100%") == [] and _names(session, "a_a") == []  # LIKE wildcards are literal
    page = contacts.list_contacts(session, q="  ada   ")
    assert page.total == 2


def test_search_page_and_api_use_the_same_search(client, staff, make, auth):
    make.contact("LEAD", name="Ada Lovelace", email="ada@example.com")
    make.contact("LEAD", name="Grace Hopper", email="grace@example.com")
    body = parse(client.get("/crm/contacts?q=lovelace+ADA").get_data(as_text=True))
    results = body.find(id="contact-results")
    assert [a.text for a in results.find("tbody").find_all("a")] == ["Ada Lovelace"]
    response = client.get("/crm/contacts?q=hopper+grace", headers=HX)
    assert announcement(response)["message"] == "1 contact found"
    api = client.get("/api/v1/crm/contacts?q=lovelace%20ada").get_json()
    assert [c["name"] for c in api["items"]] == ["Ada Lovelace"]


# --- times ---------------------------------------------------------------------------------------

def test_times_show_in_the_profile_zone_else_the_browser_zone(app, client, make, auth, session):
    sam = make.user("staff", email="sam@example.com", name="Sam")
    contact_id = make.contact("LEAD", name="Ada Lovelace")
    at = utcnow().replace(year=2026, month=1, day=15, hour=23, minute=30, second=0, microsecond=0)
    session.execute(update(Contact).where(Contact.id == contact_id).values(created_at=at))
    session.commit()
    auth.login("sam@example.com")

    def added(**cookies) -> tuple[str, str, str]:
        for name, value in cookies.items():
            client.set_cookie(name, value)
        page = parse(client.get(f"/crm/contacts/{contact_id}").get_data(as_text=True))
        dd = [e for e in page.find_all("dd") if e.find_all("time")][0]
        time = dd.find("time")
        return time.attrs["datetime"], time.attrs["title"], time.text

    stamp, title, text = added()
    assert stamp == "2026-01-15T23:30:00+00:00" and title == "Thu 15 Jan 2026, 23:30 (UTC)"
    assert text.endswith("ago")
    # The browser's zone (the cookie static/app.js writes): Tokyo is already on the 16th.
    assert added(tz="Asia/Tokyo")[1] == "Fri 16 Jan 2026, 08:30 (Asia/Tokyo)"
    assert added(tz="../../etc/passwd")[1] == "Thu 15 Jan 2026, 23:30 (UTC)"  # not a zone: UTC
    # The profile's zone wins over the browser's.
    session.execute(update(User).where(User.id == sam).values(timezone="America/New_York"))
    session.commit()
    assert added(tz="Asia/Tokyo")[1] == "Thu 15 Jan 2026, 18:30 (America/New_York)"


def test_relative_times_read_naturally(app):
    from onboarding_app.web import relative_time

    now = utcnow()
    assert relative_time(now - timedelta(days=3, hours=2), now) == "3 days ago"
    assert relative_time(now - timedelta(seconds=10), now) == "just now"
    assert relative_time(now + timedelta(hours=2), now) == "in 2 hours"
    # The unit is the largest the time is at least 0.85 of (static/app.js ticks by the same rule).
    assert relative_time(now - timedelta(minutes=50), now) == "50 minutes ago"
    assert relative_time(now - timedelta(minutes=52), now) == "1 hour ago"
    assert relative_time(now - timedelta(hours=60), now) == "2 days ago"  # 2.5 rounds half to even


# --- after a swap: announcement and focus ------------------------------------------------------------

@pytest.fixture
def customer(app, make, auth):
    contact_id = make.contact("QUALIFIED", name="Margaret Hamilton", email="margaret@example.com")
    with app.app_context():
        user_id = provisioning.provision_account(db.session, contact_id).user.id
        accounts.set_password(db.session, user_id, NEW_PASSWORD)
    auth.login("margaret@example.com", NEW_PASSWORD)
    return auth.csrf("/dashboard")


def test_mark_done_announces_the_progress_and_focuses_the_next_open_task(client, customer):
    response = client.post("/onboarding/tasks/complete-profile/complete",
                           data={"csrf_token": customer, **form("complete-profile")}, headers=HX)
    said = announcement(response)
    assert said["message"] == "Complete your profile: done. 2 of 4 required done."
    # The next open task's control: its form's opener, or "Mark done".
    assert said["focus"] == "#task-accept-terms .task-control"
    assert response.headers["HX-Trigger"] == "feed-changed"
    # The last open task comes after the one done: focus wraps to the first still open.
    for slug in ("add-billing-contact", "book-kickoff-call", "invite-teammates"):
        response = client.post(f"/onboarding/tasks/{slug}/complete", data={"csrf_token": customer, **form(slug)},
                               headers=HX)
    assert announcement(response)["focus"] == "#task-accept-terms .task-control"
    response = client.post("/onboarding/tasks/accept-terms/complete",
                           data={"csrf_token": customer, **form("accept-terms")}, headers=HX)
    said = announcement(response)
    assert said == {"target": "body", "focus": "#all-set-heading",
                    "message": "Review and accept the service terms: done. You're all set: all 4 required tasks are done."}
    assert parse(response.get_data(as_text=True)).find(id="all-set-heading").attrs["tabindex"] == "-1"


def test_no_js_mark_done_shows_one_message(client, customer):
    client.post("/onboarding/tasks/complete-profile/complete", data={"csrf_token": customer, **form("complete-profile")})
    client.post("/onboarding/tasks/accept-terms/complete", data={"csrf_token": customer, **form("accept-terms")})
    page = parse(client.get("/dashboard").get_data(as_text=True))
    flashes = page.find_all(class_="flash")
    assert len(flashes) == 1 and "Review and accept the service terms" in flashes[0].text
    assert flashes[0].find("button", class_="flash-close").attrs["aria-label"] == "Dismiss this message"
    assert parse(client.get("/dashboard").get_data(as_text=True)).find_all(class_="flash") == []  # never piles up


def test_status_change_announces_and_focuses_the_message(client, staff, make, token):
    contact_id = make.contact("LEAD", name="Ada Lovelace")
    response = client.post(f"/crm/contacts/{contact_id}/status", data={"csrf_token": token, "status": "QUALIFIED"},
                           headers=HX)
    assert announcement(response) == {"target": "body", "message": "Ada Lovelace is now QUALIFIED.",
                                      "focus": "#status-message"}
    assert parse(response.get_data(as_text=True)).find(id="status-message").text == "Ada Lovelace is now QUALIFIED."


def test_every_page_has_one_live_region_and_busy_controls(client, staff, make):
    contact_id = make.contact("QUALIFIED", name="Ada Lovelace")
    for path in ["/dashboard", "/crm/contacts", f"/crm/contacts/{contact_id}"]:
        page = parse(client.get(path).get_data(as_text=True))
        assert [e.attrs["id"] for e in page.find_all(**{"aria-live": "polite"})] == ["announcer"], path
        for form in page.find_all("form"):
            if "hx-post" in form.attrs or ("hx-get" in form.attrs and form.attrs.get("method") == "get"):
                assert form.attrs.get("hx-disabled-elt") == "find button", (path, form.attrs)


# --- confirm dialogs -----------------------------------------------------------------------------

def test_approve_asks_in_a_dialog_with_the_name_and_what_will_happen(client, staff, make, token, mailbox):
    contact_id = make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    response = client.get(f"/crm/contacts/{contact_id}/provision?origin=dashboard", headers=HX)
    dialog = parse(response.get_data(as_text=True)).find("dialog")
    assert "data-modal" in dialog.attrs and dialog.attrs["aria-labelledby"] == "confirm-title"
    assert dialog.find(id="confirm-title").text == "Approve Ada Lovelace?"
    said = dialog.find(id="confirm-description").text
    assert "ada@example.com" in said and "temporary password" in said and "welcome email" in said
    form = dialog.find("form", method="post")
    assert form.attrs["hx-post"] == f"/crm/contacts/{contact_id}/provision"
    assert form.attrs["hx-target"] == f"#approve-{contact_id}"
    assert form.find("input", name="origin").attrs["value"] == "dashboard"
    assert dialog.find("form", method="dialog").find("button").text == "Cancel"
    assert mailbox.messages == []  # asking changes nothing

    # Without JavaScript: the same question as a page, and a plain form.
    page = parse(client.get(f"/crm/contacts/{contact_id}/provision").get_data(as_text=True))
    assert page.find("h2", id="confirm-title").text == "Approve Ada Lovelace?"
    form = page.find("form", action=f"/crm/contacts/{contact_id}/provision")
    assert "hx-post" not in form.attrs and form.find("button").text == "Approve & Create Account"
    assert page.find("a", role="button").attrs["href"] == f"/crm/contacts/{contact_id}"

    response = client.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token}, headers=HX)
    said = announcement(response)
    assert said["focus"] == f"#approve-{contact_id} .approve-result"
    assert said["message"] == "Account created for ada@example.com; the welcome email is on its way."


def test_a_dialog_for_what_is_no_longer_possible_says_so(client, staff, make):
    contact_id = make.contact("LEAD", name="Grace Hopper")
    dialog = parse(client.get(f"/crm/contacts/{contact_id}/provision", headers=HX).get_data(as_text=True))
    assert "only a QUALIFIED contact can be approved" in dialog.find(id="confirm-description").text
    assert dialog.find_all("form", method="post") == []
    provisioned, _ = make.provisioned()
    dialog = parse(client.get(f"/crm/contacts/{provisioned}/delete", headers=HX).get_data(as_text=True))
    assert "cannot be deleted" in dialog.text and dialog.find_all("form", method="post") == []


# --- delete and edit -------------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["LEAD", "LOST"])
def test_delete_a_lead_or_lost_contact(app, client, staff, make, token, status):
    contact_id = make.contact(status, name="Charles Babbage", email="charles@example.com")
    page = parse(client.get(f"/crm/contacts/{contact_id}").get_data(as_text=True))
    assert page.find("form", action=f"/crm/contacts/{contact_id}/delete").attrs["hx-target"] == "#modal-slot"
    response = client.post(f"/crm/contacts/{contact_id}/delete", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/crm/contacts"
    listing = parse(client.get("/crm/contacts").get_data(as_text=True))
    assert listing.find(class_="flash").text.startswith("Charles Babbage was deleted.")
    with app.app_context():
        assert db.session.get(Contact, contact_id) is None
        events = db.session.execute(select(FeedEvent).order_by(FeedEvent.id)).scalars().all()
        assert all(e.contact_id is None for e in events)  # the history stays, unlinked
        assert events[-1].type == "crm.contact.deleted" and events[-1].actor_id == staff
    assert "Sam Staff deleted Charles Babbage" in client.get("/dashboard").get_data(as_text=True)


@pytest.mark.parametrize("status", ["QUALIFIED", "ONBOARDING"])
def test_other_contacts_cannot_be_deleted(app, client, staff, make, token, status):
    contact_id = make.provisioned()[0] if status == "ONBOARDING" else make.contact(status)
    page = parse(client.get(f"/crm/contacts/{contact_id}").get_data(as_text=True))
    assert page.find_all("form", action=f"/crm/contacts/{contact_id}/delete") == []
    response = client.post(f"/crm/contacts/{contact_id}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    assert "cannot be deleted" in client.get(response.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Contact, contact_id) is not None


def test_delete_needs_the_csrf_token(app, client, staff, make):
    contact_id = make.contact("LEAD")
    assert client.post(f"/crm/contacts/{contact_id}/delete").status_code == 400
    with app.app_context():
        assert db.session.get(Contact, contact_id) is not None


def test_edit_the_email_while_no_account_is_linked(app, client, staff, make, token):
    contact_id = make.contact("LEAD", name="Ada", email="ada@example.com")
    make.contact("LEAD", email="taken@example.com")
    form = {"csrf_token": token, "name": "Ada", "company": "", "phone": "", "role": "client"}
    response = client.post(f"/crm/contacts/{contact_id}/edit", data={**form, "email": "taken@example.com"})
    assert response.status_code == 409
    page = parse(response.get_data(as_text=True))
    assert "already exists" in page.find(id="email-error").text
    response = client.post(f"/crm/contacts/{contact_id}/edit", data={**form, "email": "Ada.L@Example.com"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Contact, contact_id).email == "ada.l@example.com"
    provisioned, _ = make.provisioned()
    page = parse(client.get(f"/crm/contacts/{provisioned}/edit").get_data(as_text=True))
    assert page.find_all("input", name="email") == [] and "cannot change once the account exists" in page.text


# --- dashboard, timeline, header --------------------------------------------------------------------

def test_waiting_list_is_oldest_first_paged_and_says_how_long(app, client, staff, make, session):
    ids = [make.contact("QUALIFIED", name=f"Waiting {n:02d}") for n in range(12)]
    now = utcnow()
    for n, contact_id in enumerate(ids):  # Waiting 00 became QUALIFIED most recently
        session.execute(update(Contact).where(Contact.id == contact_id)
                        .values(status_changed_at=now - timedelta(days=n, minutes=5)))
    session.commit()
    page = parse(client.get("/dashboard").get_data(as_text=True))
    waiting = page.find(id="waiting").find("ul", class_="waiting").find_all("li")
    assert [li.find("a").text for li in waiting] == [f"Waiting {n:02d}" for n in range(11, 1, -1)]
    assert waiting[0].find(class_="waited").text.startswith("waiting 2 weeks")  # 11 days, as Babel rounds it
    assert waiting[-1].find(class_="waited").text.startswith("waiting 2 days")
    section = page.find(id="waiting")
    assert section.find("a", href="/crm/contacts?status=QUALIFIED").text == "All 12 qualified contacts in the contact list"
    older = parse(client.get("/dashboard?waiting_page=2").get_data(as_text=True))
    assert [li.find("a").text for li in older.find(id="waiting").find("ul", class_="waiting").find_all("li")] == [
        "Waiting 01", "Waiting 00"]
    assert client.get("/dashboard?waiting_page=abc").status_code == 200


def test_contact_page_shows_its_own_timeline(app, client, staff, make, token):
    ada = make.contact("LEAD", name="Ada Lovelace")
    make.contact("LEAD", name="Grace Hopper")
    client.post(f"/crm/contacts/{ada}/status", data={"csrf_token": token, "status": "QUALIFIED"})
    page = parse(client.get(f"/crm/contacts/{ada}").get_data(as_text=True))
    timeline = page.find(id="timeline")
    entries = [li.find(class_="feed-text").text for li in timeline.find("ol").find_all("li")]
    assert entries == ["Sam Staff moved Ada Lovelace from LEAD to QUALIFIED", "The system added Ada Lovelace"]
    assert timeline.attrs["hx-trigger"] == "feed-changed from:body"
    fragment = client.get(f"/crm/contacts/{ada}", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="timeline"')


def test_header_shows_who_is_signed_in_and_the_favicon_exists(client, staff):
    page = parse(client.get("/dashboard").get_data(as_text=True))
    who = page.find(class_="whoami")
    assert who.find(class_="whoami-name").text == "Sam Staff" and who.find(class_="whoami-role").text == "Staff"
    assert who.find("button").text == "Sign out"
    response = client.get(page.find("link", rel="icon").attrs["href"])
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    response.close()
