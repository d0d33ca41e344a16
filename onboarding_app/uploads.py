"""Files users upload for a task: judged by their content (PDF, PNG or JPEG), capped by
``UPLOAD_MAX_BYTES``, stored in the database (so any app host serves them), and handed out
only to their owner and to staff.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .errors import FileTooLarge, NotFound, ValidationFailed
from .models import Contact, UploadedFile, User

DEFAULT_MAX_BYTES = 10 * 1024 * 1024

# (leading bytes, content type, extension): what a file is, read from what it starts with.
_SIGNATURES = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
)
CONTENT_TYPES = tuple(content_type for _, content_type, _ in _SIGNATURES)
_EXTENSIONS = {".pdf": (".pdf",), ".png": (".png",), ".jpg": (".jpg", ".jpeg")}


@dataclass(frozen=True)
class IncomingFile:
    """An uploaded file as the request gave it: its name (the client's word only) and bytes."""

    filename: str
    content: bytes


@dataclass(frozen=True)
class CheckedFile:
    filename: str  # sanitized, with an extension that matches the content
    content: bytes
    content_type: str


# What a multipart body may hold beyond the file itself (boundaries, headers, other fields).
MULTIPART_OVERHEAD = 64 * 1024


def max_bytes() -> int:
    return int(current_app.config.get("UPLOAD_MAX_BYTES") or DEFAULT_MAX_BYTES)


# The routes that take a task's answers, an upload among them.
UPLOAD_ENDPOINTS = {"api.complete_task", "onboarding.complete_task"}


def raise_body_limit_for_uploads() -> None:
    """``before_request`` (registered ahead of the CSRF check, which reads the form): let a
    multipart post to a task's completion be as large as an upload may be."""
    from flask import request

    if request.endpoint in UPLOAD_ENDPOINTS:
        allow_upload_body(request)


def allow_upload_body(request) -> None:
    """Let this request's body (a multipart upload) be as large as ``UPLOAD_MAX_BYTES`` plus
    the multipart overhead, instead of ``MAX_CONTENT_LENGTH`` (which keeps JSON and form posts
    small); larger bodies are refused with 413 before they are read."""
    if request.mimetype == "multipart/form-data":
        request.max_content_length = max(current_app.config.get("MAX_CONTENT_LENGTH") or 0,
                                         max_bytes() + MULTIPART_OVERHEAD)


def incoming(storage) -> IncomingFile | None:
    """A file part of a request (werkzeug's ``FileStorage``) as an ``IncomingFile``, reading at
    most one byte past ``UPLOAD_MAX_BYTES``; an empty file input (no name, no bytes) is None."""
    limit = max_bytes()
    content = storage.stream.read(limit + 1)
    if not content and not storage.filename:
        return None
    if len(content) > limit:
        raise FileTooLarge(f"The file is larger than {describe_size(limit)}; upload a smaller one.", max_bytes=limit)
    return IncomingFile(filename=storage.filename or "", content=content)


def form_answers(request) -> dict:
    """A task's answers from a ``multipart/form-data`` or urlencoded post: the text fields
    (the CSRF token aside) and each file as an ``IncomingFile`` (one per field)."""
    allow_upload_body(request)
    data = {name: value for name, value in request.form.items() if name != "csrf_token"}
    for name in request.files:
        files = request.files.getlist(name)
        if len(files) != 1:
            raise ValidationFailed({name: "Send one file only."})
        file = incoming(files[0])
        if file is not None:
            data[name] = file
    return data


def describe_size(limit: int) -> str:
    if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit >= 1024 and limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


def detect(content: bytes) -> tuple[str, str] | None:
    """(content type, extension) judged from the bytes, or None for anything else."""
    for magic, content_type, extension in _SIGNATURES:
        if content.startswith(magic):
            return content_type, extension
    return None


def safe_name(filename: str, extension: str) -> str:
    """The client's file name made harmless: no directories, no control or quoting
    characters, at most 120 characters, ending with the extension of what the file is."""
    name = unicodedata.normalize("NFC", filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.sub(r'[<>:"|?*;\x00]', "", name)
    name = re.sub(r"\s+", " ", name).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if dot and "." + ext.lower() in _EXTENSIONS.get(extension, (extension,)):
        name = stem.strip(" .")
    name = (name or "upload")[:120 - len(extension)]
    return name + extension


def check(file: IncomingFile | None) -> CheckedFile:
    """The file checked, or the refusal: none or empty (422), too large (413), not a PDF, PNG
    or JPEG whatever its name says (422)."""
    if file is None:
        raise ValidationFailed({"file": "Choose a file to upload."})
    if not isinstance(file, IncomingFile):
        raise ValidationFailed({"file": "Send the file as multipart/form-data."})
    limit = max_bytes()
    if len(file.content) > limit:
        raise FileTooLarge(f"The file is larger than {describe_size(limit)}; upload a smaller one.", max_bytes=limit)
    if not file.content:
        raise ValidationFailed({"file": "The file is empty."})
    detected = detect(file.content)
    if detected is None:
        raise ValidationFailed({"file": "Upload a PDF, PNG or JPEG file; this file is none of those."})
    content_type, extension = detected
    return CheckedFile(safe_name(file.filename, extension), file.content, content_type)


def replace(session: Session, *, owner_id: int, task_id: int, file: CheckedFile) -> UploadedFile:
    """Store ``file`` as the owner's upload for the task, in the caller's transaction; an
    earlier upload for that task is removed (sending the task again replaces its answers)."""
    session.execute(delete(UploadedFile).where(UploadedFile.owner_id == owner_id, UploadedFile.task_id == task_id))
    row = UploadedFile(
        owner_id=owner_id, task_id=task_id, original_name=file.filename, content_type=file.content_type,
        size=len(file.content), sha256=hashlib.sha256(file.content).hexdigest(), content=file.content,
    )
    session.add(row)
    session.flush()
    return row


def for_download(session: Session, viewer: User, contact_id: int, file_id: int) -> UploadedFile:
    """The file ``file_id`` of the contact's account, if ``viewer`` is staff or its owner;
    otherwise NotFound (a stranger learns nothing, not even that it exists). One query."""
    row = session.execute(
        select(UploadedFile)
        .join(Contact, Contact.user_id == UploadedFile.owner_id)
        .where(UploadedFile.id == file_id, Contact.id == contact_id)
    ).scalar_one_or_none()
    if row is None or not (viewer.is_staff or viewer.id == row.owner_id):
        raise NotFound(f"File {file_id} does not exist.")
    return row
