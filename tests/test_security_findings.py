"""Issue 12: one test (or more) per finding of the security review, each named after it, and
the sign-in links that replace "ask staff". Run on SQLite and, with TEST_DATABASE_URL, on
PostgreSQL (the race, the NUL bytes and the big integers were found there)."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event, select

from onboarding_app import accounts, create_app, credentials, provisioning, sessions, transactions
from onboarding_app.errors import InvalidCredentials, PasswordAlreadySet, ValidationFailed
from onboarding_app.extensions import db
from onboarding_app.models import FeedEvent, OnboardingProgress, OnboardingTask, OutboundEmail, User, utcnow

from .conftest import parse, NEW_PASSWORD, STAFF_PASSWORD, USER_PASSWORD, Auth, csrf_token_from

HX = {"HX-Request": "true"}
LINK = re.compile(r"http://localhost/account/(reset|welcome)/([A-Za-z0-9_-]+)")


@pytest.fixture
def new_app(app_config):
    """Another app built from (a changed copy of) the test's config; its engine is disposed
    at the end, so PostgreSQL connections are closed."""
    made = []

    def build(**changes):
        made.append(create_app({**app_config, **changes}))
        return made[-1]

    yield build
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _link(mailbox, address: str) -> str:
    """The path of the newest sign-in link emailed to ``address``."""
    messages = mailbox.to(address)
    assert messages, f"no email to {address}"
    found = LINK.search(mailbox.text(messages[-1]))
    assert found, "the email holds no link"
    return f"/account/{found.group(1)}/{found.group(2)}"


def _user(app, email: str) -> User:
    with app.app_context():
        user = db.session.execute(select(User).where(User.email == email)).scalar_one()
        db.session.expunge(user)
        return user


def _signed_in(client) -> bool:
    response = client.get("/dashboard")
    return response.status_code == 200


def _provisioned_user(make, mailbox, email="ada@example.com"):
    contact_id, user_id = make.provisioned(email=email)
    return contact_id, user_id, mailbox.temporary_password(email)


# --- finding: resend vs password change race -----------------------------------------------------


def _race(app, first, second, *, pause_before: str = "UPDATE users", grace: float = 3.0):
    """Real threads, one interleaving: ``first`` runs until its first ``pause_before``
    statement and waits there; ``second`` runs meanwhile; ``first`` goes on once ``second``
    has finished (or after ``grace`` seconds, when ``second`` waits for a lock ``first``
    holds: PostgreSQL then settles it, a deadlock being retried). Returns both outcomes."""
    with app.app_context():
        engine = db.engine
    # Two threads stand for two processes here: no in-process turn-taking between them.
    transactions.serialize_writers(engine, False)
    paused, go = threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def hook(conn, cursor, statement, parameters, context, executemany):
        if threading.current_thread().name == "first" and statement.startswith(pause_before) and not go.is_set():
            paused.set()
            go.wait(30)

    def run(name, work):
        with app.app_context():
            try:
                outcomes[name] = work()
            except Exception as exc:  # the outcome is what the test looks at
                outcomes[name] = exc
            finally:
                db.session.remove()

    event.listen(engine, "before_cursor_execute", hook)
    try:
        a = threading.Thread(target=run, args=("first", first), name="first")
        a.start()
        assert paused.wait(30), "the first thread never reached its write"
        b = threading.Thread(target=run, args=("second", second), name="second")
        b.start()
        b.join(grace)
        go.set()
        a.join(60)
        b.join(60)
    finally:
        go.set()
        event.remove(engine, "before_cursor_execute", hook)
    return outcomes["first"], outcomes["second"]


def _assert_a_usable_way_in(app, mailbox, email: str) -> str:
    """The account can be signed into: with the user's own password, or with the temporary
    password of the newest welcome email. Returns which."""
    with app.app_context():
        user = db.session.execute(select(User).where(User.email == email)).scalar_one()
        if not user.must_change_password:
            accounts.authenticate(db.session, email, NEW_PASSWORD)
            return "own password"
        accounts.authenticate(db.session, email, mailbox.temporary_password(email))
        return "temporary password"


def test_resend_vs_password_change_race_keeps_the_password_the_user_chose(app, make, mailbox):
    """The finding: resend read "must change password", the user then set their own, and the
    resend's unconditional write wiped it (no usable password left). Now the resend's write is
    conditional and finds nothing to revoke."""
    contact_id, user_id, temp = _provisioned_user(make, mailbox)

    def resend():
        return provisioning.resend_welcome_email(db.session, contact_id)

    def change():
        return accounts.change_password(db.session, user_id, current_password=temp, new_password=NEW_PASSWORD)

    resent, changed = _race(app, resend, change)
    assert isinstance(changed, User), changed
    assert isinstance(resent, PasswordAlreadySet), resent
    assert _assert_a_usable_way_in(app, mailbox, "ada@example.com") == "own password"
    assert len(mailbox.to("ada@example.com")) == 1  # no second welcome email


def test_resend_vs_password_change_race_the_other_way_round(app, make, mailbox):
    """The user's change checked the temporary password, then a resend replaced it: the change
    (conditional on the password it checked) is refused, and the new email's password works."""
    contact_id, user_id, temp = _provisioned_user(make, mailbox)

    def change():
        return accounts.change_password(db.session, user_id, current_password=temp, new_password=NEW_PASSWORD)

    def resend():
        return provisioning.resend_welcome_email(db.session, contact_id)

    changed, resent = _race(app, change, resend)
    assert {type(changed), type(resent)} & {User}  # one of them won
    way_in = _assert_a_usable_way_in(app, mailbox, "ada@example.com")
    if isinstance(resent, User):
        assert isinstance(changed, ValidationFailed) and way_in == "temporary password"
    else:
        assert isinstance(resent, PasswordAlreadySet) and way_in == "own password"


