"""onboarding_workflow: the checklist templates (with their seed rows) and per-user progress

Revision ID: 0002_onboarding_workflow
Revises: 0001_foundation
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_onboarding_workflow"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

# A snapshot of the table as this migration knows it: never the app's models.
onboarding_tasks = sa.table(
    "onboarding_tasks",
    sa.column("role", sa.String),
    sa.column("slug", sa.String),
    sa.column("title", sa.String),
    sa.column("description", sa.Text),
    sa.column("position", sa.Integer),
    sa.column("required", sa.Boolean),
    sa.column("action_url", sa.String),
)

SEED_TASKS = [
    # role, slug, title, description, required, action_url
    ("client", "set-password", "Set your password",
     "Replace the temporary password from your welcome email with one of your own. "
     "This is ticked off for you when you do.", True, "/account/password"),
    ("client", "complete-profile", "Complete your profile",
     "Tell us your job title, time zone and how you prefer to be reached.", True, None),
    ("client", "accept-terms", "Review and accept the service terms",
     "Read the service terms and confirm that your organisation accepts them.", True, None),
    ("client", "add-billing-contact", "Add a billing contact",
     "Name the person who receives invoices, with their email address.", True, None),
    ("client", "book-kickoff-call", "Book your kickoff call",
     "Pick a time for a 30-minute call with your onboarding manager.", False, None),
    ("client", "invite-teammates", "Invite your teammates",
     "Send invitations to the colleagues who will work with us.", False, None),
    ("partner", "set-password", "Set your password",
     "Replace the temporary password from your welcome email with one of your own. "
     "This is ticked off for you when you do.", True, "/account/password"),
    ("partner", "sign-partner-agreement", "Sign the partner agreement",
     "Review the partner agreement and sign it on behalf of your company.", True, None),
    ("partner", "upload-tax-form", "Upload your tax form",
     "Send us your W-9 or W-8BEN (or your country's equivalent) so we can pay commissions.", True, None),
    ("partner", "complete-profile", "Complete your profile",
     "Tell us your company's focus, regions and the main contact for referrals.", True, None),
    ("partner", "partner-portal-tour", "Take the partner portal tour",
     "A five-minute walk through deal registration and co-marketing material.", False, None),
]


def upgrade():
    op.create_table(
        "onboarding_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("action_url", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_tasks")),
        sa.UniqueConstraint("role", "slug", name="uq_onboarding_tasks_role_slug"),
    )
    op.create_index("ix_onboarding_tasks_role_position", "onboarding_tasks", ["role", "position"])
    op.create_table(
        "onboarding_progress",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("completed", sa.SmallInteger(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("completed IN (0, 1)", name=op.f("ck_onboarding_progress_completed")),
        sa.ForeignKeyConstraint(
            ["task_id"], ["onboarding_tasks.id"], name=op.f("fk_onboarding_progress_task_id_onboarding_tasks")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_onboarding_progress_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_progress")),
        sa.UniqueConstraint("user_id", "task_id", name="uq_onboarding_progress_user_id_task_id"),
    )
    op.create_index(op.f("ix_onboarding_progress_task_id"), "onboarding_progress", ["task_id"])

    positions: dict[str, int] = {}
    rows = []
    for role, slug, title, description, required, action_url in SEED_TASKS:
        positions[role] = positions.get(role, 0) + 1
        rows.append(
            {"role": role, "slug": slug, "title": title, "description": description,
             "position": positions[role], "required": required, "action_url": action_url}
        )
    op.bulk_insert(onboarding_tasks, rows)


def downgrade():
    op.drop_table("onboarding_progress")
    op.drop_table("onboarding_tasks")
