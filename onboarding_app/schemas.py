"""Where every field rule lives: the pydantic models of what comes in and what goes out.

A rule is written once, as an annotated type (``Email``, ``Name``, ``Role``...), and used by
every shape that has such a field. The services validate through these models (``check``),
the JSON API validates and documents itself with them (``api/spec.py``), and the HTML forms
run the same models (``crm/forms.py``), so every door refuses the same input with the same
sentence. A refusal is ``ValidationFailed`` with one sentence per field.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from urllib.parse import urlsplit
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import ValidationFailed
from .feed import SENTENCES
from .models import ACCOUNT_ROLES, CONTACT_STATUSES, DELIVERY_STATUSES, TASK_KIND_NAMES

MAX_ID = 2**31 - 1  # the largest value an INTEGER column holds
MAX_PER_PAGE = 100
MAX_FEED_LIMIT = 100
MAX_EMAIL_LENGTH = 254

# --- turning pydantic's errors into the sentences people read ----------------------------------

# Sentences for the library's own error types; the rules below raise their own sentences.
_SENTENCES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field.",
    "string_type": "Must be text.",
    "string_too_short": "This field is required.",
    "string_too_long": "At most {max_length} characters.",
    "int_type": "Must be a whole number.",
    "int_parsing": "Must be a whole number.",
    "int_parsing_size": "Must be a whole number.",
    "int_from_float": "Must be a whole number.",
    "greater_than_equal": "Must be at least {ge}.",
    "less_than_equal": "Must be at most {le}.",
    "model_type": "Must be a JSON object.",
    "model_attributes_type": "Must be a JSON object.",
    "bool_type": "Must be true or false.",
    "bool_parsing": "Must be true or false.",
    "datetime_type": "Must be an ISO 8601 date or date-time, e.g. 2026-05-04 or 2026-05-04T09:30:00Z.",
    "datetime_parsing": "Must be an ISO 8601 date or date-time, e.g. 2026-05-04 or 2026-05-04T09:30:00Z.",
    "datetime_from_date_parsing": "Must be an ISO 8601 date or date-time, e.g. 2026-05-04 or 2026-05-04T09:30:00Z.",
    "datetime_object_invalid": "Must be an ISO 8601 date or date-time, e.g. 2026-05-04 or 2026-05-04T09:30:00Z.",
}


def fields_of(error: ValidationError) -> dict[str, str]:
    """One sentence per field (the first problem found), keyed by the field's name."""
    fields: dict[str, str] = {}
    for problem in error.errors(include_url=False):
        name = ".".join(str(part) for part in problem["loc"]) or "body"
        template = _SENTENCES.get(problem["type"])
        fields.setdefault(name, template.format(**problem.get("ctx", {})) if template else problem["msg"])
    return fields


M = TypeVar("M", bound=BaseModel)


def check(model: type[M], data: Any) -> M:
    """``data`` as a ``model``, or ``ValidationFailed`` saying what is wrong with each field.
    An instance of the model was checked when it was made, so it is returned as it is."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(fields_of(exc), getattr(model, "refusal", "Some fields are invalid.")) from None


# --- the field rules -----------------------------------------------------------------------------


def _refuse(kind: str, sentence: str) -> PydanticCustomError:
    return PydanticCustomError(kind, sentence)


def _printable(value: str) -> str:
    if "\x00" in value:
        raise _refuse("forbidden_character", "Contains a character that is not allowed.")
    return value


def _blank_if_none(value: Any) -> Any:
    return "" if value is None else value


def _text(max_length: int, *, required: bool = False, pattern: tuple[str, str] | None = None,
          description: str | None = None) -> Any:
    """Text, trimmed, at most ``max_length`` characters, no NUL; ``null`` counts as empty.
    ``pattern`` is (regular expression, the sentence that says what it allows)."""
    rule: list[Any] = [
        StringConstraints(strip_whitespace=True, min_length=1 if required else None, max_length=max_length,
                          pattern=pattern[0] if pattern else None),
        AfterValidator(_printable),
    ]
    if pattern:
        rule.append(WrapValidator(_instead("string_pattern_mismatch", "pattern", pattern[1])))
    rule += [BeforeValidator(_blank_if_none), Field(description=description)]
    return Annotated[(str, *rule)]


def _instead(error_type: str, kind: str, sentence: str):
    """A wrap validator saying ``sentence`` where the library would report ``error_type``."""

    def wrap(value: Any, handler):
        try:
            return handler(value)
        except ValidationError as exc:
            if exc.errors()[0]["type"] == error_type:
                raise _refuse(kind, sentence) from None
            raise

    return wrap


def _choice(values: tuple[str, ...]) -> Any:
    """One of ``values``, exactly (letter case included)."""
    sentence = f"Choose one of: {', '.join(values)}."

    def one_of(value: Any, handler):
        try:
            return handler(value)
        except ValidationError:
            raise _refuse("choice", sentence) from None

    return Annotated[Literal[values], WrapValidator(one_of)]


def normalise_email(value: Any) -> str:
    """The address checked and lower-cased, or ValueError with a sentence saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("Enter an email address.")
    value = value.strip()
    if len(value) > MAX_EMAIL_LENGTH:
        raise ValueError(f"An email address has at most {MAX_EMAIL_LENGTH} characters.")
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"Enter a valid email address ({exc}).") from None
    return checked.normalized.lower()


