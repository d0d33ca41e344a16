"""Sign-in, sign-out, the forced password change, CSRF, the role guard, sessions."""

import logging
from datetime import timedelta

import pytest

from onboarding_app.extensions import db
from onboarding_app.models import User, utcnow

from .conftest import NEW_PASSWORD, STAFF_PASSWORD, USER_PASSWORD, csrf_token_from, parse


def test_login_page_has_the_labelled_form(client):
    response = client.get("/login")
    page = parse(response)
    assert response.status_code == 200
    form = page.one("main form")
    assert form.attributes["method"] == "post"
    assert page.label("email") == "Email" and page.attr("main form #email", "name") == "email"
    assert page.label("password") == "Password" and page.attr("main form #password", "type") == "password"
    assert page.buttons("main form") == ["Sign in"]
    assert form.css_first('input[type="hidden"][name="csrf_token"]').attributes["value"]


def test_staff_signs_in_and_reaches_the_dashboard(make, auth, client):
    make.user("staff", email="sam@example.com")
    response = auth.login("Sam@Example.com")
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard"
    assert client.get("/dashboard").status_code == 200


@pytest.mark.parametrize("email,password", [
    ("sam@example.com", "wrong-password-123"),
    ("nobody@example.com", STAFF_PASSWORD),
])
def test_refused_sign_in_does_not_reveal_whether_the_email_exists(make, auth, client, email, password):
    make.user("staff", email="sam@example.com")
    response = auth.login(email, password)
    assert response.status_code == 401
    assert parse(response).alerts() == ["Wrong email or password."]
    assert client.get("/dashboard").status_code == 302


def test_deactivated_user_cannot_sign_in(app, make, auth, runner):
    make.user("staff", email="sam@example.com")
    assert runner.invoke(args=["users", "deactivate", "sam@example.com"]).exit_code == 0
    assert auth.login("sam@example.com").status_code == 401


def test_sign_in_without_csrf_token_is_refused(make, client):
    make.user("staff", email="sam@example.com")
    response = client.post("/login", data={"email": "sam@example.com", "password": STAFF_PASSWORD})
    assert response.status_code == 400
    assert "The form expired" in parse(response).text("main")
    assert client.get("/dashboard").status_code == 302


def test_sign_in_attempts_are_logged_without_passwords(make, auth, caplog):
    make.user("staff", email="sam@example.com")
    with caplog.at_level(logging.INFO, logger="onboarding_app.auth"):
        auth.login("sam@example.com", "wrong-password-123")
        auth.login("sam@example.com")
    assert "sign-in refused email=sam@example.com" in caplog.text
    assert "sign-in user_id=" in caplog.text
    assert "wrong-password-123" not in caplog.text and STAFF_PASSWORD not in caplog.text


def test_sign_in_is_rate_limited(app, make, auth):
    make.user("staff", email="sam@example.com")
    statuses = [auth.login("sam@example.com", "wrong-password-123").status_code for _ in range(11)]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429


def test_next_parameter_only_goes_to_this_site(make, client):
    make.user("staff", email="sam@example.com")
    token = csrf_token_from(client.get("/login"))
    response = client.post("/login?next=//evil.example/x",
                           data={"email": "sam@example.com", "password": STAFF_PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/dashboard"


def test_session_cookie_flags(app, make, auth):
    make.user("staff", email="sam@example.com")
    response = auth.login("sam@example.com")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_logout_needs_post_and_csrf(staff, client):
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/dashboard").status_code == 200


def test_logout_ends_every_session_of_the_user(app, make, staff, auth):
    other = app.test_client()
    from .conftest import Auth

    Auth(other).login("sam@example.com")
    assert other.get("/dashboard").status_code == 200
    response = auth.logout()
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert auth.client.get("/dashboard").status_code == 302
    assert other.get("/dashboard").status_code == 302


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get("/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("path", ["/crm/contacts"])
def test_staff_pages_refuse_other_roles(make, auth, client, path):
    make.user("client", email="cli@example.com", password=USER_PASSWORD)
    auth.login("cli@example.com", USER_PASSWORD)
    response = client.get(path)
    assert response.status_code == 403
    assert "for staff only" in parse(response).text("main")


# --- the temporary password -------------------------------------------------------------------


def _provisioned_user(make, mailbox):
    _, user_id = make.provisioned("client", email="ada@example.com")
    return user_id, mailbox.temporary_password("ada@example.com")


def test_temporary_password_forces_a_password_change_first(make, auth, client, mailbox):
    _, temp = _provisioned_user(make, mailbox)
    response = auth.login("ada@example.com", temp)
    assert response.status_code == 302
    for path in ("/dashboard", "/crm/contacts", "/"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"] == "/account/password"
    page = parse(client.get("/account/password"))
    assert "temporary password" in page.text('main [role="status"]')
    assert page.text("#password-rules").startswith("At least 12 characters")


def test_setting_a_password_completes_set_password_and_opens_the_app(app, make, auth, client, mailbox):
    user_id, temp = _provisioned_user(make, mailbox)
    auth.login("ada@example.com", temp)
    token = auth.csrf("/account/password")
    response = client.post("/account/password", data={
        "current_password": temp, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD,
        "csrf_token": token,
    })
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard"
    assert client.get("/dashboard").status_code == 200  # this session continues
    from onboarding_app import checklist

    with app.app_context():
        assert checklist.onboarding_state(db.session, user_id).task("set-password").completed
        assert not db.session.get(User, user_id).must_change_password


@pytest.mark.parametrize("new,confirm,message", [
    ("short", "short", "at least 12 characters"),
    ("password1234", "password1234", "commonly used password"),
    (NEW_PASSWORD, NEW_PASSWORD + "x", "The two new passwords differ."),
])
def test_weak_or_mismatched_new_password_is_refused_inline(make, auth, client, mailbox, new, confirm, message):
    _, temp = _provisioned_user(make, mailbox)
    auth.login("ada@example.com", temp)
    token = auth.csrf("/account/password")
    response = client.post("/account/password", data={
        "current_password": temp, "new_password": new, "confirm_password": confirm, "csrf_token": token,
    })
    assert response.status_code == 422
    errors = parse(response).texts("main form .field-error")
    assert any(message.lower() in error.lower() for error in errors), errors
    assert client.get("/dashboard").headers["Location"] == "/account/password"


def test_expired_temporary_password_does_not_sign_in(app, make, auth, mailbox):
    user_id, temp = _provisioned_user(make, mailbox)
    with app.app_context():
        db.session.get(User, user_id).temp_password_expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    response = auth.login("ada@example.com", temp)
    assert response.status_code == 401
    (alert,) = parse(response).alerts()
    assert "temporary password has expired" in alert


def test_rate_limit_is_shared_across_app_servers_through_redis(app_config, make):
    """With RATELIMIT_STORAGE_URI on Redis, two app processes count sign-ins together."""
    import uuid

    import redis

    from onboarding_app import create_app

    from .conftest import Auth

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (CI starts it; see .ci/run)")
    config = dict(app_config, RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/0",
                  RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}", LOGIN_RATE_LIMIT="4 per minute")
    make.user("staff", email="sam@example.com")
    servers = [create_app(config), create_app(config)]
    first, second = (Auth(server.test_client()) for server in servers)
    statuses = [first.login("sam@example.com", "wrong-password-123").status_code for _ in range(2)]
    statuses += [second.login("sam@example.com", "wrong-password-123").status_code for _ in range(3)]
    for server in servers:
        with server.app_context():
            db.engine.dispose()
    assert statuses == [401, 401, 401, 401, 429]
