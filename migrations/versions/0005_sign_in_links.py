"""sign_in_links: the user's current single-use sign-in link (reset or welcome)

Revision ID: 0005_sign_in_links
Revises: 0004_outbox_retries_webhooks
Create Date: 2026-12-01

A link is a random token sent by email; only its SHA-256 is kept, on the user, with what it
is for and when it stops working. One per user: issuing a new link replaces (ends) the older
one, and using it clears it, in one conditional UPDATE.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_sign_in_links"
down_revision = "0004_outbox_retries_webhooks"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("link_token_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("link_purpose", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("link_expires_at", sa.DateTime(), nullable=True))
        batch.create_unique_constraint(op.f("uq_users_link_token_hash"), ["link_token_hash"])
        batch.create_check_constraint(op.f("ck_users_link_purpose"), "link_purpose IN ('reset', 'welcome')")


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("ck_users_link_purpose"), type_="check")
        batch.drop_constraint(op.f("uq_users_link_token_hash"), type_="unique")
        batch.drop_column("link_expires_at")
        batch.drop_column("link_purpose")
        batch.drop_column("link_token_hash")
