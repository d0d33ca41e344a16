"""Command line: ``flask --app wsgi users|tokens|seed-demo|outbox ...`` (SPEC.md, "Command line")."""

from __future__ import annotations

import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from datetime import timedelta

from sqlalchemy import case, select, update

from . import accounts, checklist, contacts, documents, outbox, provisioning, reminders
from .uploads import IncomingFile
from .errors import DomainError, ValidationFailed
from .extensions import db
from .models import ROLES, ApiToken, Contact, OnboardingProgress, OutboundEmail, User, utcnow
from .transactions import run_in_transaction


def _fail(exc: DomainError) -> None:
    message = exc.message
    if isinstance(exc, ValidationFailed):
        message += " " + " ".join(f"{k}: {v}" for k, v in exc.fields.items())
    raise click.ClickException(message)


users_cli = AppGroup("users", help="Manage users.")
tokens_cli = AppGroup("tokens", help="Manage API tokens.")
outbox_cli = AppGroup("outbox", help="Deliver queued emails.")
onboarding_cli = AppGroup("onboarding", help="Onboarding jobs.")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password", required=True, help="At least 12 characters, not a common password.")
@click.option("--name", default="")
def users_create(email: str, role: str, password: str, name: str) -> None:
    """Create a user with a password of their own (a staff account, say)."""
    try:
        user = accounts.create_user(db.session, email=email, role=role, password=password, name=name)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"Created {user.role} {user.email} (id {user.id}).")


@users_cli.command("reset-password")
@click.argument("email")
def users_reset_password(email: str) -> None:
    """Email the user a single-use link to set a new password (unlocks an account)."""
    try:
        user = accounts.send_password_reset(db.session, email)
    except DomainError as exc:
        _fail(exc)
    latest = db.session.execute(
        select(OutboundEmail.status).where(OutboundEmail.user_id == user.id, OutboundEmail.kind == outbox.KIND_PASSWORD_RESET)
        .order_by(OutboundEmail.id.desc()).limit(1)
    ).scalar_one()
    state = "sent" if latest == "sent" else "queued (the outbox retries it)"
    click.echo(f"Reset link for {user.email}: {state}. It works once, for "
               f"{current_app.config['RESET_LINK_TTL_MINUTES']} minutes.")


@users_cli.command("deactivate")
@click.argument("email")
def users_deactivate(email: str) -> None:
    """Stop a user from signing in and end their sessions."""
    user = db.session.execute(select(User).where(User.email == email.strip().lower())).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"No user has the email {email}.")
    accounts.set_active(db.session, user.id, False)
    click.echo(f"Deactivated {user.email}; their sessions have ended.")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="What the token is for.")