def _email(value: Any) -> str:
    try:
        return normalise_email(value)
    except ValueError as exc:
        raise _refuse("email", str(exc)) from None


Email = Annotated[
    str,
    BeforeValidator(_email),
    Field(max_length=MAX_EMAIL_LENGTH, json_schema_extra={"format": "email"},
          description="Unique in the CRM whatever its letter case; stored lower-case."),
]
Name = _text(200, required=True)
Company = _text(200)
Phone = _text(50, pattern=(r"^[0-9+().\-\s/x]*$", "Use digits, spaces and + ( ) - . / x only."))
SearchText = _text(200, description="Part of the name, email or company, in any letter case.")
EventType = _text(64, description="Only events of this type.")
Role = _choice(ACCOUNT_ROLES)
Status = _choice(CONTACT_STATUSES)


def optional(description: str | None = None) -> Any:
    """A field that may be left out (then ``None``, and not in ``model_fields_set``). Sent as
    ``null`` it is checked like any other value; the document shows no ``null`` default."""
    return Field(None, description=description)


def _no_null_defaults(schema: dict[str, Any]) -> None:
    for field in schema.get("properties", {}).values():
        if "default" in field and field["default"] is None:
            del field["default"]


# --- values in API paths: outside these rules the thing cannot exist, so it is unknown (404) ----

PATH_RULES: dict[str, TypeAdapter] = {
    "contact_id": TypeAdapter(Annotated[int, Field(ge=1, le=MAX_ID, description="A contact's id.")]),
    "endpoint_id": TypeAdapter(Annotated[int, Field(ge=1, le=MAX_ID, description="A webhook endpoint's id.")]),
    "slug": TypeAdapter(Annotated[str, Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="A task of the caller's checklist, e.g. `accept-terms`.")]),
    "key": TypeAdapter(Annotated[str, Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="A document's key, e.g. `service-terms`.")]),
    "role": TypeAdapter(Annotated[str, Field(
        pattern=r"^(client|partner)$", description="The checklist's role: `client` or `partner`.")]),
    "file_id": TypeAdapter(Annotated[int, Field(ge=1, le=MAX_ID, description="An uploaded file's id.")]),
}


def fits_path(name: str, value: Any) -> bool:
    try:
        PATH_RULES[name].validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


# --- what comes in -------------------------------------------------------------------------------


class Shape(BaseModel):
    """A request shape: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)
    refusal: ClassVar[str] = "Some fields are invalid."


class ContactCreate(Shape):
    name: Name
    email: Email
    company: Company = ""
    phone: Phone = ""
    role: Role = "client"


class ContactUpdate(Shape):
    name: Name = optional()
    email: Email = optional("Only while no account is linked (else 409 account_linked).")
    company: Company = optional()
    phone: Phone = optional()
    role: Role = optional("Cannot change once the account exists (409 invalid_transition).")
    status: Status = optional(
        "Staff moves only: LEAD→QUALIFIED, QUALIFIED→LEAD, LEAD/QUALIFIED→LOST, LOST→LEAD. "
        "Any other move is 409 invalid_transition."
    )


class Query(BaseModel):
    """A query string: empty values mean "not given", unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_no_null_defaults)
    refusal: ClassVar[str] = "Invalid query."

    @model_validator(mode="before")
    @classmethod
    def _drop_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value != ""}
        return data


