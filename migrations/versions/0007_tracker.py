"""tracker: when each account was provisioned, signed in, last active, reminded, activated

Revision ID: 0007_tracker
Revises: 0006_ux_timezone_search
Create Date: 2026-12-02

- ``users.last_sign_in_at``.
- ``contacts.provisioned_at`` and ``activated_at`` (the funnel's cohort and time to active),
  ``last_activity_at`` (provisioning, sign-in, a task done or skipped; the tracker sorts on
  it, most stalled first, through ``ix_contacts_status_last_activity_at``), ``reminders_sent``
  and ``last_reminder_at`` (the reminder sweep's conditional UPDATE).
- Existing accounts are filled in from the feed (the provisioning and completion events) and
  their checklist (the latest task done).

Plain ``add_column`` (no batch copy of ``contacts``): SQLite adds these columns in place, so
the status-count triggers of 0003 stay as they are.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_tracker"
down_revision = "0006_ux_timezone_search"
branch_labels = None
depends_on = None

CONTACT_COLUMNS = ("provisioned_at", "activated_at", "last_activity_at", "last_reminder_at")


def upgrade():
    op.add_column("users", sa.Column("last_sign_in_at", sa.DateTime(), nullable=True))
    for name in CONTACT_COLUMNS:
        op.add_column("contacts", sa.Column(name, sa.DateTime(), nullable=True))
    op.add_column(
        "contacts", sa.Column("reminders_sent", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    op.execute(
        "UPDATE contacts SET provisioned_at = COALESCE("
        " (SELECT min(f.created_at) FROM feed_events f"
        "  WHERE f.contact_id = contacts.id AND f.type = 'onboarding.account.provisioned'),"
        " updated_at) WHERE user_id IS NOT NULL"
    )
    op.execute(
        "UPDATE contacts SET activated_at = COALESCE("
        " (SELECT min(f.created_at) FROM feed_events f"
        "  WHERE f.contact_id = contacts.id AND f.type = 'onboarding.completed'),"
        " updated_at) WHERE status = 'ACTIVE' AND user_id IS NOT NULL"
    )
    op.execute(
        "UPDATE contacts SET last_activity_at = COALESCE("
        " (SELECT max(p.completed_at) FROM onboarding_progress p"
        "  WHERE p.user_id = contacts.user_id AND p.completed_at > contacts.provisioned_at),"
        " provisioned_at) WHERE user_id IS NOT NULL"
    )
    op.create_index("ix_contacts_status_last_activity_at", "contacts", ["status", "last_activity_at"])
    op.create_index("ix_contacts_role_provisioned_at", "contacts", ["role", "provisioned_at"])


def downgrade():
    op.drop_index("ix_contacts_role_provisioned_at", table_name="contacts")
    op.drop_index("ix_contacts_status_last_activity_at", table_name="contacts")
    op.drop_column("contacts", "reminders_sent")
    for name in reversed(CONTACT_COLUMNS):
        op.drop_column("contacts", name)
    op.drop_column("users", "last_sign_in_at")
