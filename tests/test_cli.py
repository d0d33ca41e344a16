"""Every CLI command, through app.test_cli_runner()."""

from argon2 import Type, extract_parameters
from sqlalchemy import func, select

from onboarding_app import accounts, checklist
from onboarding_app.models import ApiToken, Contact, FeedEvent, OutboundEmail, User
from onboarding_app.security import hash_api_token, verify_password

from .conftest import STAFF_PASSWORD


def test_users_create(runner, session, app):
    result = runner.invoke(args=["users", "create", "Sam@Example.com", "--role", "staff",
                                 "--password", STAFF_PASSWORD, "--name", "Sam Staff"])
    assert result.exit_code == 0, result.output
    assert "Created staff sam@example.com" in result.output
    user = session.execute(select(User)).scalar_one()
    assert (user.email, user.role, user.name) == ("sam@example.com", "staff", "Sam Staff")
    params = extract_parameters(user.password_hash)
    assert (params.type, params.time_cost, params.memory_cost, params.parallelism) == (
        Type.ID, app.config["ARGON2_TIME_COST"], app.config["ARGON2_MEMORY_COST_KIB"], app.config["ARGON2_PARALLELISM"])
    assert verify_password(user.password_hash, STAFF_PASSWORD)
    assert not verify_password(user.password_hash, STAFF_PASSWORD + "x")


def test_users_create_refuses_bad_input(runner, session):
    cases = [
        (["not-an-email", "--role", "staff", "--password", STAFF_PASSWORD], "email"),
        (["a@example.com", "--role", "staff", "--password", "short"], "at least 12"),
        (["a@example.com", "--role", "staff", "--password", "password123456"], "commonly used"),
        (["a@example.com", "--role", "boss", "--password", STAFF_PASSWORD], "Invalid value for '--role'"),
    ]
    for args, message in cases:
        result = runner.invoke(args=["users", "create", *args])
        assert result.exit_code != 0 and message in result.output, result.output
    assert session.execute(select(func.count(User.id))).scalar_one() == 0


def test_users_create_refuses_a_taken_email(runner, make):
    make.user("staff", email="sam@example.com")
    result = runner.invoke(args=["users", "create", "SAM@example.com", "--role", "admin", "--password", STAFF_PASSWORD])
    assert result.exit_code == 1 and "already exists" in result.output


