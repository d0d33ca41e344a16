"""Build a benchmark database: N contacts in every status, N/10 provisioned users with their
checklists, 10×N feed events, plus the staff user and API tokens the load generator uses.

The schema comes from the migrations (``flask_migrate.upgrade``). Rows go in with bulk
inserts: ``COPY`` on PostgreSQL, ``executemany`` on SQLite, never one ORM object at a time.
Everything is deterministic for a given N, so two runs measure the same data.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa

from onboarding_app.models import fold

STAFF_EMAIL = "bench.staff@example.com"
STAFF_PASSWORD = "bench-staff-lantern-orchard-2026"
USER_PASSWORD = "bench-user-copper-meadow-2026"
# Users whose checklists the onboarding API benchmark reads and ticks (ONBOARDING, with
# required tasks still open, so the optional tasks it ticks never finish their onboarding).
API_USERS = 50
# Bearer tokens for the staff member. The API limits each token to API_RATE_LIMIT
# (600 a minute), so the load generator spreads its requests over many tokens, as many
# scripts each with their own token would.
STAFF_TOKENS = 100
# Contact search is measured twice: a common surname, whose matches grow with N (0.7% of the
# QUALIFIED contacts), and one person's email, which matches one contact at any N.
SEARCH_TERM = "jackson"

FIRST = (
    "Ada Alan Grace Linus Barbara Dennis Ken Margaret Edsger Donald Frances Tim Radia John "
    "Sophie Guido Bjarne Anita Katherine Dorothy Mary Hedy Jean Annie Evelyn Joan Lynn "
    "Shafi Leslie Niklaus Tony Robin Vint Bob Whitfield Martin Susan Carol Ivan Peter"
).split()
LAST = (
    "Lovelace Turing Hopper Torvalds Liskov Ritchie Thompson Hamilton Dijkstra Knuth Allen "
    "Berners Perlman Backus Wilson Rossum Stroustrup Borg Johnson Vaughan Keller Lamarr "
    "Sammet Easley Boyd Clarke Conway Goldwasser Lamport Wirth Hoare Milner Cerf Kahn Diffie "
    "Hellman Kare Widlar Sutherland Engelbart Jackson Ng Bell Lee Fischer Garcia Martinez "
    "Nakamura Okafor Novak Kowalski Silva Haddad Jensen Dubois Rossi Schmidt Petrov Tanaka"
).split()
COMPANY = (
    "Acme Globex Initech Umbrella Hooli Vandelay Stark Wayne Wonka Tyrell Cyberdyne Soylent "
    "Aperture Gringotts Oscorp Monarch Dunder Prestige Massive Nakatomi Virtucon Pied Blue "
    "Northwind Contoso Fabrikam Litware Proseware Adatum Tailspin Wingtip Margie Lucerne"
).split()
SUFFIX = ("Ltd", "Inc", "GmbH", "Labs", "Systems", "Group", "Partners", "Co")
FEED_TYPES = (
    "crm.contact.created",
    "crm.contact.status_changed",
    "crm.contact.updated",
    "onboarding.account.provisioned",
    "onboarding.task.completed",
)


@dataclass
class BenchData:
    """What the load generator needs to know about a built database."""

    database_url: str
    n: int
    staff_email: str = STAFF_EMAIL
    staff_password: str = STAFF_PASSWORD
    staff_tokens: list[str] = field(default_factory=list)
    # (token, slug) pairs: client users with required tasks open, each with an optional task.
    user_tokens: list[tuple[str, str]] = field(default_factory=list)
    qualified_ids: list[int] = field(default_factory=list)  # newest first, for provisioning
    search_exact: str = ""  # the start of one QUALIFIED contact's email, e.g. "ada.hopper.3@"
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict:
        data = asdict(self)
        data["user_tokens"] = len(self.user_tokens)
        data["qualified_ids"] = len(self.qualified_ids)
        data["staff_tokens"] = len(self.staff_tokens)
        data.pop("staff_password")
        return data


def staff_gets(data: BenchData) -> dict[str, tuple[str, bool]]:
    """The staff member's GET routes whose cost must not follow the data (benchmarks.run's
    FLAT_ROUTES), as benchmarks.run and benchmarks.inprocess both send them: name -> (path,
    whether it is a page, sent with the signed-in session; else with the staff's bearer tokens)."""
    return {
        "api_contacts_list": ("/api/v1/crm/contacts?per_page=20", False),
        "api_contacts_search": (f"/api/v1/crm/contacts?{urlencode({'status': 'QUALIFIED', 'q': SEARCH_TERM})}", False),
        "api_contacts_search_one": (
            f"/api/v1/crm/contacts?{urlencode({'status': 'QUALIFIED', 'q': data.search_exact})}", False),
        "crm_contacts": ("/crm/contacts", True),
        "dashboard": ("/dashboard", True),
        "tracker": ("/crm/onboarding", True),
        "api_tracker": ("/api/v1/onboarding/accounts", False),
    }


def csrf_token(page: bytes) -> str:
    """The CSRF token of a page (its form's field, else its meta tag), to sign in with."""
    found = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        rb'name="csrf-token" content="([^"]+)"', page)
    return found.group(1).decode()


