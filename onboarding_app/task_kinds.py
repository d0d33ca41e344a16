"""What each kind of checklist task takes and stores (SPEC.md, "Onboarding tasks that check
themselves"): one entry per kind in ``TASK_KINDS``, naming its answers' model (``schemas.py``,
used by the API and the widget's forms alike), its form partial
(``templates/onboarding/_task_form_<kind>.html``) and its store function.

A store function runs inside ``provisioning.complete_task``'s transaction with the answers
already checked; it writes what the kind writes (the profile on the user and the contact, the
invited contacts, the file...) and returns the answers kept on the progress row. It may still
refuse (the user's own address, a stale document version): the transaction then rolls back
and nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Callable

from flask import current_app
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import documents, feed, uploads
from .errors import StaleVersion, ValidationFailed
from .models import Contact, Document, OnboardingTask, User
from .schemas import (
    BillingAnswers,
    NoAnswers,
    ProfileAnswers,
    SignedTermsAnswers,
    TeammatesAnswers,
    TermsAnswers,
    check,
)

KICKOFF_SLUG = "book-kickoff-call"


@dataclass(frozen=True)
class RequestMeta:
    """Who sent a submission, as the request tells it (recorded with an acceptance)."""

    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class Submission:
    session: Session
    user: User
    contact: Contact | None
    task: OnboardingTask
    answers: Any  # checked by the kind's ``parse``
    meta: RequestMeta
    now: datetime


@dataclass(frozen=True)
class Stored:
    data: dict[str, Any] | None
    extra: dict[str, Any] = field(default_factory=dict)  # beside the answer (teammates: created, skipped)
    document: Document | None = None


def _nothing(_: Submission) -> Stored:
    return Stored(None)


def _store_profile(s: Submission) -> Stored:
    a: ProfileAnswers = s.answers
    s.user.name = a.name
    s.user.timezone = a.timezone
    if s.contact is not None:
        s.contact.name, s.contact.company, s.contact.phone = a.name, a.company, a.phone
    return Stored(a.model_dump())


def _store_terms(s: Submission) -> Stored:
    a: TermsAnswers = s.answers
    document = documents.current(s.session, s.task.document_key or "")
    if a.version != document.version:
        raise StaleVersion(
            f"Version {a.version} of “{document.title}” is not the current one; read version "
            f"{document.version} and accept it.",
            current_version=document.version,
        )
    data = {"document_key": document.key, "version": document.version, "title": document.title,
            "accepted_at": s.now.isoformat(), "ip": s.meta.ip, "user_agent": (s.meta.user_agent or "")[:300]}
    if s.task.signature_required:
        data["signature"] = a.signature
    return Stored(data, document=document)


def _store_billing(s: Submission) -> Stored:
    return Stored(s.answers.model_dump())


def _store_teammates(s: Submission) -> Stored:
    """Each new address becomes a QUALIFIED contact of the inviter's company, waiting for staff
    approval; addresses already in the CRM are skipped."""
    emails: list[str] = s.answers.emails
    if s.user.email in emails:
        raise ValidationFailed({"emails": f"That is your own address ({s.user.email}); invite your teammates."})
    existing = set(s.session.execute(select(Contact.email).where(Contact.email.in_(emails))).scalars())
    created = [e for e in emails if e not in existing]
    company = s.contact.company if s.contact is not None else ""
    invited = [Contact(name=e.split("@", 1)[0], email=e, company=company, role="client", status="QUALIFIED",
                       invited_by_id=s.user.id) for e in created]
    s.session.add_all(invited)
    s.session.flush()
    for contact in invited:
        feed.record(s.session, feed.EVENT_CONTACT_CREATED, actor_id=s.user.id, contact_id=contact.id,
                    data={"name": contact.name, "email": contact.email, "invited": True, "invited_by": s.user.email})
    skipped = [e for e in emails if e in existing]
    return Stored({"emails": emails, "created": created, "skipped": skipped}, extra={"created": created, "skipped": skipped})


def _store_upload(s: Submission) -> Stored:
    checked: uploads.CheckedFile = s.answers
    row = uploads.replace(s.session, owner_id=s.user.id, task_id=s.task.id, file=checked)
    return Stored({"file_id": row.id, "filename": row.original_name, "content_type": row.content_type,
                   "size": row.size, "uploaded_at": s.now.isoformat()})


def _parse_upload(_task: OnboardingTask, raw: Any) -> uploads.CheckedFile:
    raw = raw or {}
    if not isinstance(raw, dict) or set(raw) - {"file"}:
        raise ValidationFailed({"file": "Send one file, as multipart/form-data, in the field “file”."})
    return uploads.check(raw.get("file"))


@dataclass(frozen=True)
class TaskKind:
    name: str
    store: Callable[[Submission], Stored]
    schema: type[BaseModel] | None = None  # None: the kind takes nothing
    action: str = "Mark done"  # the row's control while the task is open
    parse_raw: Callable[[OnboardingTask, Any], Any] | None = None  # instead of the schema
    automatic: bool = False  # completes itself (the password)

    @property
    def takes_data(self) -> bool:
        return self.schema is not None or self.parse_raw is not None

    @property
    def form(self) -> str | None:
        """The form partial, for a kind that collects something."""
        return f"onboarding/_task_form_{self.name}.html" if self.takes_data else None

    def schema_for(self, task: OnboardingTask) -> type[BaseModel]:
        if self.name == "terms" and task.signature_required:
            return SignedTermsAnswers
        return self.schema or NoAnswers

    def parse(self, task: OnboardingTask, raw: Any) -> Any:
        """The answers checked, or ValidationFailed (FileTooLarge for an upload) before any write."""
        if self.parse_raw is not None:
            return self.parse_raw(task, raw)
        return check(self.schema_for(task), raw if raw is not None else {})

    def fields(self, task: OnboardingTask) -> list[dict[str, Any]]:
        """``[{name, type, required}]``: what a completion's body takes."""
        if self.name == "upload":
            return [{"name": "file", "type": "file", "required": True}]
        if not self.takes_data:
            return []
        return [dict(field) for field in _fields_of(self.schema_for(task))]