class ContactListQuery(Query):
    refusal: ClassVar[str] = "Invalid filter."

    status: Status = optional("Only contacts in this status.")
    q: SearchText = ""
    page: int = Field(1, ge=1, le=100_000, description="Which page, from 1.")
    per_page: int = Field(None, ge=1, le=MAX_PER_PAGE,
                          description="Page size (the server's default when left out).")

    def filters(self, default_per_page: int) -> dict[str, Any]:
        """The keyword arguments of ``contacts.list_contacts``."""
        return {"status": self.status, "q": self.q, "page": self.page, "per_page": self.per_page or default_per_page}


class FeedQuery(Query):
    refusal: ClassVar[str] = "Invalid feed query."

    type: EventType = ""
    before: int = Field(None, ge=1, le=MAX_ID,
                        description="Only events older than this id: the `next_before` of the previous page.")
    limit: int = Field(None, ge=1, le=MAX_FEED_LIMIT,
                       description="Page size (the server's default when left out).")

    def filters(self, default_limit: int) -> dict[str, Any]:
        """The keyword arguments of ``feed.list_feed``."""
        return {"type": self.type or None, "before": self.before, "limit": self.limit or default_limit}


TrackerStatus = _choice(("ONBOARDING", "ACTIVE", "all"))
FUNNEL_DAYS = 30  # the pages' default cohort: the accounts provisioned in the last 30 days