def status_for(i: int) -> str:
    """Every tenth contact is provisioned; of the rest, 4 LEAD, 4 QUALIFIED, 1 LOST in 9."""
    r = i % 10
    if r == 0:
        return "ONBOARDING" if (i // 10) % 3 else "ACTIVE"
    return ("LEAD", "QUALIFIED", "LEAD", "QUALIFIED", "LOST", "LEAD", "QUALIFIED", "LEAD", "QUALIFIED")[r - 1]


def _ts(value: datetime) -> str:
    """Naive UTC, as the app's UTCDateTime stores it (SQLite text, PostgreSQL timestamp)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _bulk(conn: sa.Connection, table: str, columns: list[str], rows: list[tuple]) -> None:
    """Insert many rows at once: COPY on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection  # a psycopg connection
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    placeholders = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)


def prepare_database(base_url: str, n: int, workdir: Path) -> str:
    """A new, empty database for size N: a file under ``workdir`` for SQLite, or
    ``<database>_<n>`` on the server of ``base_url`` for PostgreSQL (dropped first)."""
    url = sa.make_url(base_url)
    if url.get_backend_name() == "sqlite":
        path = workdir / f"bench_{n}.sqlite3"
        for suffix in ("", "-wal", "-shm", "-journal", "-writer"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    name = f"{url.database}_{n}"
    _pg_admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(database_url: str) -> None:
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal", "-writer"):
            Path(f"{url.database}{suffix}").unlink(missing_ok=True)
    else:
        _pg_admin(database_url, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


def _pg_admin(url: str, *statements: str) -> None:
    admin = sa.create_engine(
        sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    with admin.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    admin.dispose()


def build(database_url: str, n: int, *, quiet: bool = False) -> BenchData:
    """Migrate the (empty) database and fill it for size N."""
    from flask_migrate import upgrade

    from onboarding_app import create_app
    from onboarding_app.extensions import db
    from onboarding_app.security import generate_api_token, hash_api_token, hash_password

    started = time.perf_counter()
    # An offline builder, not a server: development mode (no mail server, no public address).
    app = create_app({"APP_ENV": "development", "SQLALCHEMY_DATABASE_URI": database_url,
                      "SECRET_KEY": "benchmark-builder"})
    rng = random.Random(n)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - timedelta(days=365)
    data = BenchData(database_url=database_url, n=n)
    with app.app_context():
        upgrade()
        staff_hash = hash_password(STAFF_PASSWORD)
        user_hash = hash_password(USER_PASSWORD)
        engine = db.engine
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
            tasks = conn.exec_driver_sql(
                "SELECT id, role, slug, required, kind FROM onboarding_tasks ORDER BY role, position"
            ).all()
            by_role: dict[str, list] = {}
            for task in tasks:
                by_role.setdefault(task.role, []).append(task)

            # Users: the staff member (id 1), then one per provisioned contact.
            n_users = n // 10
            ts = _ts(start)
            user_rows = [(1, STAFF_EMAIL, "Bench Staff", "staff", staff_hash, False, None, True,
                          secrets.token_urlsafe(24), ts, ts)]
            user_role: dict[int, str] = {}
            contact_rows = []
            for i in range(n):
                cid = i + 1
                first, last, firm = rng.choice(FIRST), rng.choice(LAST), rng.choice(COMPANY)
                company = f"{firm} {SUFFIX[i % len(SUFFIX)]}"
                status = status_for(i)
                role = "partner" if i % 7 == 3 else "client"
                created = _ts(start + timedelta(seconds=int(cid * 31_536_000 / max(n, 1))))
                user_id = None
                if i % 10 == 0:
                    user_id = len(user_rows) + 1
                    user_role[user_id] = role
                    email = f"{first}.{last}.{cid}@{firm}.example".lower()
                    user_rows.append((user_id, email, f"{first} {last}", role, user_hash, False, None, True,
                                      secrets.token_urlsafe(24), created, created))
                email = f"{first}.{last}.{cid}@{firm}.example".lower()
                # The tracker's columns (migration 0007_tracker): provisioned accounts were
                # provisioned when created, last active some days later, ACTIVE ones activated.
                tracked = (None, None, None)
                if user_id is not None:
                    created_at = start + timedelta(seconds=int(cid * 31_536_000 / max(n, 1)))
                    active_at = min(now, created_at + timedelta(days=cid % 20, hours=cid % 24))
                    tracked = (created, _ts(active_at) if status == "ACTIVE" else None, _ts(active_at))
                contact_rows.append((cid, f"{first} {last}", email, company, f"+1 555 {cid:07d}", role,
                                     status, user_id, 1 if i % 2 else None, created, created,
                                     fold(f"{first} {last} {email} {company}"), created, *tracked))
            assert len(user_rows) == n_users + 1
            bool_ = (lambda b: b) if conn.dialect.name == "postgresql" else int
            user_rows = [r[:5] + (bool_(r[5]), r[6], bool_(r[7])) + r[8:] for r in user_rows]
            _bulk(conn, "users", ["id", "email", "name", "role", "password_hash", "must_change_password",
                                  "temp_password_expires_at", "active", "session_token", "created_at",
                                  "updated_at"], user_rows)
            _bulk(conn, "contacts", ["id", "name", "email", "company", "phone", "role", "status", "user_id",
                                     "owner_id", "created_at", "updated_at", "search_text", "status_changed_at",
                                     "provisioned_at", "activated_at", "last_activity_at"],
                  contact_rows)

            # Checklists: every task of the user's role. ACTIVE users finished every required
            # task; ONBOARDING users set their password and some more.
            status_of_user = {row[7]: row[6] for row in contact_rows if row[7] is not None}
            progress_rows = []
            done_at = _ts(now - timedelta(days=1))
            for user_id, role in user_role.items():
                active = status_of_user[user_id] == "ACTIVE"
                for k, task in enumerate(by_role[role]):
                    done = active and task.required or task.slug == "set-password" or (not active and k == 1 and user_id % 2)
                    progress_rows.append((user_id, task.id, 1 if done else 0, done_at if done else None))
            _bulk(conn, "onboarding_progress", ["user_id", "task_id", "completed", "completed_at"], progress_rows)

            # The feed: 10×N events, oldest first, about contacts and their users.
            feed_rows = []
            provisioned = [row for row in contact_rows if row[7] is not None] or contact_rows[:1]
            for e in range(10 * n):
                kind = FEED_TYPES[e % len(FEED_TYPES)]
                if kind.startswith("onboarding"):
                    contact = provisioned[(e * 7919) % len(provisioned)]
                    user_id = contact[7]
                else:
                    contact = contact_rows[(e * 104_729) % n]
                    user_id = None
                actor = user_id if kind == "onboarding.task.completed" else 1
                payload = {"contact_id": contact[0], "name": contact[1], "email": contact[2]}
                if kind == "crm.contact.status_changed":
                    payload.update({"from": "LEAD", "to": "QUALIFIED"})
                elif kind == "crm.contact.updated":
                    payload["fields"] = ["phone"]
                elif kind == "onboarding.account.provisioned":
                    payload.update({"user_id": user_id, "created": True})
                elif kind == "onboarding.task.completed":
                    payload.update({"slug": "complete-profile", "title": "Complete your profile", "required": True})
                created = _ts(start + timedelta(seconds=int(e * 31_536_000 / (10 * n))))
                feed_rows.append((kind, actor, contact[0], user_id, json.dumps(payload), created))
            _bulk(conn, "feed_events", ["type", "actor_id", "contact_id", "user_id", "payload", "created_at"],
                  feed_rows)

            # API tokens: the staff member's, and one per benchmark user.
            token_rows = []
            for _ in range(STAFF_TOKENS):
                token = generate_api_token()
                data.staff_tokens.append(token)
                token_rows.append((1, "benchmark", hash_api_token(token), _ts(now)))
            # Optional tasks that "Mark done" completes (kind manual): the data-collecting kinds
            # need their answers in the body.
            optional = {role: sorted(t.slug for t in tasks if not t.required and t.kind == "manual")
                        for role, tasks in by_role.items()}
            candidates = [uid for uid in user_role if status_of_user[uid] == "ONBOARDING"][:API_USERS]
            for k, user_id in enumerate(candidates):
                token = generate_api_token()
                token_rows.append((user_id, "benchmark", hash_api_token(token), _ts(now)))
                slugs = optional[user_role[user_id]]
                data.user_tokens.append((token, slugs[k % len(slugs)]))
            _bulk(conn, "api_tokens", ["user_id", "name", "token_hash", "created_at"], token_rows)

            if conn.dialect.name == "postgresql":
                for table in ("users", "contacts"):
                    conn.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                    )
            data.qualified_ids = [row[0] for row in reversed(contact_rows) if row[6] == "QUALIFIED"]
            data.search_exact = next(row[2].split("@")[0] + "@" for row in contact_rows if row[6] == "QUALIFIED")
            data.counts = {
                table: conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
                for table in ("users", "contacts", "onboarding_progress", "feed_events", "api_tokens")
            }
            data.counts.update(
                {f"contacts_{s}": c for s, c in conn.exec_driver_sql(
                    "SELECT status, count(*) FROM contacts GROUP BY status").all()}
            )
        # Fresh planner statistics, as autovacuum / a periodic ANALYZE would leave them.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE" if conn.dialect.name == "postgresql" else "ANALYZE")
        engine.dispose()
    data.seconds = round(time.perf_counter() - started, 2)
    if not quiet:
        print(f"  built N={n} in {data.seconds} s: {data.counts}", flush=True)
    return data


if __name__ == "__main__":  # python -m benchmarks.build URL N
    import sys

    url_arg, n_arg = sys.argv[1], int(sys.argv[2])
    print(json.dumps(build(url_arg, n_arg).to_json(), indent=2))
