"""Fixtures: a fresh, migrated database per test (SQLite by default, PostgreSQL when
TEST_DATABASE_URL is set), a real SMTP server on loopback, an app, a client, helpers."""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import socket
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask_migrate import upgrade
from jinja2 import BytecodeCache
from selectolax.lexbor import LexborHTMLParser

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


# Argon2id at its minimum cost: a hash takes microseconds instead of ~20 ms, and the suite
# hashes and verifies hundreds of passwords. The production parameters (config.DEFAULTS) are
# asserted by tests/test_security.py::test_argon2id_meets_asvs_minimums, on an app built
# without this override.
CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST_KIB": 8, "ARGON2_PARALLELISM": 1}


def base_config(database_url: str) -> dict:
    return {
        "APP_ENV": "test",
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
        **CHEAP_ARGON2,
    }


# --- databases ------------------------------------------------------------------------------


def _migrate(url: str) -> None:
    app = create_app(base_config(url))
    with app.app_context():
        upgrade()
        db.engine.dispose()


# Everything a test could change in a database's schema: tables, columns, constraints,
# indexes, sequences, triggers, functions, extensions. A reset database must match the template.
_SCHEMA_FINGERPRINT = sa.text("""
SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item), '')) FROM (
    SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' '
           || is_nullable || ' ' || coalesce(column_default, '')
      FROM information_schema.columns WHERE table_schema = 'public'
    UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
    UNION ALL SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' '
           || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL SELECT 'sequence ' || sequencename FROM pg_sequences WHERE schemaname = 'public'
    UNION ALL SELECT 'trigger ' || tgrelid::regclass::text || ' ' || tgname || ' ' || tgenabled::text
      FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL SELECT 'function ' || proname || ' ' || md5(prosrc)
      FROM pg_proc WHERE pronamespace = 'public'::regnamespace
    UNION ALL SELECT 'extension ' || extname || ' ' || extversion FROM pg_extension
) AS schema(item)
""")


class PostgresDatabases:
    """Test databases cloned from a migrated template with CREATE DATABASE ... TEMPLATE, and
    reused: a clone costs about 0.3 s (a checkpoint and a copy), so when a test ends its
    database is reset to the template's exact content in one transaction (every row deleted,
    the migrations' seed rows and every sequence position put back: a few milliseconds) and
    handed to the next test. A database whose schema differs from the template's afterwards
    (a migration test downgrades it) or that cannot be reset (a connection a test left open
    still holds a lock) is dropped instead, and the next test gets a fresh clone."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = sa.make_url(admin_url)
        self.admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self.prefix = f"onb_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.template = f"{self.prefix}_tmpl"
        self.created: list[str] = []
        self.idle: list[str] = []  # clean databases, ready for the next test
        self._serial = 0
        self._engines: dict[str, sa.Engine] = {}  # one connection per database, for resets
        self.lock_timeout = "2s"

    def _execute(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(sql)

    def url_for(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def create_template(self) -> None:
        self._execute(f'CREATE DATABASE "{self.template}"')
        _migrate(self.url_for(self.template))
        engine = sa.create_engine(self.url_for(self.template), poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            self.fingerprint = conn.execute(_SCHEMA_FINGERPRINT).scalar_one()
            metadata = sa.MetaData()
            metadata.reflect(conn)
            self.tables = list(metadata.sorted_tables)
            self.seed_rows = {
                table.name: [dict(row) for row in conn.execute(sa.select(table)).mappings()]
                for table in self.tables
            }
            self.sequences = conn.execute(sa.text(
                "SELECT format('%I.%I', schemaname, sequencename), coalesce(last_value, start_value), "
                "last_value IS NOT NULL FROM pg_sequences WHERE schemaname = 'public'"
            )).all()
        engine.dispose()

    def clone(self) -> str:
        self._serial += 1
        name = f"{self.prefix}_{self._serial}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return name

    def acquire(self) -> str:
        """The name of a database holding exactly what the migrations create."""
        return self.idle.pop() if self.idle else self.clone()

    def release(self, name: str) -> None:
        if self._reset(name):
            self.idle.append(name)
        else:
            self.drop(name)

    def _reset(self, name: str) -> bool:
        engine = self._engines.get(name)
        if engine is None:
            engine = self._engines[name] = sa.create_engine(self.url_for(name), pool_size=1, max_overflow=0)
        try:
            with engine.begin() as conn:
                # Waiting for a lock means a test left a transaction open: drop that database.
                conn.execute(sa.text("SELECT set_config('lock_timeout', :timeout, true)"), {"timeout": self.lock_timeout})
                if conn.execute(_SCHEMA_FINGERPRINT).scalar_one() != self.fingerprint:
                    return False
                # No triggers, no foreign-key checks: the seed rows go back exactly as they were.
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                for table in reversed(self.tables):
                    conn.execute(table.delete())
                for table in self.tables:
                    if self.seed_rows[table.name]:
                        conn.execute(table.insert(), self.seed_rows[table.name])
                for sequence, value, called in self.sequences:
                    conn.execute(sa.select(sa.func.setval(sequence, value, called)))
            return True
        except sa.exc.DBAPIError:
            return False

    def drop(self, name: str) -> None:
        engine = self._engines.pop(name, None)
        if engine is not None:
            engine.dispose()
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)
        if name in self.idle:
            self.idle.remove(name)

    def drop_all(self) -> None:
        for name in [*self.created]:
            self.drop(name)
        self.drop(self.template)
        self.admin.dispose()


def _sqlite_directory(tmp_path_factory) -> Path:
    """Where the SQLite files live: in memory (tmpfs) when the machine has one, so a commit's
    fsync costs nothing; pytest's temporary directory otherwise."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return Path(tempfile.mkdtemp(prefix="onb-test-", dir="/dev/shm"))
    return tmp_path_factory.mktemp("sqlite")


