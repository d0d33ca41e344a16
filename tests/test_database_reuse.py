"""PostgreSQL test databases are reset and reused between tests (conftest.PostgresDatabases):
a reused database must hold exactly what a fresh clone holds, and one that cannot be reset
cleanly must be thrown away."""

import pytest
import sqlalchemy as sa

from .conftest import ON_POSTGRES

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="SQLite copies a fresh file per test")

CONTACT = (
    "INSERT INTO contacts (name, email, company, phone, role, status, search_text, status_changed_at, "
    "created_at, updated_at) "
    "VALUES ('Ada', 'ada@example.com', 'Co', '', 'client', 'LEAD', 'ada ada@example.com co', now(), now(), now()) "
    "RETURNING id"
)


def _content(url: str) -> dict:
    """Every row of every table, and every sequence's position."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        metadata = sa.MetaData()
        metadata.reflect(conn)
        content = {
            table.name: sorted(map(tuple, conn.execute(sa.select(table)).all()), key=repr)
            for table in metadata.sorted_tables
        }
        content["sequences"] = conn.execute(
            sa.text("SELECT sequencename, last_value FROM pg_sequences ORDER BY 1")
        ).all()
    engine.dispose()
    return content


def _write(url: str, *statements: str) -> list:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    results = []
    with engine.begin() as conn:
        for sql in statements:
            result = conn.exec_driver_sql(sql)
            results.append(result.all() if result.returns_rows else None)
    engine.dispose()
    return results


@pytest.fixture
def databases(database_template):
    yield database_template
    database_template.lock_timeout = "2s"


def test_a_reused_database_holds_exactly_what_a_fresh_clone_holds(databases):
    pristine = _content(databases.url_for(databases.template))
    name = databases.acquire()
    url = databases.url_for(name)
    (first, _, _) = _write(url, CONTACT, "UPDATE onboarding_tasks SET title = 'changed'", "DELETE FROM contact_status_counts")
    assert _content(url) != pristine
    databases.release(name)

    assert databases.acquire() == name  # reused, not cloned again
    assert _content(url) == pristine
    (again,) = _write(url, CONTACT)
    assert again == first  # the sequences start over
    databases.release(name)


def test_a_database_whose_schema_changed_is_dropped(databases):
    name = databases.acquire()
    _write(databases.url_for(name), "ALTER TABLE contacts ADD COLUMN extra integer")
    databases.release(name)
    assert name not in databases.created and name not in databases.idle
    fresh = databases.acquire()
    assert fresh != name
    databases.release(fresh)


def test_a_database_a_leftover_transaction_still_locks_is_dropped(databases):
    databases.lock_timeout = "100ms"
    name = databases.acquire()
    engine = sa.create_engine(databases.url_for(name), poolclass=sa.pool.NullPool)
    leftover = engine.connect()
    leftover.exec_driver_sql(CONTACT)  # uncommitted: holds a row lock and a table lock
    databases.release(name)  # drops the database, ending that connection
    assert name not in databases.created and name not in databases.idle
    leftover.invalidate()
    engine.dispose()
