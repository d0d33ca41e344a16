"""outbox_retries_webhooks: backoff and leases on the outbox; webhook endpoints and deliveries

Revision ID: 0004_outbox_retries_webhooks
Revises: 0003_contact_search_and_counts
Create Date: 2026-11-30

- ``outbound_emails.next_attempt_at`` (when a pending email is due; existing rows: now) and
  ``claimed_until`` (a deliverer's lease), with an index for the worker's sweep.
- ``webhook_endpoints`` and ``webhook_deliveries`` (one row per event and endpoint, unique).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_outbox_retries_webhooks"
down_revision = "0003_contact_search_and_counts"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbound_emails") as batch:
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(), nullable=True))
    op.execute("UPDATE outbound_emails SET next_attempt_at = created_at")
    with op.batch_alter_table("outbound_emails") as batch:
        batch.alter_column("next_attempt_at", existing_type=sa.DateTime(), nullable=False)
    op.create_index(
        "ix_outbound_emails_status_next_attempt_at", "outbound_emails", ["status", "next_attempt_at"]
    )

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("events", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_webhook_endpoints_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("feed_event_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name=op.f("ck_webhook_deliveries_status")
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"], ["webhook_endpoints.id"], ondelete="CASCADE",
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["feed_event_id"], ["feed_events.id"], name=op.f("fk_webhook_deliveries_feed_event_id_feed_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "endpoint_id", "feed_event_id", name="uq_webhook_deliveries_endpoint_id_feed_event_id"
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_status_next_attempt_at", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index("ix_webhook_deliveries_endpoint_id_id", "webhook_deliveries", ["endpoint_id", "id"])


def downgrade():
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_index("ix_outbound_emails_status_next_attempt_at", table_name="outbound_emails")
    with op.batch_alter_table("outbound_emails") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("next_attempt_at")
