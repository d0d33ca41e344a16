"""ux_timezone_search: users.timezone, word search on contacts, when a status last changed

Revision ID: 0006_ux_timezone_search
Revises: 0005_sign_in_links
Create Date: 2026-11-25

- ``users.timezone``: the IANA zone of the user's profile (nullable: the browser's zone, else UTC).
- ``contacts.search_text``: name, email and company lower-cased with accents stripped (NFKD),
  what search matches word by word; filled here for existing rows, then kept by the model.
  ``ix_contacts_search`` moves to it (pg_trgm GIN on PostgreSQL, a plain index on SQLite).
- ``contacts.status_changed_at``: when the status last changed (filled with ``updated_at``),
  indexed with the status so "waiting for approval, oldest first" reads in order.
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0006_ux_timezone_search"
down_revision = "0005_sign_in_links"
branch_labels = None
depends_on = None

def _fold(text):
    # The same folding as onboarding_app.models.fold (a migration never imports the app).
    decomposed = unicodedata.normalize("NFKD", text or "")
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def upgrade():
    op.add_column("users", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.add_column("contacts", sa.Column("search_text", sa.String(length=700), nullable=False, server_default=""))
    # NOT NULL columns need a default to be added to existing rows. SQLite cannot drop a
    # column default without rebuilding the table (which would drop 0003's triggers), so
    # there the defaults stay; the model always sets both columns.
    op.add_column("contacts", sa.Column(
        "status_changed_at", sa.DateTime(), nullable=False, server_default=sa.text("CURRENT_TIMESTAMP")))

    conn = op.get_bind()
    contacts = sa.table(
        "contacts", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("email", sa.String),
        sa.column("company", sa.String), sa.column("search_text", sa.String),
    )
    rows = conn.execute(sa.select(contacts.c.id, contacts.c.name, contacts.c.email, contacts.c.company)).all()
    if rows:
        conn.execute(
            contacts.update().where(contacts.c.id == sa.bindparam("row_id")).values(search_text=sa.bindparam("text")),
            [{"row_id": r.id, "text": _fold(" ".join(p for p in (r.name, r.email, r.company) if p))} for r in rows],
        )
    op.execute("UPDATE contacts SET status_changed_at = updated_at")
    if conn.dialect.name == "postgresql":
        op.alter_column("contacts", "search_text", server_default=None)
        op.alter_column("contacts", "status_changed_at", server_default=None)

    op.drop_index("ix_contacts_search", table_name="contacts")
    op.create_index(
        "ix_contacts_search", "contacts", ["search_text"],
        postgresql_using="gin", postgresql_ops={"search_text": "gin_trgm_ops"},
    )
    op.create_index("ix_contacts_status_changed", "contacts", ["status", "status_changed_at", "id"])


def downgrade():
    op.drop_index("ix_contacts_status_changed", table_name="contacts")
    op.drop_index("ix_contacts_search", table_name="contacts")
    op.create_index(
        "ix_contacts_search", "contacts", ["name", "email", "company"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops", "email": "gin_trgm_ops", "company": "gin_trgm_ops"},
    )
    op.drop_column("contacts", "status_changed_at")
    op.drop_column("contacts", "search_text")
    op.drop_column("users", "timezone")