def _utc(value: datetime | None) -> datetime | None:
    """A date-time without a zone is read as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class TrackerQuery(Query):
    refusal: ClassVar[str] = "Invalid filter."

    status: TrackerStatus = Field("ONBOARDING", description="`ONBOARDING` (the default), `ACTIVE` or `all`.")
    role: Role = optional("Only accounts of this role.")
    stalled: bool = Field(False, description="Only accounts whose `stalled_days` ≥ `REMINDER_AFTER_DAYS`.")
    page: int = Field(1, ge=1, le=100_000, description="Which page, from 1.")
    per_page: int = Field(None, ge=1, le=MAX_PER_PAGE,
                          description="Page size (the server's default when left out).")

    def filters(self, default_per_page: int) -> dict[str, Any]:
        """The keyword arguments of ``tracker.list_accounts`` (but the stalled threshold)."""
        return {"status": self.status, "role": self.role, "stalled": self.stalled, "page": self.page,
                "per_page": self.per_page or default_per_page}


class FunnelQuery(Query):
    refusal: ClassVar[str] = "Invalid funnel query."

    role: Role = Field("client", description="The checklist's role (`client` by default).")
    since: Annotated[datetime, AfterValidator(_utc)] = optional(
        "The cohort: accounts provisioned since this ISO 8601 date or date-time (UTC when it has no "
        f"zone). Default: {FUNNEL_DAYS} days ago.")

    def filters(self, now: datetime) -> dict[str, Any]:
        """The keyword arguments of ``tracker.funnel``."""
        return {"role": self.role, "since": self.since or now - timedelta(days=FUNNEL_DAYS)}



# --- what a checklist task collects (SPEC.md, "Onboarding tasks that check themselves") -------
# One model per task kind; ``task_kinds.TASK_KINDS`` maps each kind to its model. The API body
# of ``POST /api/v1/onboarding/complete/<slug>`` and the widget's inline forms are both
# checked by these models.

MAX_TEAMMATES = 20

# Offered first in the profile's time zone select; any IANA name is accepted.
COMMON_TIMEZONES = (
    "UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin",
    "Europe/Madrid", "Europe/Amsterdam", "Europe/Stockholm", "Europe/Warsaw", "Europe/Athens",
    "Europe/Istanbul", "Africa/Johannesburg", "Africa/Lagos", "Asia/Dubai", "Asia/Kolkata",
    "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland",
    "America/Sao_Paulo", "America/New_York", "America/Toronto", "America/Chicago", "America/Denver",
    "America/Los_Angeles", "America/Mexico_City",
)


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    """Every IANA zone name this system knows (``zoneinfo``), sorted."""
    return tuple(sorted(name for name in available_timezones() if "/" in name or name == "UTC"))


def _zone(value: str) -> str:
    if value not in timezone_names():
        raise _refuse("timezone", "Choose a time zone from the list (an IANA name such as Europe/Paris).")
    return value


TimeZoneName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_zone),
    Field(description="An IANA time zone name, e.g. `Europe/Paris`.", examples=["Europe/Paris"]),
]
JobTitle = _text(200)
Address = _text(500)
VatId = _text(32, pattern=(r"^[A-Za-z0-9 .\-]*$", "Use letters, digits, spaces, dots and dashes only."))
Signature = _text(200, description="The signer's full name.")


def _teammate_list(value: Any) -> Any:
    """Addresses as a JSON list, or as the form's text (separated by commas, spaces or lines).
    Each is checked and lower-cased; repeats are dropped; the first bad one is named."""
    if isinstance(value, str):
        value = [part for part in value.replace(",", " ").replace(";", " ").split()]
    if not isinstance(value, list):
        raise _refuse("list_type", "Must be a list of email addresses.")
    addresses: list[str] = []
    for item in value:
        try:
            address = normalise_email(item)
        except ValueError:
            shown = item if isinstance(item, str) else repr(item)
            raise _refuse("email", f"{shown[:80]!s} is not a valid email address.") from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _refuse("too_short", "Enter at least one email address.")
    if len(addresses) > MAX_TEAMMATES:
        raise _refuse("too_long", f"Invite at most {MAX_TEAMMATES} people at a time.")
    return addresses


Teammates = Annotated[
    list[str],
    BeforeValidator(_teammate_list),
    Field(min_length=1, max_length=MAX_TEAMMATES, description=f"1 to {MAX_TEAMMATES} addresses, not your own."),
]


def _accepted(value: bool) -> bool:
    if value is not True:
        raise _refuse("accept", "Tick the box to accept the document.")
    return value


class NoAnswers(Shape):
    """``password`` and ``manual`` tasks take nothing (``{}`` or no body)."""


class ProfileAnswers(Shape):
    name: Name
    company: _text(200, required=True)
    timezone: TimeZoneName
    phone: Phone = ""
    job_title: JobTitle = ""


class TermsAnswers(Shape):
    accept: Annotated[bool, AfterValidator(_accepted)] = Field(
        False, validate_default=True, description="Must be true: the user accepts the document.")
    version: int = Field(ge=1, le=MAX_ID, description="The document's current version (older: 409 stale_version).")
    signature: Signature = ""


class SignedTermsAnswers(TermsAnswers):
    """A ``terms`` task whose acceptance is signed (the partner agreement)."""

    signature: _text(200, required=True, description="The signer's full name.")


class BillingAnswers(Shape):
    billing_name: Name
    billing_email: Email
    address: Address = ""
    vat_id: VatId = ""


class TeammatesAnswers(Shape):
    emails: Teammates


class UploadAnswers(Shape):
    """Documentation of the multipart body; the file itself is checked by ``uploads``."""

    file: bytes = Field(json_schema_extra={"format": "binary", "contentMediaType": "application/octet-stream"},
                        description="One PDF, PNG or JPEG file, judged by its content; at most `UPLOAD_MAX_BYTES`.")


class TaskAnswers(RootModel[ProfileAnswers | SignedTermsAnswers | TermsAnswers | BillingAnswers | TeammatesAnswers
                            | NoAnswers]):
    """The JSON body of a completion: what the task's kind takes (its `fields`); `{}` for
    `password` and `manual` tasks."""


class DocumentVersionCreate(Shape):
    title: _text(200, required=True)
    body_markdown: _text(100_000, required=True, description="Markdown; rendered and sanitized for display.")

def _http_url(value: str) -> str:
    """An absolute http(s) address with a host, or nothing at all."""
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise _refuse("http_url", "Must be an http:// or https:// address.")
    return value


ActionUrl = Annotated[_text(500, description="Where the task is done (http:// or https://), or empty."),
                      AfterValidator(_http_url)]
TaskSlug = _text(64, required=True, pattern=(
    r"^[a-z0-9][a-z0-9-]*$", "Use lower-case letters, digits and hyphens, starting with a letter or digit."))
DocumentKey = _text(64, pattern=(r"^([a-z0-9][a-z0-9-]*)?$", "A document key, e.g. service-terms."))
TaskKind = _choice(TASK_KIND_NAMES)


class ChecklistTaskCreate(Shape):
    slug: TaskSlug
    title: _text(200, required=True)
    kind: TaskKind
    required: bool
    description: _text(2000) = ""
    action_url: ActionUrl = ""
    document: DocumentKey = Field("", description="A document key (a `terms` task needs one), or null.")


class ChecklistTaskUpdate(Shape):
    title: _text(200, required=True) = optional()
    description: _text(2000) = optional()
    required: bool = optional()
    position: int = Field(None, ge=1, le=10_000, description="1-based; the other tasks are renumbered.")
    action_url: ActionUrl = optional()
    retired: bool = optional("A retired task leaves every checklist; false brings it back.")


# --- what goes out -------------------------------------------------------------------------------


class Out(BaseModel):
    """A response shape: read from the domain's objects, never from a model's ``__dict__``."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")


