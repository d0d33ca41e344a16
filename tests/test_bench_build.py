"""The benchmark's data builder (benchmarks/build.py), at a tiny N: the right rows, in every
status, with the per-status counters agreeing."""

import sqlalchemy as sa

from benchmarks import build


def test_builder_makes_n_contacts_n_over_10_accounts_and_10n_events(empty_database_url):
    data = build.build(empty_database_url, 20, quiet=True)

    engine = sa.create_engine(empty_database_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        def count(sql: str) -> int:
            return conn.exec_driver_sql(sql).scalar_one()

        assert count("SELECT count(*) FROM contacts") == 20
        assert count("SELECT count(*) FROM users WHERE role = 'staff'") == 1
        assert count("SELECT count(*) FROM contacts WHERE user_id IS NOT NULL") == 2
        assert count("SELECT count(*) FROM feed_events") == 200
        # Every provisioned user has their role's whole checklist.
        assert count(
            "SELECT count(*) FROM contacts c JOIN onboarding_tasks t ON t.role = c.role "
            "WHERE c.user_id IS NOT NULL"
        ) == count("SELECT count(*) FROM onboarding_progress") > 0
        statuses = dict(conn.exec_driver_sql("SELECT status, count(*) FROM contacts GROUP BY status").all())
        assert set(statuses) == {"LEAD", "QUALIFIED", "ONBOARDING", "ACTIVE", "LOST"}
        kept = dict(conn.exec_driver_sql("SELECT status, contacts FROM contact_status_counts").all())
        assert kept == statuses
    engine.dispose()

    assert len(data.qualified_ids) == statuses["QUALIFIED"]
    assert data.staff_tokens and data.user_tokens
    assert data.counts["contacts"] == 20
