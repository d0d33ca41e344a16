"""Fixtures: a fresh, migrated database per test (SQLite by default, PostgreSQL when
TEST_DATABASE_URL is set), a real SMTP server on loopback, an app, a client, helpers."""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask_migrate import upgrade

from onboarding_app import create_app
from onboarding_app.extensions import db

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
ON_POSTGRES = TEST_DATABASE_URL.startswith("postgresql")
STAFF_PASSWORD = "staff-correct-horse-42"
USER_PASSWORD = "user-battery-staple-77"
NEW_PASSWORD = "violet-teapot-harbour-19"


def pytest_report_header(config):
    return f"database: {'PostgreSQL ' + TEST_DATABASE_URL if ON_POSTGRES else 'SQLite (file per test)'}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_config(database_url: str) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "APP_BASE_URL": "http://localhost",
        "MAIL_SERVER": None,
        "MAIL_SUPPRESS_SEND": False,
        "MAIL_DEFAULT_SENDER": "Onboarding <onboarding@example.test>",
        "RATELIMIT_STORAGE_URI": "memory://",
        "TEMP_PASSWORD_TTL_HOURS": 72,
        "HUEY_IMMEDIATE": True,  # jobs run at once, in the caller
    }


# --- databases ------------------------------------------------------------------------------


def _migrate(url: str) -> None:
    app = create_app(base_config(url))
    with app.app_context():
        upgrade()
        db.engine.dispose()


class PostgresDatabases:
    """A migrated template database, cloned per test with CREATE DATABASE ... TEMPLATE."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = sa.make_url(admin_url)
        self.admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self.prefix = f"onb_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.template = f"{self.prefix}_tmpl"
        self.created: list[str] = []

    def _execute(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(sql)

    def url_for(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def create_template(self) -> None:
        self._execute(f'CREATE DATABASE "{self.template}"')
        _migrate(self.url_for(self.template))

    def clone(self) -> str:
        name = f"{self.prefix}_{len(self.created)}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return self.url_for(name)

    def drop(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        for name in [*self.created, self.template]:
            self.drop(name)
        self.admin.dispose()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory):
    if ON_POSTGRES:
        databases = PostgresDatabases(TEST_DATABASE_URL)
        databases.create_template()
        yield databases
        databases.drop_all()
    else:
        path = tmp_path_factory.mktemp("template") / "template.sqlite3"
        _migrate(f"sqlite:///{path}")
        yield path


@pytest.fixture
def database_url(database_template, tmp_path):
    """A fresh database holding exactly what the migrations create."""
    if ON_POSTGRES:
        url = database_template.clone()
        yield url
        database_template.drop(sa.make_url(url).database)
        database_template.created.remove(sa.make_url(url).database)
    else:
        path = tmp_path / "app.sqlite3"
        shutil.copyfile(database_template, path)
        yield f"sqlite:///{path}"


@pytest.fixture
def empty_database_url(database_template, tmp_path):
    """An empty database (no tables), for testing the migrations themselves."""
    if ON_POSTGRES:
        name = f"{database_template.prefix}_empty_{uuid.uuid4().hex[:6]}"
        database_template._execute(f'CREATE DATABASE "{name}"')
        yield database_template.url_for(name)
        database_template.drop(name)
    else:
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"


# --- a real SMTP server on loopback ---------------------------------------------------------


@dataclass
class Mailbox:
    """What the SMTP server received, parsed."""

    messages: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse: bool = False  # answer every message with a temporary failure (server "down")

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            return "451 4.3.0 Mail server temporarily unavailable"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
        self.refuse = False

    def to(self, address: str) -> list:
        return [m for m in self.messages if m["To"] == address]

    @staticmethod
    def text(message) -> str:
        return message.get_body(preferencelist=("plain",)).get_content()

    @staticmethod
    def html(message) -> str:
        return message.get_body(preferencelist=("html",)).get_content()

    def temporary_password(self, address: str) -> str:
        messages = self.to(address)
        assert messages, f"no email to {address}"
        found = re.search(r"Temporary password: (\S+)", self.text(messages[-1]))
        assert found, "the email holds no temporary password"
        return found.group(1)


@pytest.fixture(scope="session")
def smtp_server():
    handler = Mailbox()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def mailbox(smtp_server) -> Mailbox:
    smtp_server.handler.clear()
    yield smtp_server.handler
    smtp_server.handler.clear()


# --- the app ---------------------------------------------------------------------------------


@pytest.fixture
def app_config(database_url, smtp_server, mailbox):
    config = base_config(database_url)
    config.update(MAIL_SERVER=smtp_server.hostname, MAIL_PORT=smtp_server.port)
    return config


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def session(app):
    """The app's database session inside an app context, for service tests."""
    with app.app_context():
        yield db.session
        db.session.rollback()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# --- helpers -----------------------------------------------------------------------------------


def csrf_token_from(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token"[^>]*value="([^"]+)"', html
    )
    assert found, "no CSRF token on the page"
    return found.group(1)


class Factory:
    """Makes users and contacts through the same services the app uses."""

    def __init__(self, app):
        self.app = app
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    def user(self, role: str = "staff", email: str | None = None, password: str = STAFF_PASSWORD, name: str = ""):
        from onboarding_app import accounts

        with self.app.app_context():
            user = accounts.create_user(
                db.session,
                email=email or f"{role}{self._next()}@example.com",
                role=role,
                password=password,
                name=name or f"{role.title()} Person",
            )
            return user.id

    def contact(self, status: str = "QUALIFIED", role: str = "client", email: str | None = None, name: str | None = None):
        from onboarding_app import contacts

        with self.app.app_context():
            n = self._next()
            contact = contacts.create_contact(
                db.session,
                {"name": name or f"Contact {n}", "email": email or f"contact{n}@example.com",
                 "company": f"Company {n}", "role": role},
            )
            if status in ("QUALIFIED", "LOST"):
                contacts.change_status(db.session, contact.id, status)
            return contact.id

    def provisioned(self, role: str = "client", email: str | None = None):
        """A provisioned contact; returns (contact_id, user_id)."""
        from onboarding_app import provisioning

        contact_id = self.contact("QUALIFIED", role=role, email=email)
        with self.app.app_context():
            result = provisioning.provision_account(db.session, contact_id)
            return contact_id, result.user.id


@pytest.fixture
def make(app) -> Factory:
    return Factory(app)


class Auth:
    def __init__(self, client):
        self.client = client

    def csrf(self, path: str = "/login") -> str:
        return csrf_token_from(self.client.get(path).get_data(as_text=True))

    def login(self, email: str, password: str = STAFF_PASSWORD, follow: bool = False):
        token = self.csrf("/login")
        return self.client.post(
            "/login", data={"email": email, "password": password, "csrf_token": token}, follow_redirects=follow
        )

    def logout(self):
        token = self.csrf("/account/password")
        return self.client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(client) -> Auth:
    return Auth(client)


@pytest.fixture
def staff(make, auth):
    """A signed-in staff member; returns their user id."""
    user_id = make.user("staff", email="sam@example.com", name="Sam Staff")
    response = auth.login("sam@example.com")
    assert response.status_code == 302
    return user_id