Timestamp = Annotated[datetime, Field(description="ISO 8601, UTC.")]


class Contact(Out):
    id: int
    name: str
    email: str
    company: str
    phone: str
    role: Literal[ACCOUNT_ROLES]
    status: Literal[CONTACT_STATUSES]
    user_id: int | None = Field(description="The contact's account, once provisioned.")
    created_at: Timestamp
    updated_at: Timestamp


class RequiredProgress(Out):
    required_total: int = Field(ge=0)
    required_completed: int = Field(ge=0)
    complete: bool


class ContactOnboarding(RequiredProgress):
    tasks: list[Task]


class ContactDetail(Contact):
    onboarding: ContactOnboarding | None = Field(
        None, exclude_if=lambda value: value is None, description="Present once the contact has an account."
    )


class ContactPage(Out):
    items: list[Contact]
    page: int = Field(ge=1)
    per_page: int = Field(ge=1)
    total: int = Field(ge=0)


class Provisioned(Out):
    user_id: int
    email: str


class TaskField(Out):
    name: str
    type: str = Field(description="`string`, `email`, `boolean`, `integer`, `array` or `file`.")
    required: bool


class TaskDocument(Out):
    key: str
    version: int = Field(description="The current version: the one to accept.")
    title: str


class Task(Out):
    slug: str
    title: str
    description: str
    required: bool
    position: int
    completed: bool
    completed_at: Timestamp | None
    kind: Literal[TASK_KIND_NAMES]
    skipped: bool = Field(description="An optional task the user skipped (counts neither way).")
    action_url: str | None
    fields: list[TaskField] = Field(description="What `POST /onboarding/complete/<slug>` takes.")
    data: dict[str, Any] | None = Field(description="The answers given (null until the task collects some).")
    document: TaskDocument | None = Field(description="A `terms` task's document.")

    @classmethod
    def of(cls, state: Any, file_url: Any = None) -> Task:
        """From ``checklist.TaskState``: the task and the user's progress on it. ``file_url``
        makes an upload's download address from its file id."""
        from .task_kinds import action_url, kind_of

        task = state.task
        data = dict(state.data) if state.data else None
        if data and "file_id" in data and file_url is not None:
            data["url"] = file_url(data["file_id"])
        document = state.document
        return cls(slug=task.slug, title=task.title, description=task.description, required=task.required,
                   position=task.position, completed=state.completed, completed_at=state.completed_at,
                   kind=task.kind, skipped=state.skipped, action_url=action_url(task),
                   fields=kind_of(task).fields(task), data=data,
                   document=TaskDocument(key=document.key, version=document.version, title=document.title)
                   if document is not None else None)


ContactStatusOrNone = Annotated[
    Literal[CONTACT_STATUSES] | None,
    Field(description="The status of the user's contact; null for a user without one."),
]


class Onboarding(Out):
    tasks: list[Task]
    required_total: int = Field(ge=0)
    required_completed: int = Field(ge=0)
    complete: bool
    status: ContactStatusOrNone

    @classmethod
    def of(cls, state: Any, file_url: Any = None) -> Onboarding:
        """From ``checklist.OnboardingState``."""
        return cls(tasks=[Task.of(t, file_url) for t in state.tasks], required_total=state.required_total,
                   required_completed=state.required_completed, complete=state.complete, status=state.status)