def tokens_create(email: str, name: str) -> None:
    """Create an API token and print it, alone, on the last line. Only its hash is kept."""
    try:
        row, token = accounts.create_api_token(db.session, email, name=name)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"Token {row.id} for {email.strip().lower()}; it is shown only now:")
    click.echo(token)


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by id; it stops working at once."""
    try:
        accounts.revoke_api_token(db.session, token_id)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"Token {token_id} revoked.")


@tokens_cli.command("list")
def tokens_list() -> None:
    """List tokens (never the tokens themselves)."""
    rows = db.session.execute(
        select(ApiToken, User.email).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
    ).all()
    for token, email in rows:
        state = "revoked" if token.revoked_at else "active"
        click.echo(f"{token.id}\t{email}\t{token.name or '-'}\t{state}\tlast used {token.last_used_at or 'never'}")


@outbox_cli.command("deliver")
@click.option("--watch", type=float, default=None, metavar="SECONDS",
              help="Keep running, delivering every SECONDS (for a worker process).")
def outbox_deliver(watch: float | None) -> None:
    """Send every pending email; print how many were sent and failed."""
    while True:
        report = outbox.deliver_pending(db.session)
        click.echo(f"{report.sent} sent, {report.failed} failed")
        if watch is None:
            return
        time.sleep(watch)


@onboarding_cli.command("remind")
def onboarding_remind() -> None:
    """Run the reminder sweep once (as the worker does every hour); print how many were queued."""
    queued = reminders.sweep(db.session)
    click.echo(f"{queued} reminder{'' if queued == 1 else 's'} queued")


@click.command("worker")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="How many jobs run at once (threads).")
def run_worker(workers: int) -> None:
    """Run the background worker until stopped: the outbox (emails, webhooks) and the
    periodic jobs (the every-minute sweep)."""
    from .worker import run_consumer

    click.echo(f"Worker: {workers} thread(s), queue {current_app.config['HUEY_URL']}")
    run_consumer(workers)


DEMO_STAFF = ("sam@example.com", "Sam Staff", "staff", "demo-staff-pass-2026")
# An admin too: webhooks and the checklist editor are for admins only.
DEMO_ADMIN = ("ada.admin@example.com", "Ada Admin", "admin", "demo-admin-pass-2026")
DEMO_CLIENT_PASSWORD = "demo-client-pass-2026"
DEMO_CONTACTS = [
    # name, email, company, role, target status
    ("Grace Hopper", "grace@example.com", "Compilers Inc", "client", "LEAD"),
    ("Alan Turing", "alan@example.com", "Bletchley Labs", "client", "LEAD"),
    ("Ada Lovelace", "ada@example.com", "Analytical Engines Ltd", "client", "QUALIFIED"),
    ("Katherine Johnson", "katherine@example.com", "Orbital Mechanics", "partner", "QUALIFIED"),
    ("Edsger Dijkstra", "edsger@example.com", "Shortest Path BV", "client", "QUALIFIED"),
    ("Margaret Hamilton", "margaret@example.com", "Apollo Software", "client", "ONBOARDING"),
    ("Barbara Liskov", "barbara@example.com", "Substitution Co", "partner", "ACTIVE"),
    ("Charles Babbage", "charles@example.com", "Difference Engines", "client", "LOST"),
]


# A one-page PDF: the demo partner's tax form.
DEMO_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R/Resources<<>>>>endobj\n"
    b"4 0 obj<</Length 44>>stream\nBT /F1 24 Tf 72 700 Td (Form W-9 demo) Tj ET\nendstream endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def _demo_answers(slug: str, name: str, email: str, company: str, document_version: int) -> dict | None:
    """What a demo account answers for a seeded task, so staff see real answers."""
    domain = email.split("@", 1)[1]
    answers = {
        "complete-profile": {"name": name, "company": company, "timezone": "America/New_York",
                             "phone": "+1 617 555 0142", "job_title": "Head of Operations"},
        "accept-terms": {"accept": True, "version": document_version},
        "sign-partner-agreement": {"accept": True, "version": document_version, "signature": name},
        "add-billing-contact": {"billing_name": f"{company} Accounts", "billing_email": f"billing@{domain}",
                                "address": "1 Main Street, Cambridge, MA", "vat_id": ""},
        "invite-teammates": {"emails": [f"ops.{email.split('@')[0]}@{domain}"]},
        "upload-tax-form": {"file": IncomingFile("W-9 2026.pdf", DEMO_PDF)},
    }
    return answers.get(slug)


def _provision_and_welcome(staff: User, contact_id: int) -> int:
    """Provision a demo account and deliver its welcome email at once, as the worker would
    have before the customer signed in (queued until the worker starts, it would find the
    demo's own password set and be refused). Returns the user's id."""
    user_id = provisioning.provision_account(db.session, contact_id, actor=staff).user.id
    pending = db.session.execute(select(OutboundEmail.id).where(
        OutboundEmail.user_id == user_id, OutboundEmail.status == "pending")).scalars().all()
    if pending:  # (none when the jobs run at once, as in the tests)
        outbox.deliver(db.session, pending, due_only=False)
    return user_id


def _seed_contact(staff: User, name: str, email: str, company: str, role: str, target: str) -> str:
    existing = db.session.execute(select(Contact).where(Contact.email == email)).scalar_one_or_none()
    if existing is not None:
        return f"kept     {name} ({existing.status})"
    contact = contacts.create_contact(
        db.session, {"name": name, "email": email, "company": company, "role": role}, actor=staff
    )
    if target == "LEAD":
        return f"created  {name} (LEAD)"
    contacts.change_status(db.session, contact.id, "LOST" if target == "LOST" else "QUALIFIED", actor=staff)
    if target in ("QUALIFIED", "LOST"):
        return f"created  {name} ({target})"
    user_id = _provision_and_welcome(staff, contact.id)
    accounts.set_password(db.session, user_id, DEMO_CLIENT_PASSWORD)
    state = checklist.onboarding_state(db.session, user_id)
    open_required = [t for t in state.tasks if t.task.required and not t.completed]
    # Mid-onboarding: two more tasks done and teammates invited. Active: every required task done.
    accounts.record_sign_in(db.session, user_id)
    todo = open_required[:2] + [t for t in state.tasks if t.task.kind == "teammates"] if target == "ONBOARDING" \
        else open_required
    for item in todo:
        version = documents.current(db.session, item.task.document_key).version if item.task.document_key else 1
        answers = _demo_answers(item.task.slug, name, email, company, version)
        provisioning.complete_task(db.session, user_id, item.task.slug, answers)
    return f"created  {name} ({target}), sign in as {email} / {DEMO_CLIENT_PASSWORD}"


# Accounts at several points of onboarding, so the tracker and the funnel have something to
# show on first start: name, email, company, role, tasks done, signed in, days since provisioning,
# days since the last activity, hours from provisioning to ACTIVE (None: still onboarding).
DEMO_TRACKER = [
    ("Rosalind Franklin", "rosalind@example.com", "Helix Imaging", "client", [], False, 6, 6, None),
    ("Tim Berners-Lee", "tim@example.com", "Hypertext Ltd", "client", ["set-password", "complete-profile"], True, 7, 4, None),
    ("Hedy Lamarr", "hedy@example.com", "Frequency Hopping AG", "client",
     ["set-password", "complete-profile", "accept-terms"], True, 12, 9, None),
    ("Claude Shannon", "claude@example.com", "Information Theory Co", "partner", ["set-password"], True, 3, 2, None),
    ("Annie Easley", "annie@example.com", "Centaur Rockets", "client", "all", True, 3, 2, 10),
    ("Frances Allen", "frances@example.com", "Optimizing Compilers", "client", "all", True, 12, 10, 30),
    ("John von Neumann", "johnvn@example.com", "Stored Program Inc", "client", "all", True, 20, 16, 80),
]


def _seed_tracker_account(staff: User, name, email, company, role, done, signed_in, age_days, quiet_days,
                          active_after_hours) -> str:
    if db.session.execute(select(Contact.id).where(Contact.email == email)).first():
        return f"kept     {name}"
    contact = contacts.create_contact(db.session, {"name": name, "email": email, "company": company, "role": role},
                                      actor=staff)
    contacts.change_status(db.session, contact.id, "QUALIFIED", actor=staff)
    user_id = _provision_and_welcome(staff, contact.id)
    if done == "all":
        done = [t.task.slug for t in checklist.onboarding_state(db.session, user_id).tasks if t.task.required]
    for slug in done:
        if slug == provisioning.SET_PASSWORD_SLUG:
            accounts.set_password(db.session, user_id, DEMO_CLIENT_PASSWORD)
        else:
            task = next(t.task for t in checklist.onboarding_state(db.session, user_id).tasks if t.task.slug == slug)
            version = documents.current(db.session, task.document_key).version if task.document_key else 1
            provisioning.complete_task(db.session, user_id, slug, _demo_answers(slug, name, email, company, version))
    if signed_in:
        accounts.record_sign_in(db.session, user_id)
    _backdate(contact.id, user_id, age_days, quiet_days, active_after_hours, signed_in)
    state = "ACTIVE" if active_after_hours is not None else f"ONBOARDING, quiet for {quiet_days} days"
    return f"created  {name} ({state})"


def _backdate(contact_id: int, user_id: int, age_days: float, quiet_days: float, active_after_hours, signed_in) -> None:
    """Demo only: move an account's history into the past, as if it had been onboarding for days."""
    now = utcnow()
    provisioned, quiet = now - timedelta(days=age_days), now - timedelta(days=quiet_days)
    activated = provisioned + timedelta(hours=active_after_hours) if active_after_hours is not None else None

    def work() -> None:
        # Quiet for long enough: the hourly sweep has reminded it once already.
        reminded = quiet + timedelta(days=3) if activated is None and quiet_days >= 6 else None
        db.session.execute(update(Contact).where(Contact.id == contact_id).values(
            provisioned_at=provisioned, last_activity_at=activated or quiet, activated_at=activated,
            reminders_sent=1 if reminded else 0, last_reminder_at=reminded, updated_at=Contact.updated_at))
        db.session.execute(update(OnboardingProgress).where(
            OnboardingProgress.user_id == user_id, OnboardingProgress.completed == 1).values(
            completed_at=activated or quiet))
        if signed_in:
            db.session.execute(update(User).where(User.id == user_id).values(last_sign_in_at=provisioned + timedelta(hours=2)))
        db.session.execute(update(OutboundEmail).where(OutboundEmail.user_id == user_id).values(
            created_at=provisioned, next_attempt_at=provisioned,
            sent_at=case((OutboundEmail.sent_at.is_(None), None), else_=provisioned + timedelta(minutes=1))))

    run_in_transaction(db.session, work)


def _seed_staff_user(email: str, name: str, role: str, password: str) -> User:
    user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
    if user is None:
        user = accounts.create_user(db.session, email=email, role=role, password=password, name=name)
        click.echo(f"created  {role} {email}")
    else:
        click.echo(f"kept     {role} {email}")
    return user


@click.command("seed-demo")
def seed_demo() -> None:
    """Demo staff, contacts in every status, accounts stalled at several steps and some ACTIVE
    (for the tracker and the funnel). Safe to run twice."""
    staff = _seed_staff_user(*DEMO_STAFF)
    _seed_staff_user(*DEMO_ADMIN)
    for row in DEMO_CONTACTS:
        click.echo(_seed_contact(staff, *row))
    for row in DEMO_TRACKER:
        click.echo(_seed_tracker_account(staff, *row))
    base = current_app.config["APP_BASE_URL"]
    click.echo("")
    click.echo(f"Open {base}/login")
    click.echo(f"  staff:  {DEMO_STAFF[0]} / {DEMO_STAFF[3]}")
    click.echo(f"  admin (webhooks, checklist editor): {DEMO_ADMIN[0]} / {DEMO_ADMIN[3]}")
    click.echo(f"  client mid-onboarding: margaret@example.com / {DEMO_CLIENT_PASSWORD}")
    click.echo(f"  who is stuck where: {base}/crm/onboarding")
    click.echo(f"  partner, done (answers and an upload): barbara@example.com / {DEMO_CLIENT_PASSWORD}")


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(outbox_cli)
    app.cli.add_command(onboarding_cli)
    app.cli.add_command(seed_demo)
    app.cli.add_command(run_worker)
