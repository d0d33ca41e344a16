"""task_kinds: tasks that check themselves; versioned documents; uploaded files

Revision ID: 0008_task_kinds
Revises: 0007_tracker
Create Date: 2026-12-02

- ``onboarding_tasks``: ``kind`` (what completes the task), ``document_key`` and
  ``signature_required`` (``terms`` tasks), ``retired_at``; the seeded tasks get their kinds.
- ``onboarding_progress``: ``skipped_at`` and ``data`` (the answers the task collected).
- ``contacts.invited_by_id`` (teammates). (``users.timezone``, which the profile writes, comes
  from 0006_ux_timezone_search.)
- ``documents`` (versioned markdown, ``service-terms`` and ``partner-agreement`` seeded with a
  first version) and ``uploaded_files`` (the bytes in the database).
"""

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0008_task_kinds"
down_revision = "0007_tracker"
branch_labels = None
depends_on = None

KINDS = ("password", "manual", "profile", "terms", "billing", "teammates", "upload")

# (role, slug) -> (kind, document_key, signature_required), per SPEC.md's seed table.
SEED_KINDS = {
    ("client", "set-password"): ("password", None, False),
    ("client", "complete-profile"): ("profile", None, False),
    ("client", "accept-terms"): ("terms", "service-terms", False),
    ("client", "add-billing-contact"): ("billing", None, False),
    ("client", "book-kickoff-call"): ("manual", None, False),
    ("client", "invite-teammates"): ("teammates", None, False),
    ("partner", "set-password"): ("password", None, False),
    ("partner", "sign-partner-agreement"): ("terms", "partner-agreement", True),
    ("partner", "upload-tax-form"): ("upload", None, False),
    ("partner", "complete-profile"): ("profile", None, False),
    ("partner", "partner-portal-tour"): ("manual", None, False),
}

SERVICE_TERMS = """\
These terms apply between your organisation ("you") and us from the day your account is
created.

## 1. The service

We provide the hosted service described in your order, with the support level it names. We
may improve the service; we will not remove a feature you pay for without 90 days' notice.

## 2. Your data

- Your data stays **yours**. We process it only to run the service for you.
- We keep it in the regions named in your order and delete it within 30 days of the end of
  your contract, unless you ask for an export first.
- We tell you within 72 hours of learning of a breach that affects it.

## 3. Fees and invoices

Fees are invoiced monthly in advance to your billing contact and are due within 30 days.

## 4. Ending the contract

Either party may end the contract with 30 days' written notice. Sections 2 and 5 survive.

## 5. Liability

Each party's liability is limited to the fees paid in the 12 months before the claim, except
for breaches of confidentiality or data protection.
"""

PARTNER_AGREEMENT = """\
This agreement sets out how you, as a partner, refer customers to us and how we pay you.

## 1. Referrals

Register each opportunity in the partner portal before the customer signs. A registration is
yours for **180 days**; the first partner to register an opportunity owns it.

## 2. Commission

- 15% of the first year's fees of each customer you referred, paid quarterly.
- Commission is paid once the customer has paid, into the account named on your tax form.

## 3. Brand and co-marketing

You may use our name and logo as described in the partner brand guide, and only while this
agreement is in force.

## 4. Term

This agreement runs for one year and renews itself each year. Either party may end it with
60 days' written notice; commission already earned is still paid.

By signing you confirm that you may sign on behalf of your company.
"""

SEED_DOCUMENTS = [
    ("service-terms", "Service terms", SERVICE_TERMS),
    ("partner-agreement", "Partner agreement", PARTNER_AGREEMENT),
]


def upgrade():
    # A plain ADD COLUMN (no table rebuild on SQLite, which would drop 0003's triggers).
    # SQLite takes the foreign key inline (ADD COLUMN ... REFERENCES); PostgreSQL as a constraint.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE contacts ADD COLUMN invited_by_id INTEGER "
                   "CONSTRAINT fk_contacts_invited_by_id_users REFERENCES users (id)")
    else:
        op.add_column("contacts", sa.Column("invited_by_id", sa.Integer(), nullable=True))
        op.create_foreign_key(op.f("fk_contacts_invited_by_id_users"), "contacts", "users", ["invited_by_id"], ["id"])

    # Plain ADD COLUMNs: rebuilding a table on SQLite would fail on the rows referencing it
    # (and drop 0003's triggers on contacts). SQLite keeps the NOT NULL columns' defaults and
    # goes without the kind's CHECK (it cannot add one without a rebuild); the models always
    # set both columns.
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column("onboarding_tasks", sa.Column("kind", sa.String(length=20), nullable=False, server_default="manual"))
    op.add_column("onboarding_tasks", sa.Column("document_key", sa.String(length=64), nullable=True))
    op.add_column("onboarding_tasks", sa.Column(
        "signature_required", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("onboarding_tasks", sa.Column("retired_at", sa.DateTime(), nullable=True))
    tasks = sa.table(
        "onboarding_tasks", sa.column("role", sa.String), sa.column("slug", sa.String), sa.column("kind", sa.String),
        sa.column("document_key", sa.String), sa.column("signature_required", sa.Boolean),
    )
    for (role, slug), (kind, document_key, signature) in SEED_KINDS.items():
        op.execute(
            tasks.update()
            .where(tasks.c.role == role, tasks.c.slug == slug)
            .values(kind=kind, document_key=document_key, signature_required=signature)
        )
    if not sqlite:
        op.alter_column("onboarding_tasks", "kind", server_default=None)
        op.alter_column("onboarding_tasks", "signature_required", server_default=None)
        op.create_check_constraint("kind", "onboarding_tasks", "kind IN (" + ", ".join(f"'{k}'" for k in KINDS) + ")")

    op.add_column("onboarding_progress", sa.Column("skipped_at", sa.DateTime(), nullable=True))
    op.add_column("onboarding_progress", sa.Column("data", sa.JSON(), nullable=True))

    documents = op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body_markdown", sa.Text(), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.Column("published_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["published_by"], ["users.id"], name=op.f("fk_documents_published_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("key", "version", name="uq_documents_key_version"),
    )
    op.create_table(
        "uploaded_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("original_name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_uploaded_files_owner_id_users")),
        sa.ForeignKeyConstraint(
            ["task_id"], ["onboarding_tasks.id"], name=op.f("fk_uploaded_files_task_id_onboarding_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploaded_files")),
    )
    op.create_index("ix_uploaded_files_owner_id_id", "uploaded_files", ["owner_id", "id"])

    now = datetime.now(timezone.utc).replace(tzinfo=None)  # stored as naive UTC
    op.bulk_insert(documents, [
        {"key": key, "version": 1, "title": title, "body_markdown": body, "published_at": now, "published_by": None}
        for key, title, body in SEED_DOCUMENTS
    ])


def downgrade():
    op.drop_index("ix_uploaded_files_owner_id_id", table_name="uploaded_files")
    op.drop_table("uploaded_files")
    op.drop_table("documents")
    op.drop_column("onboarding_progress", "data")
    op.drop_column("onboarding_progress", "skipped_at")
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        op.drop_constraint(op.f("ck_onboarding_tasks_kind"), "onboarding_tasks", type_="check")
    for column in ("retired_at", "signature_required", "document_key", "kind"):
        op.drop_column("onboarding_tasks", column)
    if not sqlite:
        op.drop_constraint(op.f("fk_contacts_invited_by_id_users"), "contacts", type_="foreignkey")
    op.drop_column("contacts", "invited_by_id")
