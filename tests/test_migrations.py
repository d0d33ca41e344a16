"""The schema comes only from the migrations, and the models agree with it."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from onboarding_app import create_app
from onboarding_app.extensions import db

from .conftest import base_config

TABLES = {
    "users", "contacts", "feed_events", "api_tokens", "outbound_emails",
    "onboarding_tasks", "onboarding_progress", "documents", "uploaded_files",
}


def test_upgrade_builds_the_schema_on_an_empty_database(empty_database_url):
    app = create_app(base_config(empty_database_url))
    with app.app_context():
        upgrade()
        tables = set(sa.inspect(db.engine).get_table_names())
        assert TABLES <= tables
        assert "alembic_version" in tables
        db.engine.dispose()


def test_models_and_migrations_agree(app):
    with app.app_context(), db.engine.connect() as conn:
        # The options `flask db migrate` uses: SQLite's search index (FTS5) is left out.
        opts = app.extensions["migrate"].configure_args
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": opts["include_name"]})
        assert compare_metadata(context, db.metadata) == []


def test_onboarding_workflow_seeds_the_checklists(session):
    rows = session.execute(
        sa.text("SELECT role, slug, required FROM onboarding_tasks ORDER BY role, position")
    ).all()
    assert [(r.role, r.slug, bool(r.required)) for r in rows] == [
        ("client", "set-password", True),
        ("client", "complete-profile", True),
        ("client", "accept-terms", True),
        ("client", "add-billing-contact", True),
        ("client", "book-kickoff-call", False),
        ("client", "invite-teammates", False),
        ("partner", "set-password", True),
        ("partner", "sign-partner-agreement", True),
        ("partner", "upload-tax-form", True),
        ("partner", "complete-profile", True),
        ("partner", "partner-portal-tour", False),
    ]


def test_onboarding_workflow_downgrade_removes_exactly_what_it_added(app):
    with app.app_context():
        downgrade(revision="0001_foundation")
        tables = set(sa.inspect(db.engine).get_table_names())
        assert "onboarding_tasks" not in tables and "onboarding_progress" not in tables
        assert {"users", "contacts", "feed_events", "api_tokens", "outbound_emails"} <= tables
        upgrade()
        count = db.session.execute(sa.text("SELECT count(*) FROM onboarding_tasks")).scalar_one()
        assert count == 11
        db.session.rollback()  # release the read lock before dropping tables
        downgrade(revision="base")
        assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.session.remove()
        db.engine.dispose()


def test_emails_unique_case_insensitively(session):
    session.execute(sa.text(
        "INSERT INTO users (email, name, role, must_change_password, active, session_token, created_at, updated_at) "
        "VALUES ('a@example.com', '', 'staff', false, true, 't1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    ))
    session.commit()
    try:
        session.execute(sa.text(
            "INSERT INTO users (email, name, role, must_change_password, active, session_token, created_at, updated_at) "
            "VALUES ('A@example.com', '', 'staff', false, true, 't2', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()
    else:
        raise AssertionError("an upper-case email was stored")