def test_resend_vs_password_change_race_many_times_at_once(app, make, mailbox):
    """No pauses: both released together, several rounds; the account always has a way in."""
    for n in range(4):
        email = f"racer{n}@example.com"
        contact_id, user_id, temp = _provisioned_user(make, mailbox, email=email)
        barrier = threading.Barrier(2)

        def resend(contact_id=contact_id):
            with app.app_context():
                barrier.wait()
                try:
                    provisioning.resend_welcome_email(db.session, contact_id)
                except PasswordAlreadySet:
                    pass
                finally:
                    db.session.remove()

        def change(user_id=user_id, temp=temp):
            with app.app_context():
                barrier.wait()
                try:
                    accounts.change_password(db.session, user_id, current_password=temp, new_password=NEW_PASSWORD)
                except ValidationFailed:
                    pass
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=resend), threading.Thread(target=change)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        _assert_a_usable_way_in(app, mailbox, email)


# --- finding: staff takeover by provisioning -----------------------------------------------------


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_staff_takeover_by_provisioning_is_refused(app, make, session, role):
    staff_id = make.user(role, email="boss@example.com")
    contact_id = make.contact("QUALIFIED", email="boss@example.com")
    with pytest.raises(Exception) as refused:
        provisioning.provision_account(session, contact_id)
    assert getattr(refused.value, "code", None) == "staff_account"
    session.expire_all()
    assert session.get(User, staff_id).contact is None
    assert session.execute(select(sa.func.count()).select_from(OnboardingProgress)).scalar_one() == 0
    assert session.execute(select(sa.func.count()).select_from(OutboundEmail)).scalar_one() == 0


def test_staff_takeover_refusal_is_shown_inline_on_the_contact_page(app, client, staff, make):
    contact_id = make.contact("QUALIFIED", email="sam@example.com")  # the signed-in staff member's email
    token = csrf_token_from(client.get(f"/crm/contacts/{contact_id}").get_data(as_text=True))
    response = client.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token}, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "<html" not in body.lower() and "staff account" in parse(response).text(".inline-error.approve-result")
    assert "Approve &amp; Create Account" in body  # still QUALIFIED, the button is still there
    # The staff account is untouched: it signs in and sees the staff dashboard.
    assert client.get("/dashboard").status_code == 200