@pytest.fixture(scope="session")
def database_template(tmp_path_factory):
    if ON_POSTGRES:
        databases = PostgresDatabases(TEST_DATABASE_URL)
        try:
            databases.create_template()
            yield databases
        finally:
            databases.drop_all()
    else:
        directory = _sqlite_directory(tmp_path_factory)
        path = directory / "template.sqlite3"
        _migrate(f"sqlite:///{path}")
        yield path
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def database_url(database_template):
    """A fresh database holding exactly what the migrations create."""
    if ON_POSTGRES:
        name = database_template.acquire()
        yield database_template.url_for(name)
        database_template.release(name)
    else:
        path = database_template.parent / f"{uuid.uuid4().hex}.sqlite3"
        shutil.copyfile(database_template, path)
        yield f"sqlite:///{path}"
        for leftover in path.parent.glob(path.name + "*"):  # the file, and its -journal/-wal
            leftover.unlink()


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
    refuse_to: set = field(default_factory=set)  # recipients refused (the conversation goes on)
    conversations: int = 0  # SMTP connections opened

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.conversations += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse_to:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

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
        self.refuse_to = set()
        self.conversations = 0

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


class _SharedTemplateCode(BytecodeCache):
    """Compiled templates kept in memory for the whole run. Every test builds its own app, and
    each app's Jinja environment would otherwise parse and compile every template it renders
    again. Jinja checks each template's source checksum, so an edited template recompiles."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


TEMPLATE_CODE = _SharedTemplateCode()


def make_app(config: dict):
    """create_app for tests: the app as production builds it, sharing compiled templates."""
    app = create_app(config)
    app.jinja_env.bytecode_cache = TEMPLATE_CODE
    return app


@pytest.fixture
def app(app_config):
    app = make_app(app_config)
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


def squash(text: str) -> str:
    """Text as a reader sees it: runs of whitespace (line breaks, indentation) as one space."""
    return " ".join(text.split())


class Html:
    """A page or an htmx fragment, parsed. Tests select elements (by id, role, name, label)
    and read their text and attributes instead of matching markup, so a reordered attribute or
    a wrapped line changes nothing while a missing element or a wrong value still fails."""

    def __init__(self, source) -> None:
        self.source = source.get_data(as_text=True) if hasattr(source, "get_data") else source
        self.tree = LexborHTMLParser(self.source)

    @property
    def is_document(self) -> bool:
        """A whole page rather than a fragment for htmx to swap in. The parser puts a fragment
        in an invented <html><head><body>; only a page has a head with a title."""
        return self.tree.css_first("head > title") is not None

    @property
    def top(self) -> list:
        """The fragment's top-level elements: what htmx swaps in (the first) and out of band."""
        return [node for node in self.tree.body.iter()] if self.tree.body else []

    def all(self, selector: str) -> list:
        return self.tree.css(selector)

    def one(self, selector: str):
        """The only element matching ``selector``; fails when there is none or several."""
        found = self.tree.css(selector)
        assert len(found) == 1, f"{len(found)} elements match {selector!r}"
        return found[0]

    def has(self, selector: str) -> bool:
        return self.tree.css_first(selector) is not None

    def text(self, selector: str | None = None) -> str:
        """The squashed text of the element ``selector`` matches (exactly one), or of the body."""
        node = self.one(selector) if selector else self.tree.body
        return squash(node.text(deep=True)) if node is not None else ""

    def texts(self, selector: str) -> list[str]:
        return [squash(node.text(deep=True)) for node in self.tree.css(selector)]

    def attr(self, selector: str, name: str) -> str | None:
        return self.one(selector).attributes.get(name)

    def buttons(self, selector: str = "body") -> list[str]:
        """The labels of the buttons inside ``selector``."""
        return [squash(node.text(deep=True)) for node in self.tree.css(f"{selector} button")]

    def label(self, field_id: str) -> str:
        return self.text(f'label[for="{field_id}"]')

    def field_error(self, field_id: str) -> str:
        """The error shown under a form field, which the field points to (aria-describedby)."""
        field = self.one(f"#{field_id}")
        assert field.attributes.get("aria-invalid") == "true", f"{field_id} is not marked invalid"
        assert field.attributes.get("aria-describedby") == f"{field_id}-error"
        return self.text(f"#{field_id}-error")

    def field_errors(self) -> dict[str, str]:
        """Every error under a form field, by field: the forms macro's ``#NAME-error``."""
        return {
            node.id.removesuffix("-error"): squash(node.text(deep=True))
            for node in self.tree.css("small.field-error")
        }

    def alerts(self) -> list[str]:
        return self.texts('[role="alert"]')

    def flashes(self) -> list[str]:
        """The flashed message a page shows (one at most), without its dismiss button."""
        return self.texts(".flash > p")


def parse(response) -> Html:
    """A test-client response (or a string of HTML), parsed."""
    return Html(response)


def csrf_token_from(page) -> str:
    """The CSRF token of a page: its <meta name="csrf-token">, else a form's hidden field."""
    html = page if isinstance(page, Html) else Html(page)
    for selector, attribute in (('meta[name="csrf-token"]', "content"), ('input[name="csrf_token"]', "value")):
        node = html.tree.css_first(selector)
        if node is not None and node.attributes.get(attribute):
            return node.attributes[attribute]
    raise AssertionError("no CSRF token on the page")


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
        return csrf_token_from(self.client.get(path))

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
