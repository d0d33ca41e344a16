"""Versioned documents users accept (``service-terms``, ``partner-agreement``): the current
version of each, publishing the next one, and rendering the markdown as safe HTML.

A version is never edited. Publishing makes version n+1 the current one; a task accepted
under an older version stays done (its answers keep the version accepted), and anyone who
has not accepted yet must accept the current one.
"""

from __future__ import annotations

from typing import Any

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import feed
from .errors import NotFound
from .models import Document, utcnow
from .schemas import DocumentVersionCreate, check
from .transactions import run_in_transaction

# What rendered markdown may contain: text structure and links, nothing active, no images
# (the Content-Security-Policy serves none from elsewhere), no style or class attributes.
_TAGS = {
    "p", "br", "hr", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "del", "sup", "sub",
}
_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}, "ol": {"start"}}
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


def render(markdown: str, *, heading_offset: int = 2) -> Markup:
    """The markdown as sanitized HTML (markdown-it-py, then nh3). Raw HTML in the source is
    shown as text; headings move down ``heading_offset`` levels so that a document's
    ``#`` sits below the page's own headings."""
    tokens = _markdown.parse(markdown or "")
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + heading_offset)}"
    html = _markdown.renderer.render(tokens, _markdown.options, {})
    return Markup(nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes={"https", "http", "mailto"},
                            link_rel="noopener noreferrer nofollow"))


def current_version_query(key_column):
    """A scalar subquery: the current (highest) version of the document ``key_column`` names."""
    return select(func.max(Document.version)).where(Document.key == key_column).correlate_except(Document).scalar_subquery()


def current(session: Session, key: str) -> Document:
    """The current version of document ``key``, or NotFound."""
    document = session.execute(
        select(Document).where(Document.key == key).order_by(Document.version.desc()).limit(1)
    ).scalar_one_or_none()
    if document is None:
        raise NotFound(f"There is no document {key!r}.")
    return document


def publish(session: Session, key: str, data: DocumentVersionCreate | dict[str, Any], *, actor_id: int | None) -> Document:
    """Publish the next version of ``key`` (version 1 for a new key). Two publishers at once
    get consecutive versions: the unique (key, version) makes the later one retry."""
    values = check(DocumentVersionCreate, data)

    def work() -> Document:
        latest = session.execute(select(func.max(Document.version)).where(Document.key == key)).scalar_one()
        document = Document(key=key, version=(latest or 0) + 1, title=values.title,
                            body_markdown=values.body_markdown, published_at=utcnow(), published_by=actor_id)
        session.add(document)
        session.flush()
        feed.record(session, feed.EVENT_DOCUMENT_PUBLISHED, actor_id=actor_id,
                    data={"key": key, "version": document.version, "title": document.title})
        return document

    return run_in_transaction(session, work)