# --- finding: throttle -----------------------------------------------------------------------------


@pytest.fixture
def lenient_address_limit(app_config):
    """Per-address sign-in limit out of the way, to see the per-email one."""
    app_config["LOGIN_RATE_LIMIT"] = "1000 per minute"
    return app_config


def _error_text(response) -> str:
    found = re.search(r'<p class="inline-error" role="alert">([^<]*)</p>', response.get_data(as_text=True))
    return found.group(1) if found else ""


def test_throttle_per_email_locks_after_10_failures_and_answers_like_an_unknown_email(
        lenient_address_limit, make, auth, client):
    make.user("staff", email="sam@example.com")
    for _ in range(10):
        assert auth.login("sam@example.com", "wrong-password-123").status_code == 401
    locked = auth.login("sam@example.com", STAFF_PASSWORD)  # the right password, but locked
    unknown = auth.login("nobody@example.com", STAFF_PASSWORD)
    assert locked.status_code == unknown.status_code == 401
    assert _error_text(locked) == _error_text(unknown) == "Wrong email or password."
    assert not _signed_in(client)
    # Another email from the same address is not locked.
    make.user("staff", email="kim@example.com")
    assert auth.login("kim@example.com", STAFF_PASSWORD).status_code == 302


def test_throttle_per_email_counts_on_the_shared_storage(lenient_address_limit, make, new_app):
    """Two app servers on one Redis: failures on one lock the email on the other."""
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (CI starts it; see .ci/run)")
    config = dict(lenient_address_limit, RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/0",
                  RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}")
    make.user("staff", email="sam@example.com")
    first, second = (Auth(new_app(**config).test_client()) for _ in range(2))
    for _ in range(5):
        first.login("sam@example.com", "wrong-password-123")
        second.login("sam@example.com", "wrong-password-123")
    assert second.login("sam@example.com", STAFF_PASSWORD).status_code == 401