def test_tokens_create_prints_the_token_alone_on_the_last_line(runner, make, session):
    make.user("staff", email="sam@example.com")
    result = runner.invoke(args=["tokens", "create", "sam@example.com", "--name", "ci script"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("onb_") and " " not in token and len(token) > 40
    row = session.execute(select(ApiToken)).scalar_one()
    assert row.token_hash == hash_api_token(token) and row.name == "ci script"
    assert token not in row.token_hash
    assert accounts.user_for_token(session, token).email == "sam@example.com"


def test_tokens_create_for_unknown_user_fails(runner):
    result = runner.invoke(args=["tokens", "create", "ghost@example.com"])
    assert result.exit_code == 1 and "No user has the email" in result.output


def test_tokens_revoke_works_at_once_and_list_shows_state(runner, make, session):
    make.user("staff", email="sam@example.com")
    token = runner.invoke(args=["tokens", "create", "sam@example.com"]).output.strip().splitlines()[-1]
    token_id = session.execute(select(ApiToken.id)).scalar_one()
    assert runner.invoke(args=["tokens", "revoke", str(token_id)]).exit_code == 0
    assert accounts.user_for_token(session, token) is None
    listing = runner.invoke(args=["tokens", "list"]).output
    assert "sam@example.com" in listing and "revoked" in listing and token not in listing
    assert runner.invoke(args=["tokens", "revoke", "999"]).exit_code == 1


def test_seed_demo_builds_every_status_and_is_idempotent(runner, session):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "Open http://localhost/login" in first.output
    assert "sam@example.com / demo-staff-pass-2026" in first.output
    counts = lambda: {  # noqa: E731
        "users": session.execute(select(func.count(User.id))).scalar_one(),
        "contacts": session.execute(select(func.count(Contact.id))).scalar_one(),
        "events": session.execute(select(func.count(FeedEvent.id))).scalar_one(),
        "emails": session.execute(select(func.count(OutboundEmail.id))).scalar_one(),
    }
    before = counts()
    statuses = set(session.execute(select(Contact.status)).scalars())
    assert statuses == {"LEAD", "QUALIFIED", "ONBOARDING", "ACTIVE", "LOST"}

    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0 and "kept" in second.output
    assert counts() == before

    # The demo staff and the client mid-onboarding can sign in.
    assert accounts.authenticate(session, "sam@example.com", "demo-staff-pass-2026").role == "staff"

    margaret = accounts.authenticate(session, "margaret@example.com", "demo-client-pass-2026")
    state = checklist.onboarding_state(session, margaret.id)
    assert 0 < state.required_completed < state.required_total


def test_outbox_deliver_reports_counts(runner, make, mailbox, session):
    mailbox.refuse = True
    make.provisioned("client", email="ada@example.com")
    make.provisioned("client", email="bob@example.com")
    assert "0 sent, 2 failed" in runner.invoke(args=["outbox", "deliver"]).output
    mailbox.refuse = False
    assert "2 sent, 0 failed" in runner.invoke(args=["outbox", "deliver"]).output
    assert "0 sent, 0 failed" in runner.invoke(args=["outbox", "deliver"]).output
    assert sorted(m["To"] for m in mailbox.messages) == ["ada@example.com", "bob@example.com"]


def test_db_upgrade_command_on_an_empty_database(empty_database_url):
    from onboarding_app import create_app

    from .conftest import base_config

    app = create_app(base_config(empty_database_url))
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        from onboarding_app.extensions import db

        assert db.session.execute(select(func.count()).select_from(User)).scalar_one() == 0
        db.session.remove()
        db.engine.dispose()


def test_seed_demo_gives_the_tracker_and_funnel_something_to_show(runner, session):
    from datetime import datetime, timedelta, timezone

    from onboarding_app import tracker

    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    page = tracker.list_accounts(session, stalled=True, stalled_after_days=3)
    stalled = {row.email: row for row in page.items}
    # Stalled at several steps: never signed in, after the profile, after the terms.
    assert {"rosalind@example.com", "tim@example.com", "hedy@example.com"} <= set(stalled)
    assert len({row.required_completed for row in stalled.values()}) >= 3
    assert stalled["rosalind@example.com"].last_sign_in_at is None
    funnel = tracker.funnel(session, role="client", since=datetime.now(timezone.utc) - timedelta(days=30))
    counts = [step.count for step in funnel.steps]
    assert counts[0] > counts[-1] > 0 and funnel.time_to_active.n >= 3
    assert funnel.time_to_active.median_hours == 30.0


def test_seed_demo_before_the_worker_starts_leaves_every_welcome_email_sent(runner, session, mailbox, monkeypatch):
    # As scripts/run does it: seed first, the worker later. Queued jobs do not run here.
    from onboarding_app import jobs

    monkeypatch.setattr(jobs, "_RUNNERS", {name: (lambda *ids: None) for name in jobs._RUNNERS})
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    emails = session.execute(select(OutboundEmail).where(OutboundEmail.kind == "welcome")).scalars().all()
    assert len(emails) == 9
    # Delivered before each demo customer set a password, not refused afterwards for it.
    assert {(e.status, e.last_error) for e in emails} == {("sent", None)}
    assert len(mailbox.messages) == 9
    hedy = next(e for e in emails if e.recipient == "hedy@example.com")
    contact = session.execute(select(Contact).where(Contact.email == "hedy@example.com")).scalar_one()
    assert hedy.created_at == contact.provisioned_at and hedy.sent_at > hedy.created_at  # dated with its account


def test_onboarding_remind_runs_the_sweep_once(runner, make, app, mailbox, session):
    import sqlalchemy as sa

    stalled, _ = make.provisioned(email="stalled@example.com")
    make.provisioned(email="fresh@example.com")
    from datetime import datetime, timedelta, timezone

    session.execute(sa.update(Contact).where(Contact.id == stalled)
                    .values(last_activity_at=datetime.now(timezone.utc) - timedelta(days=4)))
    session.commit()
    result = runner.invoke(args=["onboarding", "remind"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "1 reminder queued"
    assert runner.invoke(args=["onboarding", "remind"]).output.strip() == "0 reminders queued"
    assert len(mailbox.to("stalled@example.com")) == 2 and len(mailbox.to("fresh@example.com")) == 1
