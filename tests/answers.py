"""Valid answers for every seeded checklist task, for tests that complete tasks through the
services (``service``), the JSON API (``api``) or the widget's forms (``form``)."""

from __future__ import annotations

from io import BytesIO

from onboarding_app.uploads import IncomingFile

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32

PROFILE = {"name": "Margaret Hamilton", "company": "Apollo Software", "timezone": "Europe/Paris",
           "phone": "+1 617 555 0100", "job_title": "Director of Software Engineering"}
BILLING = {"billing_name": "Accounts Payable", "billing_email": "ap@apollo.example", "address": "1 Launch Way",
           "vat_id": "GB123456789"}

_BY_SLUG = {
    "complete-profile": PROFILE,
    "accept-terms": {"accept": True, "version": 1},
    "sign-partner-agreement": {"accept": True, "version": 1, "signature": "Katherine Johnson"},
    "add-billing-contact": BILLING,
    "invite-teammates": {"emails": ["teammate@apollo.example"]},
}


def service(slug: str) -> dict | None:
    """What ``provisioning.complete_task`` takes for the seeded task ``slug`` (None: nothing)."""
    if slug == "upload-tax-form":
        return {"file": IncomingFile("w9.pdf", PDF)}
    answers = _BY_SLUG.get(slug)
    return dict(answers) if answers is not None else None


def api(slug: str) -> dict:
    """Keyword arguments of a test client's POST to ``/api/v1/onboarding/complete/<slug>``."""
    if slug == "upload-tax-form":
        return {"data": {"file": (BytesIO(PDF), "w9.pdf")}, "content_type": "multipart/form-data"}
    answers = _BY_SLUG.get(slug)
    return {"json": dict(answers)} if answers is not None else {}


def form(slug: str) -> dict:
    """The widget form's fields for ``slug``, as a browser posts them (CSRF token aside)."""
    if slug == "upload-tax-form":
        return {"file": (BytesIO(PDF), "w9.pdf")}
    answers = _BY_SLUG.get(slug) or {}
    out = {}
    for name, value in answers.items():
        if isinstance(value, bool):
            value = "true" if value else None
        elif isinstance(value, list):
            value = "\n".join(value)
        if value is not None:
            out[name] = str(value)
    return out