def test_throttle_forwarded_for_is_ignored_without_trusted_proxies(new_app):
    client = new_app(LOGIN_RATE_LIMIT="2 per minute").test_client()
    auth = Auth(client)
    statuses = []
    for n in range(3):
        token = auth.csrf()
        statuses.append(client.post("/login", data={"email": "x@example.com", "password": "p", "csrf_token": token},
                                    headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code)
    assert statuses == [401, 401, 429]


def test_throttle_trusted_proxies_makes_the_forwarded_address_the_client(new_app):
    app = new_app(LOGIN_RATE_LIMIT="2 per minute", TRUSTED_PROXIES=1)
    client = app.test_client()
    auth = Auth(client)
    statuses = []
    for n in range(3):
        token = auth.csrf()
        statuses.append(client.post("/login", data={"email": "x@example.com", "password": "p", "csrf_token": token},
                                    headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code)
    assert statuses == [401, 401, 401]  # three clients, one request each


def test_throttle_forgot_password_per_email_sends_at_most_a_few_links(app, make, client, mailbox):
    app.config.update(FORGOT_MIN_SECONDS=0)
    make.user("client", email="ada@example.com", password=USER_PASSWORD)
    answers = set()
    for _ in range(5):
        token = csrf_token_from(client.get("/account/forgot").get_data(as_text=True))
        response = client.post("/account/forgot", data={"email": "ada@example.com", "csrf_token": token})
        answers.add((response.status_code, _status_text(response)))
    assert len(answers) == 1  # the same answer every time
    assert len(mailbox.to("ada@example.com")) == 3  # FORGOT_EMAIL_LIMIT: 3 per hour


def test_throttle_forgot_password_per_address(app, client):
    app.config.update(FORGOT_MIN_SECONDS=0, FORGOT_RATE_LIMIT="2 per minute")
    statuses = []
    for n in range(3):
        token = csrf_token_from(client.get("/account/forgot").get_data(as_text=True))
        statuses.append(client.post("/account/forgot", data={"email": f"x{n}@example.com", "csrf_token": token}).status_code)
    assert statuses == [200, 200, 429]


def test_throttle_password_change_per_user(app, make, auth, client):
    app.config["PASSWORD_CHANGE_RATE_LIMIT"] = "2 per minute"
    make.user("staff", email="sam@example.com")
    auth.login("sam@example.com")
    statuses = []
    for _ in range(3):
        token = csrf_token_from(client.get("/account/password").get_data(as_text=True))
        statuses.append(client.post("/account/password", data={
            "current_password": "wrong-password-123", "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD, "csrf_token": token}).status_code)
    assert statuses == [422, 422, 429]


# --- finding: 500s on bad input, and forged log lines ----------------------------------------


def test_bad_input_nul_byte_in_the_sign_in_email_is_refused_not_500(make, auth, client):
    make.user("staff", email="sam@example.com")
    token = auth.csrf()
    response = client.post("/login", data={"email": "sam\x00@example.com", "password": STAFF_PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 422 and "not allowed" in response.get_data(as_text=True)
    response = client.post("/account/forgot", data={"email": "sam\x00@example.com", "csrf_token": token})
    assert response.status_code == 422


def test_bad_input_nul_bytes_are_refused_everywhere(staff, client, make, auth):
    contact_id = make.contact("QUALIFIED")
    token = csrf_token_from(client.get("/dashboard").get_data(as_text=True))
    for method, path, data in [
        ("GET", "/crm/contacts?q=a%00b", None),
        ("GET", "/crm/contacts?status=%00", None),
        ("GET", "/dashboard?before=1%00", None),
        ("POST", f"/crm/contacts/{contact_id}/status", {"status": "LEAD\x00", "csrf_token": token}),
        ("POST", "/crm/contacts/new", {"name": "A\x00", "email": "a@example.com", "csrf_token": token}),
        ("POST", "/onboarding/tasks/a%00b/complete", {"csrf_token": token}),
        ("GET", "/account/reset/abc%00def", None),
    ]:
        response = client.open(path, method=method, data=data, headers=HX if method == "POST" else None)
        assert response.status_code in (400, 404, 422), (method, path, response.status_code)
    api = client.post("/api/v1/crm/contacts", json={"name": "A\x00", "email": "a@example.com"},
                      headers={"X-CSRFToken": token})
    assert api.status_code in (400, 422) and api.get_json()["error"]["code"] in ("invalid_fields", "bad_request")


@pytest.mark.parametrize("path", ["/api/v1/feed?before=2147483648", "/dashboard?before=2147483648",
                                  "/api/v1/feed?before=99999999999999999999999", "/dashboard?before=-1"])
def test_bad_input_big_before_on_the_feed_and_dashboard_is_422(staff, client, path):
    response = client.get(path)
    assert response.status_code in (200, 422), response.status_code  # the dashboard shows the error inline
    if path.startswith("/api"):
        assert response.status_code == 422 and "before" in response.get_json()["error"]["fields"]
    else:
        assert "Must be" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/crm/contacts/2147483648", "/crm/contacts/2147483648/edit",
                                  "/crm/contacts/99999999999999999999", "/api/v1/crm/contacts/2147483648"])
def test_bad_input_big_contact_id_is_404(staff, client, path):
    assert client.get(path).status_code == 404


def test_bad_input_big_ids_in_posts_are_404(staff, client):
    token = csrf_token_from(client.get("/dashboard").get_data(as_text=True))
    for path in ("/crm/contacts/2147483648/status", "/crm/contacts/2147483648/provision",
                 "/crm/contacts/2147483648/resend-welcome"):
        assert client.post(path, data={"csrf_token": token, "status": "LEAD"}).status_code == 404


@pytest.mark.parametrize("target", ["/dashboard\r\nSet-Cookie: x=1", "/crm\nfoo", "/\t/evil.example", "/%0d%0a"])
def test_bad_input_cr_lf_in_next_after_sign_in_goes_to_the_dashboard(make, auth, client, target):
    make.user("staff", email="sam@example.com")
    token = auth.csrf()
    response = client.post("/login", query_string={"next": target},
                           data={"email": "sam@example.com", "password": STAFF_PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "\n" not in location and "\r" not in location and "evil" not in location
    if "%0d" not in target:
        assert location == "/dashboard"


def test_bad_input_user_text_cannot_forge_log_lines(make, auth, client, caplog):
    make.user("staff", email="sam@example.com")
    forged = "x@example.com\nINFO [onboarding_app.auth] sign-in user_id=1 ip=127.0.0.1"
    with caplog.at_level(logging.INFO, logger="onboarding_app"):
        auth.login(forged, "wrong-password-123")
    for record in caplog.records:
        assert "\n" not in record.getMessage() and "\r" not in record.getMessage(), record.getMessage()
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sign-in refused")]
    assert len(refused) == 1 and "x@example.com\\ninfo [onboarding_app.auth]" in refused[0]
    assert not [r for r in caplog.records if r.getMessage().startswith("sign-in user_id")]


# --- finding: sessions ---------------------------------------------------------------------------


def test_sessions_end_after_idle_minutes(new_app, make):
    client = new_app(SESSION_IDLE_MINUTES=0.5).test_client()
    make.user("staff", email="sam@example.com")
    Auth(client).login("sam@example.com")
    assert _signed_in(client)
    with client.session_transaction() as s:
        s[sessions.SEEN_AT] -= 29  # 29 s without a request: still on
    assert _signed_in(client)
    with client.session_transaction() as s:
        s[sessions.SEEN_AT] -= 31
    response = client.get("/dashboard")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert "without activity" in client.get("/login").get_data(as_text=True)


def test_sessions_end_after_max_hours_even_when_active(make, auth, client):
    make.user("staff", email="sam@example.com")
    auth.login("sam@example.com")
    with client.session_transaction() as s:
        s[sessions.SIGNED_IN_AT] -= 24 * 3600 + 1  # seen a moment ago, signed in a day ago
    assert not _signed_in(client)


def test_sessions_opened_with_a_temporary_password_end_when_it_is_resent(app, make, client, auth, mailbox):
    contact_id, user_id, temp = _provisioned_user(make, mailbox)
    assert auth.login("ada@example.com", temp).status_code == 302
    assert client.get("/account/password").status_code == 200
    with app.app_context():
        provisioning.resend_welcome_email(db.session, contact_id)
    assert client.get("/account/password").status_code == 302  # signed out
    new_temp = mailbox.temporary_password("ada@example.com")
    assert auth.login("ada@example.com", new_temp).status_code == 302  # the new one works


def test_sessions_opened_with_a_temporary_password_end_when_it_expires(app, make, client, auth, mailbox):
    _, user_id, temp = _provisioned_user(make, mailbox)
    auth.login("ada@example.com", temp)
    assert client.get("/account/password").status_code == 200
    with app.app_context():
        db.session.get(User, user_id).temp_password_expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert client.get("/account/password").status_code == 302


def test_sessions_survive_setting_your_own_password(app, make, client, auth, mailbox):
    _, _, temp = _provisioned_user(make, mailbox)
    auth.login("ada@example.com", temp)
    token = csrf_token_from(client.get("/account/password").get_data(as_text=True))
    response = client.post("/account/password", data={"current_password": temp, "new_password": NEW_PASSWORD,
                                                      "confirm_password": NEW_PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    assert _signed_in(client)
    with client.session_transaction() as s:
        assert sessions.TEMPORARY_PASSWORD not in s


# --- the links: forgot password, reset, welcome, the expired temporary password ----------------


def _status_text(response) -> str:
    """The answer's words, without the per-session CSRF token."""
    return re.sub(r'(name="csrf_token"[^>]*value=|name="csrf-token" content=)"[^"]*"', "", response.get_data(as_text=True))


def test_forgot_password_answers_known_and_unknown_alike_in_content_and_time(app, make, client, mailbox):
    # The floor is well above what a known address costs here (the reset email is even
    # delivered inline: the worker runs in immediate mode in tests), so both take the floor.
    app.config["FORGOT_MIN_SECONDS"] = 0.8
    make.user("client", email="ada@example.com", password=USER_PASSWORD)
    answers = {}
    for email in ("ada@example.com", "nobody@example.com", "ada@example.com", "nobody@example.com"):
        token = csrf_token_from(client.get("/account/forgot").get_data(as_text=True))
        started = time.perf_counter()
        response = client.post("/account/forgot", data={"email": email, "csrf_token": token})
        elapsed = time.perf_counter() - started
        text = _status_text(response).replace(email, "EMAIL")
        answers.setdefault(email, []).append((response.status_code, text, elapsed))
    (known, unknown) = answers["ada@example.com"], answers["nobody@example.com"]
    assert {(s, t) for s, t, _ in known} == {(s, t) for s, t, _ in unknown}
    assert all(0.8 <= e < 1.0 for _, _, e in known + unknown), [e for _, _, e in known + unknown]
    assert len(mailbox.to("ada@example.com")) == 2 and not mailbox.to("nobody@example.com")


def test_reset_link_get_never_uses_it_and_post_sets_the_password(app, make, client, mailbox):
    user_id = make.user("client", email="ada@example.com", password=USER_PASSWORD)
    # Another browser is signed in as Ada: the reset ends it.
    other = app.test_client()
    Auth(other).login("ada@example.com", USER_PASSWORD)
    assert _signed_in(other)
    client.post("/account/forgot", data={"email": "ada@example.com",
                                         "csrf_token": csrf_token_from(client.get("/account/forgot").get_data(as_text=True))})
    path = _link(mailbox, "ada@example.com")
    assert path.startswith("/account/reset/") and len(path.rsplit("/", 1)[1]) >= 22  # >= 128 bits
    for _ in range(3):  # a mail scanner, then the user, open it
        page = client.get(path)
        assert page.status_code == 200 and 'name="new_password"' in page.get_data(as_text=True)
    with app.app_context():
        stored = db.session.get(User, user_id).link_token_hash
        assert stored and stored != path.rsplit("/", 1)[1]  # only the hash is kept
    token = csrf_token_from(page.get_data(as_text=True))
    weak = client.post(path, data={"new_password": "password1234", "confirm_password": "password1234",
                                   "csrf_token": token})
    assert weak.status_code == 422 and "commonly used" in weak.get_data(as_text=True)
    done = client.post(path, data={"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD, "csrf_token": token})
    assert done.status_code == 302 and done.headers["Location"] == "/dashboard"
    assert _signed_in(client)
    assert not _signed_in(other)  # the other session ended
    with app.app_context():
        accounts.authenticate(db.session, "ada@example.com", NEW_PASSWORD)
        with pytest.raises(InvalidCredentials):
            accounts.authenticate(db.session, "ada@example.com", USER_PASSWORD)
    # Single use: the link is dead, and says so kindly, offering a new one.
    again = app.test_client().get(path)
    assert again.status_code == 404 and "Email me a new link" in again.get_data(as_text=True)
    # The stored copy of the email has the link redacted.
    with app.app_context():
        body = db.session.execute(select(OutboundEmail.body_text).where(
            OutboundEmail.kind == "password_reset")).scalar_one()
        assert credentials.REDACTED_LINK in body and path not in body


def test_reset_link_expires_and_a_newer_one_ends_the_older(app_config, app, make, client, mailbox):
    make.user("client", email="ada@example.com", password=USER_PASSWORD)
    with app.app_context():
        accounts.request_password_reset(db.session, "ada@example.com")
        first = _link(mailbox, "ada@example.com")
        accounts.request_password_reset(db.session, "ada@example.com")
        second = _link(mailbox, "ada@example.com")
    assert first != second
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200
    with app.app_context():
        db.session.execute(sa.update(User).values(link_expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert client.get(second).status_code == 404


def test_reset_link_completes_set_password_for_a_new_account(app, make, client, mailbox):
    contact_id, user_id, _ = _provisioned_user(make, mailbox)
    with app.app_context():
        accounts.request_password_reset(db.session, "ada@example.com")
    path = _link(mailbox, "ada@example.com")
    token = csrf_token_from(client.get(path).get_data(as_text=True))
    assert client.post(path, data={"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD,
                                   "csrf_token": token}).status_code == 302
    with app.app_context():
        user = db.session.get(User, user_id)
        assert not user.must_change_password
        done = db.session.execute(
            select(OnboardingProgress.completed).join(OnboardingTask).where(
                OnboardingProgress.user_id == user_id, OnboardingTask.slug == "set-password")
        ).scalar_one()
        assert done == 1
        assert db.session.execute(select(FeedEvent).where(FeedEvent.type == "account.password.changed")).first()


def test_expired_temporary_password_offers_email_me_a_new_link(app, make, client, auth, mailbox):
    _, user_id, temp = _provisioned_user(make, mailbox)
    with app.app_context():
        db.session.get(User, user_id).temp_password_expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    response = auth.login("ada@example.com", temp)
    html = response.get_data(as_text=True)
    assert response.status_code == 401 and "Email me a new link" in html
    form = re.search(r'<form method="post" action="/account/forgot"[^>]*>(.*?)</form>', html, re.S).group(1)
    assert 'value="ada@example.com"' in form
    client.post("/account/forgot", data={"email": "ada@example.com", "csrf_token": csrf_token_from(html)})
    assert _link(mailbox, "ada@example.com").startswith("/account/reset/")


def test_welcome_credential_link_sends_a_set_password_link(new_app, mailbox):
    app = new_app(WELCOME_CREDENTIAL="link")
    from .conftest import Factory

    contact_id, user_id = Factory(app).provisioned(email="ada@example.com")
    text = mailbox.text(mailbox.to("ada@example.com")[-1])
    assert "Temporary password" not in text
    path = _link(mailbox, "ada@example.com")
    assert path.startswith("/account/welcome/")
    client = app.test_client()
    page = client.get(path)
    assert page.status_code == 200 and "Welcome" in page.get_data(as_text=True)
    # A reset route does not take a welcome link.
    assert client.get(path.replace("/welcome/", "/reset/")).status_code == 404
    token = csrf_token_from(page.get_data(as_text=True))
    assert client.post(path, data={"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD,
                                   "csrf_token": token}).status_code == 302
    assert client.get("/dashboard").status_code == 200
    # Resend once the password is set: refused; before it, a fresh link ends the old one.
    with app.app_context():
        with pytest.raises(PasswordAlreadySet):
            provisioning.resend_welcome_email(db.session, contact_id)


def test_welcome_link_resend_ends_the_old_link(new_app, mailbox):
    app = new_app(WELCOME_CREDENTIAL="link")
    from .conftest import Factory

    contact_id, _ = Factory(app).provisioned(email="ada@example.com")
    first = _link(mailbox, "ada@example.com")
    with app.app_context():
        provisioning.resend_welcome_email(db.session, contact_id)
    second = _link(mailbox, "ada@example.com")
    client = app.test_client()
    assert client.get(first).status_code == 404 and client.get(second).status_code == 200


def test_cli_users_reset_password_emails_a_link(runner, make, mailbox):
    make.user("staff", email="sam@example.com")
    result = runner.invoke(args=["users", "reset-password", "Sam@Example.com"])
    assert result.exit_code == 0 and "sent" in result.output
    assert _link(mailbox, "sam@example.com").startswith("/account/reset/")
    unknown = runner.invoke(args=["users", "reset-password", "nobody@example.com"])
    assert unknown.exit_code != 0 and "No user has the email" in unknown.output