class TaskCompletion(Out):
    task: Task
    complete: bool = Field(description="Every required task is done.")
    status: ContactStatusOrNone
    created: list[str] | None = Field(None, exclude_if=lambda value: value is None,
                                      description="Teammates: the addresses that became contacts.")
    skipped: list[str] | None = Field(None, exclude_if=lambda value: value is None,
                                      description="Teammates: the addresses already in the CRM.")

    @classmethod
    def of(cls, result: Any, file_url: Any = None) -> TaskCompletion:
        """From ``provisioning.TaskCompletion``."""
        extra = result.extra or {}
        return cls(task=Task.of(result.task, file_url), complete=result.complete, status=result.status,
                   created=extra.get("created"), skipped=extra.get("skipped"))


class DocumentOut(Out):
    key: str
    version: int
    title: str
    body_markdown: str
    body_html: str = Field(description="The markdown rendered and sanitized.")
    published_at: Timestamp

    @classmethod
    def of(cls, document: Any) -> DocumentOut:
        from .documents import render

        return cls(key=document.key, version=document.version, title=document.title,
                   body_markdown=document.body_markdown, body_html=str(render(document.body_markdown)),
                   published_at=document.published_at)


class DocumentVersion(Out):
    key: str
    version: int


class FeedEvent(Out):
    id: int
    type: str = Field(examples=["onboarding.account.provisioned"])
    created_at: Timestamp
    actor_id: int | None = Field(description="Null for the system.")
    contact_id: int | None
    user_id: int | None
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Any) -> FeedEvent:
        return cls(id=event.id, type=event.type, created_at=event.created_at, actor_id=event.actor_id,
                   contact_id=event.contact_id, user_id=event.user_id, data=event.payload or {})


class FeedPage(Out):
    items: list[FeedEvent]
    next_before: int | None = Field(description="Pass as `before` for the next page; null on the last.")

    @classmethod
    def of(cls, page: Any) -> FeedPage:
        """From ``feed.FeedPage``."""
        return cls(items=[FeedEvent.of(e) for e in page.items], next_before=page.next_before)


