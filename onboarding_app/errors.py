"""The domain's errors: raised once by the services, mapped to HTTP once per blueprint."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every refusal the services make. ``code`` is stable, ``message`` is for people.
    ``public`` names the ``details`` an API answer shows beside them."""

    code = "domain_error"
    public: tuple[str, ...] = ()

    def __init__(self, message: str, **details) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class UnknownTask(NotFound):
    code = "unknown_task"


class ValidationFailed(DomainError):
    """One or more fields are invalid; ``fields`` maps each to its problem."""

    code = "invalid_fields"

    def __init__(self, fields: dict[str, str], message: str = "Some fields are invalid.") -> None:
        super().__init__(message)
        self.fields = fields


class Conflict(DomainError):
    """The request does not fit the current state of things."""

    code = "conflict"


class EmailTaken(Conflict):
    code = "email_taken"


class SlugTaken(Conflict):
    """A checklist has a task with that slug already (retired ones included)."""

    code = "slug_taken"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class AccountLinked(Conflict):
    """The contact's account exists, so what identifies it (the email) is fixed."""

    code = "account_linked"


class NotDeletable(Conflict):
    """Only a LEAD or LOST contact without an account can be deleted."""

    code = "not_deletable"


class NotQualified(DomainError):
    code = "not_qualified"


class NotProvisioned(Conflict):
    code = "not_provisioned"


class AutomaticTask(Conflict):
    code = "automatic_task"


class PasswordAlreadySet(Conflict):
    code = "password_already_set"


class StaffAccount(Conflict):
    """A customer contact's email belongs to a staff or admin login, which it never takes over."""

    code = "staff_account"


class LinkInvalid(DomainError):
    """A sign-in link that is unknown, used, expired, or for a deactivated account."""

    code = "link_invalid"


class InvalidCredentials(DomainError):
    code = "invalid_credentials"


class TemporaryPasswordExpired(InvalidCredentials):
    code = "temporary_password_expired"


class NotOnboarding(Conflict):
    """Only an account still in ONBOARDING can be reminded."""

    code = "not_onboarding"


class RequiredTask(Conflict):
    """Only an optional task can be skipped."""

    code = "required_task"


class StaleVersion(Conflict):
    """The document version accepted is not the current one; ``current_version`` is."""

    code = "stale_version"
    public = ("current_version",)


class FileTooLarge(DomainError):
    """An upload larger than ``UPLOAD_MAX_BYTES`` (HTTP 413)."""

    code = "file_too_large"
