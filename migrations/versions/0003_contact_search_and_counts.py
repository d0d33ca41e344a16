"""contact_search_and_counts: an index for contact search, and per-status contact counts

Revision ID: 0003_contact_search_and_counts
Revises: 0002_onboarding_workflow
Create Date: 2026-11-24

- ``ix_contacts_search`` on (name, email, company). On PostgreSQL it is a GIN index with
  ``gin_trgm_ops`` (pg_trgm), which answers ``ILIKE '%term%'`` on any of the three columns
  from the index; on SQLite, which has no trigram index outside FTS5 virtual tables, it is a
  plain index that covers the search, so an unfiltered search reads the index, not the table.
- ``contact_status_counts``: one row per status with the number of contacts in it, kept by
  triggers on ``contacts`` (so every writer, bulk loads included, keeps it right). The
  pipeline and the unfiltered or status-filtered list totals read it instead of counting
  100,000 rows.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_contact_search_and_counts"
down_revision = "0002_onboarding_workflow"
branch_labels = None
depends_on = None

STATUSES = ("LEAD", "QUALIFIED", "ONBOARDING", "ACTIVE", "LOST")

# PostgreSQL: statement-level triggers with transition tables, so a bulk INSERT or COPY
# updates each counter once, not once per row. The counter rows are locked in status
# order first, so two transactions moving contacts in opposite directions cannot deadlock.
PG_FUNCTION = """
CREATE FUNCTION contact_status_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT jsonb_object_agg(status, n) INTO delta
        FROM (SELECT status, count(*) AS n FROM new_rows GROUP BY status) d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT jsonb_object_agg(status, -n) INTO delta
        FROM (SELECT status, count(*) AS n FROM old_rows GROUP BY status) d;
    ELSE
        SELECT jsonb_object_agg(status, n) INTO delta FROM (
            SELECT status, sum(n) AS n FROM (
                SELECT o.status, -1 AS n FROM old_rows o JOIN new_rows m ON m.id = o.id
                WHERE o.status <> m.status
                UNION ALL
                SELECT m.status, 1 FROM old_rows o JOIN new_rows m ON m.id = o.id
                WHERE o.status <> m.status
            ) moves GROUP BY status HAVING sum(n) <> 0
        ) d;
    END IF;
    IF delta IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM contact_status_counts WHERE delta ? status ORDER BY status FOR UPDATE;
    UPDATE contact_status_counts SET contacts = contacts + (delta ->> status)::integer
    WHERE delta ? status;
    RETURN NULL;
END
$$
"""
PG_TRIGGERS = {
    "contacts_count_insert": "AFTER INSERT ON contacts REFERENCING NEW TABLE AS new_rows",
    "contacts_count_update": "AFTER UPDATE ON contacts REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "contacts_count_delete": "AFTER DELETE ON contacts REFERENCING OLD TABLE AS old_rows",
}

SQLITE_TRIGGERS = {
    "contacts_count_insert": """
        AFTER INSERT ON contacts BEGIN
            UPDATE contact_status_counts SET contacts = contacts + 1 WHERE status = NEW.status;
        END""",
    "contacts_count_update": """
        AFTER UPDATE OF status ON contacts WHEN OLD.status <> NEW.status BEGIN
            UPDATE contact_status_counts SET contacts = contacts - 1 WHERE status = OLD.status;
            UPDATE contact_status_counts SET contacts = contacts + 1 WHERE status = NEW.status;
        END""",
    "contacts_count_delete": """
        AFTER DELETE ON contacts BEGIN
            UPDATE contact_status_counts SET contacts = contacts - 1 WHERE status = OLD.status;
        END""",
}


def upgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_contacts_search",
        "contacts",
        ["name", "email", "company"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops", "email": "gin_trgm_ops", "company": "gin_trgm_ops"},
    )

    op.create_table(
        "contact_status_counts",
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("status", name=op.f("pk_contact_status_counts")),
    )
    values = " UNION ALL ".join(f"SELECT '{status}' AS status" for status in STATUSES)
    op.execute(
        "INSERT INTO contact_status_counts (status, contacts) "
        f"SELECT s.status, (SELECT count(*) FROM contacts c WHERE c.status = s.status) FROM ({values}) s"
    )
    if postgresql:
        op.execute(PG_FUNCTION)
        for name, when in PG_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} {when} FOR EACH STATEMENT EXECUTE FUNCTION contact_status_counts_apply()"
            )
    else:
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in PG_TRIGGERS:  # the same three names on both databases
        op.execute(f"DROP TRIGGER {name}" + (" ON contacts" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION contact_status_counts_apply()")
    op.drop_table("contact_status_counts")
    op.drop_index("ix_contacts_search", table_name="contacts")
    if postgresql:
        op.execute("DROP EXTENSION IF EXISTS pg_trgm")