class ErrorDetail(BaseModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Stable, snake_case: for scripts.")
    message: str = Field(description="A sentence for people.")
    fields: dict[str, str] | None = Field(
        None, exclude_if=lambda value: value is None, description="422 only: what is wrong with each field."
    )


class Error(BaseModel):
    """Every refusal: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


class InvalidFieldsDetail(ErrorDetail):
    code: Literal["invalid_fields"]
    fields: dict[str, str] = Field(description="What is wrong with each field.")


class InvalidFields(BaseModel):
    """422: ``fields`` says what is wrong with each field or filter."""

    error: InvalidFieldsDetail


class AlreadyProvisionedDetail(BaseModel):
    code: Literal["already_provisioned", "user_exists"]
    message: str


class AlreadyProvisioned(BaseModel):
    user_id: int = Field(description="The account the contact already has (`already_provisioned`), or the "
                                     "existing account now linked to it (`user_exists`).")
    email: str
    error: AlreadyProvisionedDetail


class ProvisionConflict(RootModel[AlreadyProvisioned | Error]):
    """409 on provisioning: the account the contact has (already, or an existing one just linked), or
    another conflict (`staff_account`, nothing changed)."""


class OpenApiDocument(RootModel[dict[str, Any]]):
    """The OpenAPI 3.1 document."""


# --- webhooks ------------------------------------------------------------------------------------

ALL_EVENTS = "*"
WEBHOOK_EVENT_TYPES = (ALL_EVENTS, *sorted(SENTENCES))
WebhookEvent = _choice(WEBHOOK_EVENT_TYPES)


class WebhookCreate(Shape):
    url: str = Field(max_length=2000, description=(
        "Where events are POSTed: https:// in production; never a loopback, private, link-local or "
        "multicast address (unless WEBHOOK_ALLOW_PRIVATE_HOSTS)."))
    events: list[WebhookEvent] = Field(min_length=1, max_length=len(WEBHOOK_EVENT_TYPES),
                                       description='Event types, or ["*"] for every event.')
    description: _text(500) = ""

    @model_validator(mode="after")
    def _url_is_text(self) -> WebhookCreate:
        _printable(self.url)
        return self


class Webhook(Out):
    id: int
    url: str
    events: list[str]
    description: str
    active: bool
    created_at: Timestamp

    @classmethod
    def of(cls, endpoint: Any) -> Webhook:
        return cls(id=endpoint.id, url=endpoint.url, events=endpoint.event_types, description=endpoint.description,
                   active=endpoint.active, created_at=endpoint.created_at)


class WebhookCreated(Webhook):
    secret: str = Field(description="`whsec_` + base64: signs every delivery. Shown only in this answer.")


class WebhookList(Out):
    items: list[Webhook]


class WebhookDelivery(Out):
    id: int
    event_type: str
    status: Literal[DELIVERY_STATUSES]
    attempts: int = Field(ge=0)
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: Timestamp | None
    delivered_at: Timestamp | None

    @classmethod
    def of(cls, delivery: Any) -> WebhookDelivery:
        return cls(id=delivery.id, event_type=delivery.event.type, status=delivery.status,
                   attempts=delivery.attempts, last_status_code=delivery.last_status_code,
                   last_error=delivery.last_error,
                   next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
                   delivered_at=delivery.delivered_at)


class WebhookDeliveries(Out):
    items: list[WebhookDelivery]


class Queued(Out):
    queued: bool = True


class TrackerTask(Out):
    slug: str
    title: str
    required: bool
    completed: bool
    skipped: bool
    completed_at: Timestamp | None


class WelcomeEmail(Out):
    status: Literal["pending", "sent", "failed"]
    attempts: int = Field(ge=0)
    last_error: str | None


class TrackerAccount(Out):
    contact_id: int
    user_id: int
    name: str
    email: str
    role: Literal[ACCOUNT_ROLES]
    status: Literal[CONTACT_STATUSES]
    provisioned_at: Timestamp | None
    last_sign_in_at: Timestamp | None = Field(description="Null until the user first signs in.")
    last_activity_at: Timestamp | None = Field(
        description="Provisioning, the last sign-in, or the last task done or skipped.")
    stalled_days: int = Field(ge=0, description="Whole days since the last activity (0 once ACTIVE).")
    required_total: int = Field(ge=0)
    required_completed: int = Field(ge=0)
    reminders_sent: int = Field(ge=0)
    welcome_email: WelcomeEmail | None = Field(description="The latest welcome email; null if none.")
    tasks: list[TrackerTask] = Field(description="Every task of the account's checklist, in order.")


class TrackerPage(Out):
    items: list[TrackerAccount] = Field(description="Most stalled first.")
    page: int = Field(ge=1)
    per_page: int = Field(ge=1)
    total: int = Field(ge=0)


class FunnelStep(Out):
    key: str = Field(description="`provisioned`, `signed_in`, a required task's slug, or `active`.")
    label: str
    count: int = Field(ge=0)


class TimeToActive(Out):
    n: int = Field(ge=0, description="How many of the cohort are ACTIVE.")
    median_hours: float | None = Field(description="Null when none is ACTIVE.")
    p90_hours: float | None = Field(description="The 90th percentile; null when none is ACTIVE.")


class Funnel(Out):
    role: Literal[ACCOUNT_ROLES]
    since: Timestamp
    steps: list[FunnelStep]
    time_to_active: TimeToActive


class ReminderQueued(Out):
    queued: Literal["reminder", "welcome"] = Field(
        description="`welcome`: the user never got in, so the welcome email goes again with a fresh credential; "
                    "`reminder`: the open required tasks with a link to the dashboard.")


class ChecklistTask(Out):
    slug: str
    title: str
    description: str
    kind: str
    required: bool
    position: int = Field(description="1-based.")
    action_url: str | None
    document: str | None = Field(description="The document key of a `terms` task, else null.")
    retired: bool

    @classmethod
    def of(cls, task: Any) -> ChecklistTask:
        return cls(slug=task.slug, title=task.title, description=task.description or "", kind=task.kind,
                   required=task.required, position=task.position, action_url=task.action_url or None,
                   document=task.document_key, retired=task.retired_at is not None)


class Checklist(Out):
    role: str
    tasks: list[ChecklistTask]
