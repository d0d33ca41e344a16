"""foundation: users, contacts, feed events, API tokens, the email outbox

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("temp_password_expires_at", sa.DateTime(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("session_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'staff', 'client', 'partner')", name=op.f("ck_users_role")),
        sa.CheckConstraint("email = lower(email)", name=op.f("ck_users_email_lower")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("session_token", name=op.f("uq_users_session_token")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("company", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=50), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("role IN ('client', 'partner')", name=op.f("ck_contacts_role")),
        sa.CheckConstraint(
            "status IN ('LEAD', 'QUALIFIED', 'ONBOARDING', 'ACTIVE', 'LOST')", name=op.f("ck_contacts_status")
        ),
        sa.CheckConstraint("email = lower(email)", name=op.f("ck_contacts_email_lower")),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_contacts_owner_id_users")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_contacts_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("email", name=op.f("uq_contacts_email")),
        sa.UniqueConstraint("user_id", name=op.f("uq_contacts_user_id")),
    )
    op.create_index(op.f("ix_contacts_owner_id"), "contacts", ["owner_id"])
    op.create_index("ix_contacts_status_id", "contacts", ["status", "id"])
    op.create_table(
        "feed_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_feed_events_actor_id_users")),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_feed_events_contact_id_contacts")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_feed_events_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_events")),
    )
    # Newest first (the id cursor uses the primary key), by type, by user, by contact.
    op.create_index("ix_feed_events_created_at_id", "feed_events", ["created_at", "id"])
    op.create_index("ix_feed_events_type_id", "feed_events", ["type", "id"])
    op.create_index("ix_feed_events_user_id_id", "feed_events", ["user_id", "id"])
    op.create_index("ix_feed_events_contact_id_id", "feed_events", ["contact_id", "id"])
    op.create_table(
        "outbound_emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=True),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f("ck_outbound_emails_status")),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_outbound_emails_contact_id_contacts")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_outbound_emails_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_emails")),
    )
    op.create_index("ix_outbound_emails_status_id", "outbound_emails", ["status", "id"])
    op.create_index("ix_outbound_emails_contact_id_id", "outbound_emails", ["contact_id", "id"])
    op.create_index(op.f("ix_outbound_emails_user_id"), "outbound_emails", ["user_id"])


def downgrade():
    op.drop_table("outbound_emails")
    op.drop_table("feed_events")
    op.drop_table("contacts")
    op.drop_table("api_tokens")
    op.drop_table("users")