@cache
def _fields_of(schema_class: type[BaseModel]) -> tuple[dict[str, Any], ...]:
    """The fields of an answers model, from its JSON schema, worked out once per model: the
    schema is fixed, and generating it on every checklist read was half the cost of
    ``GET /api/v1/onboarding`` (profiled in issue 16)."""
    schema = schema_class.model_json_schema()
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema["properties"].items():
        kind = prop.get("format") if prop.get("format") == "email" else prop.get("type", "string")
        out.append({"name": name, "type": kind, "required": name in required or (name == "accept")})
    return tuple(out)


TASK_KINDS: dict[str, TaskKind] = {
    "password": TaskKind("password", _nothing, automatic=True),
    "manual": TaskKind("manual", _nothing),
    "profile": TaskKind("profile", _store_profile, ProfileAnswers, action="Fill in"),
    "terms": TaskKind("terms", _store_terms, TermsAnswers, action="Read and accept"),
    "billing": TaskKind("billing", _store_billing, BillingAnswers, action="Add"),
    "teammates": TaskKind("teammates", _store_teammates, TeammatesAnswers, action="Invite"),
    "upload": TaskKind("upload", _store_upload, action="Upload", parse_raw=_parse_upload),
}


def kind_of(task: OnboardingTask) -> TaskKind:
    return TASK_KINDS.get(task.kind, TASK_KINDS["manual"])


def action_url(task: OnboardingTask) -> str | None:
    """Where a task links to: its own ``action_url``, or for the kickoff call the booking page
    from ``KICKOFF_BOOKING_URL``."""
    if task.action_url:
        return task.action_url
    if task.slug == KICKOFF_SLUG:
        return current_app.config.get("KICKOFF_BOOKING_URL") or None
    return None
