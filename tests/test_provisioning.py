"""The provisioning module, tested without HTTP: services, the outbox, concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from onboarding_app import accounts, checklist, contacts, outbox, provisioning
from onboarding_app.errors import (
    AutomaticTask,
    InvalidCredentials,
    NotFound,
    NotProvisioned,
    NotQualified,
    PasswordAlreadySet,
    TemporaryPasswordExpired,
    UnknownTask,
    ValidationFailed,
)
from onboarding_app.extensions import db
from onboarding_app.models import (
    Contact,
    FeedEvent,
    OnboardingProgress,
    OnboardingTask,
    OutboundEmail,
    User,
    utcnow,
)

from .answers import service
from .conftest import NEW_PASSWORD, USER_PASSWORD, parse

CLIENT_TASKS = {"set-password", "complete-profile", "accept-terms", "add-billing-contact",
                "book-kickoff-call", "invite-teammates"}
PARTNER_TASKS = {"set-password", "sign-partner-agreement", "upload-tax-form", "complete-profile",
                 "partner-portal-tour"}


def count(session, model, *where) -> int:
    return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def events(session, type_: str) -> list[FeedEvent]:
    return session.execute(select(FeedEvent).where(FeedEvent.type == type_).order_by(FeedEvent.id)).scalars().all()


def snapshot(session) -> dict[str, int]:
    return {m.__tablename__: count(session, m) for m in (User, OnboardingProgress, OutboundEmail, FeedEvent)}


def progress_slugs(session, user_id: int) -> set[str]:
    return set(session.execute(
        select(OnboardingTask.slug).join(OnboardingProgress, OnboardingProgress.task_id == OnboardingTask.id)
        .where(OnboardingProgress.user_id == user_id)
    ).scalars())


# --- 1. the happy path ----------------------------------------------------------------------


def test_provision_creates_user_checklist_email_and_event(make, session, mailbox):
    staff_id = make.user("staff", name="Sam Staff")
    contact_id = make.contact("QUALIFIED", email="ada@example.com", name="Ada Lovelace")

    result = provisioning.provision_account(session, contact_id, actor=staff_id)

    assert result.created and not result.already_provisioned
    user = session.get(User, result.user.id)
    contact = session.get(Contact, contact_id)
    assert user.email == "ada@example.com" and user.role == "client" and user.name == "Ada Lovelace"
    assert user.must_change_password
    assert contact.user_id == user.id and contact.status == "ONBOARDING"
    assert progress_slugs(session, user.id) == CLIENT_TASKS
    assert count(session, OnboardingProgress, OnboardingProgress.completed == 1) == 0

    # One email, delivered through the real SMTP server, holding a working temporary password.
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Welcome! Your account is ready"
    assert "http://localhost/login" in mailbox.text(message)
    password = mailbox.temporary_password("ada@example.com")
    html = parse(mailbox.html(message))
    assert html.text("code") == password
    assert html.attr("a", "href").startswith("http://localhost/login")
    signed_in = accounts.authenticate(session, "ADA@example.com", password)
    assert signed_in.id == user.id
    expires = user.temp_password_expires_at - utcnow()
    assert timedelta(hours=71) < expires <= timedelta(hours=72)

    [event] = events(session, "onboarding.account.provisioned")
    assert event.actor_id == staff_id and event.contact_id == contact_id and event.user_id == user.id
    assert event.payload == {"contact_id": contact_id, "user_id": user.id, "email": "ada@example.com", "created": True}


def test_no_plain_text_password_is_stored_anywhere(make, session, mailbox):
    contact_id = make.contact("QUALIFIED", email="ada@example.com")
    provisioning.provision_account(session, contact_id)
    password = mailbox.temporary_password("ada@example.com")
    email = session.execute(select(OutboundEmail)).scalar_one()
    user = session.execute(select(User).where(User.email == "ada@example.com")).scalar_one()
    assert email.status == "sent" and email.sent_at is not None and email.attempts == 1
    assert password not in (email.body_text or "") and password not in (email.body_html or "")
    assert outbox.REDACTED in email.body_text
    assert user.password_hash.startswith("$argon2id$") and password not in user.password_hash
    for row in session.execute(select(FeedEvent.payload)).scalars():
        assert password not in str(row)


def test_pending_email_holds_no_secret_and_user_has_no_password(make, session, mailbox):
    mailbox.refuse = True
    contact_id = make.contact("QUALIFIED", email="ada@example.com")
    result = provisioning.provision_account(session, contact_id)
    email = session.execute(select(OutboundEmail)).scalar_one()
    # The failed attempt issued a password and rendered the email; only the redacted copy
    # is kept, and the next attempt issues another password.
    assert email.status == "pending" and email.attempts == 1
    assert outbox.REDACTED in email.body_text and outbox.REDACTED in email.body_html
    assert "Temporary password: " + outbox.REDACTED in email.body_text
    assert session.get(User, result.user.id).must_change_password


# --- 2. not QUALIFIED -------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["LEAD", "LOST"])
def test_not_qualified_is_refused_and_writes_nothing(make, session, mailbox, status):
    contact_id = make.contact(status)
    before = snapshot(session)
    with pytest.raises(NotQualified):
        provisioning.provision_account(session, contact_id)
    assert snapshot(session) == before
    assert session.get(Contact, contact_id).status == status
    assert mailbox.messages == []


def test_unknown_contact_is_not_found(session):
    with pytest.raises(NotFound):
        provisioning.provision_account(session, 999_999)


# --- 3. already provisioned -------------------------------------------------------------------


def test_provisioning_twice_returns_the_same_user_and_adds_nothing(make, session, mailbox):
    contact_id = make.contact("QUALIFIED")
    first = provisioning.provision_account(session, contact_id)
    before = snapshot(session)
    again = provisioning.provision_account(session, contact_id)
    assert again.user.id == first.user.id
    assert again.already_provisioned and not again.created
    assert snapshot(session) == before
    assert len(mailbox.messages) == 1


# --- 4. a user already exists for the email -----------------------------------------------------


def test_existing_user_is_linked_untouched_and_gets_no_password(make, session, mailbox):
    user_id = make.user("partner", email="kat@example.com", password=USER_PASSWORD)
    original_hash = session.get(User, user_id).password_hash
    contact_id = make.contact("QUALIFIED", role="client", email="KAT@example.com")

    result = provisioning.provision_account(session, contact_id)

    assert result.user.id == user_id and not result.created and not result.already_provisioned
    user = session.get(User, user_id)
    assert user.password_hash == original_hash and user.role == "partner" and not user.must_change_password
    assert session.get(Contact, contact_id).user_id == user_id
    assert session.get(Contact, contact_id).status == "ONBOARDING"
    assert count(session, User) == 1
    # The checklist follows the user's role.
    assert progress_slugs(session, user_id) == PARTNER_TASKS
    [message] = mailbox.messages
    assert "Temporary password" not in mailbox.text(message)
    assert "existing account" in mailbox.text(message)
    assert accounts.authenticate(session, "kat@example.com", USER_PASSWORD).id == user_id
    [event] = events(session, "onboarding.account.provisioned")
    assert event.payload["created"] is False


# --- 5. checklists per role -----------------------------------------------------------------------


@pytest.mark.parametrize("role,expected", [("client", CLIENT_TASKS), ("partner", PARTNER_TASKS)])
def test_each_role_gets_its_own_checklist(make, session, role, expected):
    _, user_id = make.provisioned(role)
    assert session.get(User, user_id).role == role
    assert progress_slugs(session, user_id) == expected
    state = checklist.onboarding_state(session, user_id)
    assert [t.task.slug for t in state.tasks][0] == "set-password"
    assert state.required_total == (4 if role == "client" else 4)
    assert state.required_completed == 0 and not state.complete


# --- 6. completion ------------------------------------------------------------------------------


def _sign_in_and_set_password(session, mailbox, user_id):
    user = session.get(User, user_id)
    password = mailbox.temporary_password(user.email)
    accounts.change_password(session, user_id, current_password=password, new_password=NEW_PASSWORD)


def test_optional_tasks_do_not_count_and_all_required_makes_contact_active_once(make, session, mailbox):
    contact_id, user_id = make.provisioned("client")
    _sign_in_and_set_password(session, mailbox, user_id)
    for slug in ("book-kickoff-call", "invite-teammates", "complete-profile", "accept-terms"):
        done = provisioning.complete_task(session, user_id, slug, service(slug))
        assert not done.complete and done.status == "ONBOARDING"
    assert not provisioning.check_onboarding_complete(session, user_id)

    last = provisioning.complete_task(session, user_id, "add-billing-contact", service("add-billing-contact"))

    assert last.complete and last.status == "ACTIVE" and last.changed
    assert session.get(Contact, contact_id).status == "ACTIVE"
    # Repeating the last completion or the check changes nothing and writes no second event.
    again = provisioning.complete_task(session, user_id, "add-billing-contact", service("add-billing-contact"))
    assert again.complete and not again.changed
    assert provisioning.check_onboarding_complete(session, user_id)
    assert provisioning.check_onboarding_complete(session, user_id)
    [event] = events(session, "onboarding.completed")
    assert event.contact_id == contact_id and event.user_id == user_id


def test_completing_a_task_is_idempotent(make, session, mailbox):
    _, user_id = make.provisioned("client")
    _sign_in_and_set_password(session, mailbox, user_id)
    first = provisioning.complete_task(session, user_id, "book-kickoff-call")
    before = snapshot(session)
    second = provisioning.complete_task(session, user_id, "book-kickoff-call")
    assert first.changed and not second.changed
    assert second.task.completed_at == first.task.completed_at
    assert snapshot(session) == before


def test_unknown_and_other_roles_tasks_are_refused(make, session, mailbox):
    _, user_id = make.provisioned("client")
    _sign_in_and_set_password(session, mailbox, user_id)
    before = snapshot(session)
    for slug in ("no-such-task", "upload-tax-form"):  # upload-tax-form is a partner task
        with pytest.raises(UnknownTask):
            provisioning.complete_task(session, user_id, slug, service(slug))
    assert snapshot(session) == before


def test_set_password_task_cannot_be_ticked_by_hand(make, session):
    _, user_id = make.provisioned("client")
    with pytest.raises(AutomaticTask):
        provisioning.complete_task(session, user_id, "set-password", service("set-password"))


# --- 7. a required task added after provisioning --------------------------------------------------


def test_required_task_added_later_keeps_onboarding_open(make, session, mailbox):
    contact_id, user_id = make.provisioned("client")
    session.add(OnboardingTask(role="client", slug="verify-domain", title="Verify your domain",
                               description="", position=99, required=True))
    session.commit()
    _sign_in_and_set_password(session, mailbox, user_id)
    for slug in ("complete-profile", "accept-terms", "add-billing-contact"):
        provisioning.complete_task(session, user_id, slug, service(slug))

    assert not provisioning.check_onboarding_complete(session, user_id)
    assert session.get(Contact, contact_id).status == "ONBOARDING"
    state = checklist.onboarding_state(session, user_id)
    assert (state.required_completed, state.required_total) == (4, 5)

    done = provisioning.complete_task(session, user_id, "verify-domain", service("verify-domain"))
    assert done.complete and done.status == "ACTIVE"
    assert len(events(session, "onboarding.completed")) == 1


# --- 8. SMTP down ---------------------------------------------------------------------------------


def test_smtp_down_keeps_the_account_and_delivers_later_exactly_once(make, session, mailbox, runner):
    mailbox.refuse = True
    contact_id = make.contact("QUALIFIED", email="ada@example.com")
    result = provisioning.provision_account(session, contact_id)

    assert session.get(Contact, contact_id).status == "ONBOARDING"
    email = session.execute(select(OutboundEmail)).scalar_one()
    assert email.status == "pending" and email.attempts == 1 and "451" in email.last_error
    assert mailbox.messages == []

    mailbox.refuse = False
    output = runner.invoke(args=["outbox", "deliver"])
    assert output.exit_code == 0, output.output
    assert "1 sent, 0 failed" in output.output
    session.expire_all()
    email = session.execute(select(OutboundEmail)).scalar_one()
    assert email.status == "sent" and email.attempts == 2 and email.last_error is None
    password = mailbox.temporary_password("ada@example.com")
    assert accounts.authenticate(session, "ada@example.com", password).id == result.user.id

    again = runner.invoke(args=["outbox", "deliver"])
    assert "0 sent, 0 failed" in again.output
    assert len(mailbox.messages) == 1


def test_smtp_unreachable_counts_as_failed_then_gives_up_after_max_attempts(app, make, session, mailbox, runner):
    app.extensions["mail"].port = 1  # nothing listens there: connection refused
    contact_id = make.contact("QUALIFIED")
    provisioning.provision_account(session, contact_id)
    for _ in range(app.config["MAIL_MAX_ATTEMPTS"] - 2):
        assert "0 sent, 1 failed" in runner.invoke(args=["outbox", "deliver"]).output
    assert "0 sent, 1 failed" in runner.invoke(args=["outbox", "deliver"]).output
    session.expire_all()
    email = session.execute(select(OutboundEmail)).scalar_one()
    assert email.status == "failed" and email.attempts == app.config["MAIL_MAX_ATTEMPTS"]
    assert "0 sent, 0 failed" in runner.invoke(args=["outbox", "deliver"]).output


def test_in_development_without_mail_server_the_email_goes_to_the_log_on_one_line(app, make, session, caplog):
    app.config.update(MAIL_SERVER=None, APP_ENV="development")
    contact_id = make.contact("QUALIFIED", email="ada@example.com")
    with caplog.at_level("INFO", logger="onboarding_app.outbox"):
        provisioning.provision_account(session, contact_id)
    record = next(r for r in caplog.records if "To: ada@example.com" in r.getMessage())
    assert "Temporary password:" in record.getMessage() and "\n" not in record.getMessage()
    assert session.execute(select(OutboundEmail.status)).scalar_one() == "sent"


@pytest.mark.parametrize("mode", ["test", "production"])
def test_credentials_in_logs_never_outside_development(app, make, session, caplog, mode):
    """Finding "Credentials in logs": with no MAIL_SERVER outside development the temporary
    password went to the log. Now the attempt fails (kept pending, retried) and nothing of the
    email is logged. (Production cannot even start without MAIL_SERVER: test_factory.)"""
    app.config.update(MAIL_SERVER=None, APP_ENV=mode)
    contact_id = make.contact("QUALIFIED", email="ada@example.com")
    with caplog.at_level("DEBUG"):
        provisioning.provision_account(session, contact_id)
    assert "Temporary password" not in caplog.text and "Subject:" not in caplog.text
    email = session.execute(select(OutboundEmail)).scalar_one()
    assert email.status == "pending" and "MAIL_SERVER is not set" in email.last_error
    assert email.body_text is None or outbox.REDACTED in email.body_text  # the kept copy: redacted


# --- 9. concurrency -------------------------------------------------------------------------------


def _in_threads(app, n: int, target) -> list:
    """Run target(i) in n threads released together; each has its own app context,
    session and database connection. Returns the results (or exceptions)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                results[i] = target(i)
            except Exception as exc:  # collected and asserted on by the test
                results[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_concurrent_provisioning_creates_exactly_one_of_everything(app, make, session, mailbox):
    contact_id = make.contact("QUALIFIED", email="ada@example.com")

    def provision(_i):
        result = provisioning.provision_account(db.session, contact_id)
        return (result.user.id, result.already_provisioned)

    results = _in_threads(app, 6, provision)

    assert all(isinstance(r, tuple) for r in results), results
    user_ids = {user_id for user_id, _ in results}
    assert len(user_ids) == 1
    assert sorted(already for _, already in results) == [False] + [True] * 5
    session.expire_all()
    assert count(session, User) == 1
    assert count(session, OnboardingProgress) == len(CLIENT_TASKS)
    assert count(session, OutboundEmail) == 1
    assert len(events(session, "onboarding.account.provisioned")) == 1
    assert len(mailbox.to("ada@example.com")) == 1


def test_last_required_task_completed_twice_at_once_fires_completion_once(app, make, session, mailbox):
    contact_id, user_id = make.provisioned("client")
    _sign_in_and_set_password(session, mailbox, user_id)
    for slug in ("complete-profile", "accept-terms"):
        provisioning.complete_task(session, user_id, slug, service(slug))

    results = _in_threads(app, 4, lambda _i: provisioning.complete_task(db.session, user_id, "add-billing-contact", service("add-billing-contact")).complete)

    assert results == [True] * 4
    session.expire_all()
    assert session.get(Contact, contact_id).status == "ACTIVE"
    assert len(events(session, "onboarding.completed")) == 1
    assert len(events(session, "onboarding.task.completed")) == 4  # set-password + 3, each once


def test_last_two_tasks_completed_at_once_still_complete(app, make, session, mailbox):
    contact_id, user_id = make.provisioned("client")
    _sign_in_and_set_password(session, mailbox, user_id)
    provisioning.complete_task(session, user_id, "complete-profile", service("complete-profile"))
    slugs = ["accept-terms", "add-billing-contact"]

    _in_threads(app, 2, lambda i: provisioning.complete_task(db.session, user_id, slugs[i], service(slugs[i])))

    session.expire_all()
    assert session.get(Contact, contact_id).status == "ACTIVE"
    assert len(events(session, "onboarding.completed")) == 1


def test_two_outbox_deliverers_at_once_send_each_email_once(app, make, session, mailbox):
    mailbox.refuse = True
    for n in range(5):
        provisioning.provision_account(session, make.contact("QUALIFIED", email=f"user{n}@example.com"))
    mailbox.refuse = False
    assert mailbox.messages == []

    results = _in_threads(app, 3, lambda _i: outbox.deliver_pending(db.session))

    assert sum(r.sent for r in results) == 5
    assert len(mailbox.messages) == 5
    assert sorted(m["To"] for m in mailbox.messages) == [f"user{n}@example.com" for n in range(5)]
    session.expire_all()
    assert count(session, OutboundEmail, OutboundEmail.status == "sent") == 5


# --- 10. temporary passwords ----------------------------------------------------------------------


def test_temporary_password_expires(app, make, session, mailbox):
    _, user_id = make.provisioned("client")
    password = mailbox.temporary_password(session.get(User, user_id).email)
    user = session.get(User, user_id)
    user.temp_password_expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    with pytest.raises(TemporaryPasswordExpired):
        accounts.authenticate(session, user.email, password)


def test_changing_the_temporary_password_completes_set_password(make, session, mailbox):
    contact_id, user_id = make.provisioned("partner")
    user = session.get(User, user_id)
    token_before = user.session_token
    _sign_in_and_set_password(session, mailbox, user_id)
    user = session.get(User, user_id)
    assert not user.must_change_password and user.temp_password_expires_at is None
    assert user.session_token != token_before  # every other session ended
    state = checklist.onboarding_state(session, user_id)
    assert state.task("set-password").completed and state.required_completed == 1
    assert accounts.authenticate(session, user.email, NEW_PASSWORD).id == user_id


def test_password_change_checks_current_password_and_policy(make, session, mailbox):
    _, user_id = make.provisioned("client")
    temp = mailbox.temporary_password(session.get(User, user_id).email)
    with pytest.raises(ValidationFailed) as wrong:
        accounts.change_password(session, user_id, current_password="nope", new_password=NEW_PASSWORD)
    assert "current_password" in wrong.value.fields
    for weak in ("short", "password1234", "qwertyuiop123"):
        with pytest.raises(ValidationFailed) as refused:
            accounts.change_password(session, user_id, current_password=temp, new_password=weak)
        assert "new_password" in refused.value.fields
    assert session.get(User, user_id).must_change_password


def test_resend_rotates_the_temporary_password(make, session, mailbox):
    contact_id, user_id = make.provisioned("client")
    email = session.get(User, user_id).email
    old = mailbox.temporary_password(email)

    provisioning.resend_welcome_email(session, contact_id)

    new = mailbox.temporary_password(email)
    assert new != old and len(mailbox.to(email)) == 2
    with pytest.raises(InvalidCredentials):
        accounts.authenticate(session, email, old)
    assert accounts.authenticate(session, email, new).id == user_id
    assert len(events(session, "onboarding.welcome_email.resent")) == 1


def test_resend_supersedes_an_undelivered_welcome_email(make, session, mailbox, runner):
    mailbox.refuse = True
    contact_id, user_id = make.provisioned("client")
    provisioning.resend_welcome_email(session, contact_id)
    statuses = session.execute(select(OutboundEmail.status).order_by(OutboundEmail.id)).scalars().all()
    assert statuses == ["failed", "pending"]
    mailbox.refuse = False
    assert "1 sent, 0 failed" in runner.invoke(args=["outbox", "deliver"]).output
    assert len(mailbox.messages) == 1


def test_resend_is_refused_once_the_user_has_set_a_password(make, session, mailbox):
    contact_id, user_id = make.provisioned("client")
    _sign_in_and_set_password(session, mailbox, user_id)
    with pytest.raises(PasswordAlreadySet):
        provisioning.resend_welcome_email(session, contact_id)
    with pytest.raises(NotProvisioned):
        provisioning.resend_welcome_email(session, make.contact("QUALIFIED"))


# --- contacts: the staff side of the lifecycle ----------------------------------------------------


def test_staff_transitions_follow_the_lifecycle(make, session):
    contact_id = make.contact("LEAD")
    for target in ("QUALIFIED", "LEAD", "LOST", "LEAD", "QUALIFIED"):
        assert contacts.change_status(session, contact_id, target).status == target


@pytest.mark.parametrize("start,target", [
    ("LEAD", "ONBOARDING"), ("LEAD", "ACTIVE"), ("QUALIFIED", "ONBOARDING"), ("QUALIFIED", "ACTIVE"),
    ("LOST", "QUALIFIED"), ("ONBOARDING", "LEAD"), ("ONBOARDING", "ACTIVE"), ("ONBOARDING", "LOST"),
])
def test_other_moves_are_invalid_transitions(make, session, start, target):
    from onboarding_app.errors import InvalidTransition

    if start == "ONBOARDING":
        contact_id, _ = make.provisioned()
    else:
        contact_id = make.contact(start)
    with pytest.raises(InvalidTransition):
        contacts.change_status(session, contact_id, target)
    assert session.get(Contact, contact_id).status == start


def test_contact_emails_are_unique_whatever_the_case(make, session):
    from onboarding_app.errors import EmailTaken

    make.contact("LEAD", email="ada@example.com")
    with pytest.raises(EmailTaken):
        contacts.create_contact(session, {"name": "Ada again", "email": "ADA@Example.com"})
    assert count(session, Contact) == 1
