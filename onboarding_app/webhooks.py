"""Webhooks (SPEC.md, "Webhooks"): admins register endpoints; every feed event an endpoint
subscribes to gets a delivery row in the event's own transaction (``fan_out``, called by
``feed.record``); the worker POSTs it, signed per Standard Webhooks, with a timeout and
retries on ``WEBHOOK_RETRY_SCHEDULE``. URLs that resolve to loopback, private, link-local,
multicast or reserved addresses are refused at registration and again at each delivery."""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import logging
import secrets
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from flask import current_app
from sqlalchemy import func, insert, literal, or_, select
from sqlalchemy.orm import Session, joinedload
from standardwebhooks.webhooks import Webhook

from . import feed, jobs, leases, schemas
from .errors import ValidationFailed
from .models import FeedEvent, User, WebhookDelivery, WebhookEndpoint, utcnow
from .transactions import get_or_404, run_in_transaction

log = logging.getLogger(__name__)

JOB_DELIVER = "deliver_webhook"
ALL_EVENTS = schemas.ALL_EVENTS


# --- where a URL may point --------------------------------------------------------------------


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or not ip.is_global
    )


def url_problem(url: str, *, allow_private: bool, require_https: bool) -> str | None:
    """Why ``url`` may not receive webhooks, or None. Every address the host resolves to is
    checked (``127.1``, ``0x7f000001`` and IPv4-mapped IPv6 resolve to loopback too)."""
    parts = urlsplit(url)
    schemes = ("https",) if require_https and not allow_private else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        return f"Use an absolute {' or '.join(s + '://' for s in schemes)} URL."
    if parts.username or parts.password:
        return "Put no user name or password in the URL."
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return "The host name does not resolve."
    if not allow_private and any(_refused_address(info[4][0]) for info in infos):
        return "The host resolves to a loopback, private, link-local or multicast address."
    return None


def _check_url(url: str) -> str | None:
    production = current_app.config.get("APP_ENV", "production") == "production"
    return url_problem(
        url,
        allow_private=current_app.config["WEBHOOK_ALLOW_PRIVATE_HOSTS"],
        require_https=production and not (current_app.testing or current_app.debug),
    )


# --- endpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def known_event_types() -> list[str]:
    """What an endpoint can subscribe to: every event type the feed names."""
    return [t for t in schemas.WEBHOOK_EVENT_TYPES if t != ALL_EVENTS]


def create_endpoint(session: Session, data: Any, *, actor: User | None = None) -> NewEndpoint:
    """A new endpoint from ``schemas.WebhookCreate`` (or a dict of its fields). The URL must
    resolve, and only to public addresses (``WEBHOOK_ALLOW_PRIVATE_HOSTS`` lifts that)."""
    try:
        values = schemas.check(schemas.WebhookCreate, data)
    except ValidationFailed as exc:  # say what is wrong with the URL too, not only its shape
        url = data.get("url") if isinstance(data, dict) else None
        if "url" not in exc.fields and isinstance(url, str) and (problem := _check_url(url.strip())):
            exc.fields["url"] = problem
        raise
    problem = _check_url(values.url.strip())
    if problem:
        raise ValidationFailed({"url": problem})
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    subscribed = [ALL_EVENTS] if ALL_EVENTS in values.events else sorted(set(values.events))

    def work() -> WebhookEndpoint:
        endpoint = WebhookEndpoint(
            url=values.url.strip(), secret=secret, events=f" {' '.join(subscribed)} ",
            description=values.description, active=True, created_by=actor.id if actor else None,
        )
        session.add(endpoint)
        session.flush()
        return endpoint

    return NewEndpoint(run_in_transaction(session, work), secret)


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.execute(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).scalars())


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    return get_or_404(session, WebhookEndpoint, endpoint_id, label="Webhook endpoint")


def delete_endpoint(session: Session, endpoint_id: int) -> None:
    """The endpoint and its deliveries are gone; nothing more is sent to it."""

    def work() -> None:
        endpoint = get_or_404(session, WebhookEndpoint, endpoint_id, lock=True, label="Webhook endpoint")
        session.execute(WebhookDelivery.__table__.delete().where(WebhookDelivery.endpoint_id == endpoint.id))
        session.delete(endpoint)

    run_in_transaction(session, work)


def list_deliveries(session: Session, endpoint_id: int, *, limit: int = 50) -> list[WebhookDelivery]:
    """The endpoint's most recent deliveries, newest first (with their events)."""
    get_endpoint(session, endpoint_id)
    return list(session.execute(
        select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        .options(joinedload(WebhookDelivery.event)).order_by(WebhookDelivery.id.desc()).limit(limit)
    ).scalars())


def recent_deliveries(session: Session, endpoint_ids: list[int], *, limit: int) -> dict[int, list[WebhookDelivery]]:
    """The ``limit`` newest deliveries of each endpoint, with their events, in one query."""
    rank = func.row_number().over(partition_by=WebhookDelivery.endpoint_id, order_by=WebhookDelivery.id.desc())
    ranked = select(WebhookDelivery.id, rank.label("rank")).where(WebhookDelivery.endpoint_id.in_(endpoint_ids)).subquery()
    rows = session.execute(
        select(WebhookDelivery).join(ranked, ranked.c.id == WebhookDelivery.id).where(ranked.c.rank <= limit)
        .options(joinedload(WebhookDelivery.event)).order_by(WebhookDelivery.id.desc())
    ).scalars()
    found: dict[int, list[WebhookDelivery]] = {endpoint_id: [] for endpoint_id in endpoint_ids}
    for delivery in rows:
        found[delivery.endpoint_id].append(delivery)
    return found


def send_test(session: Session, endpoint_id: int, *, actor: User | None = None) -> WebhookDelivery:
    """A ``webhook.test`` event, delivered to this endpoint whatever it subscribes to."""

    def work() -> WebhookDelivery:
        endpoint = get_endpoint(session, endpoint_id)
        event = feed.record(
            session, feed.EVENT_WEBHOOK_TEST, actor_id=actor.id if actor else None,
            data={"endpoint_id": endpoint.id}, fan_out=False,
        )
        session.flush()
        delivery = WebhookDelivery(endpoint_id=endpoint.id, feed_event_id=event.id, status="pending", attempts=0)
        session.add(delivery)
        session.flush()
        jobs.enqueue_after_commit(session, JOB_DELIVER, delivery.id)
        return delivery

    return run_in_transaction(session, work)


# --- fan-out, in the event's transaction -------------------------------------------------------


def fan_out(session: Session, event: FeedEvent) -> None:
    """One pending delivery per active endpoint subscribed to the event's type, in one
    INSERT ... SELECT; each is handed to the worker once the transaction commits."""
    session.flush()  # the event's id
    now = utcnow()
    subscribed = or_(
        WebhookEndpoint.events.like(f"% {ALL_EVENTS} %"), WebhookEndpoint.events.like(f"% {event.type} %")
    )
    written = session.execute(
        insert(WebhookDelivery).from_select(
            ["endpoint_id", "feed_event_id", "status", "attempts", "next_attempt_at", "created_at"],
            select(
                WebhookEndpoint.id, literal(event.id), literal("pending"), literal(0),
                literal(now, WebhookDelivery.next_attempt_at.type), literal(now, WebhookDelivery.created_at.type),
            ).where(WebhookEndpoint.active.is_(True), subscribed),
        ).returning(WebhookDelivery.id)
    )
    for delivery_id in written.scalars():
        jobs.enqueue_after_commit(session, JOB_DELIVER, delivery_id)


# --- delivery (the worker) ---------------------------------------------------------------------


def payload(event: FeedEvent) -> dict[str, Any]:
    """The body a receiver gets: ``{"type", "timestamp", "data"}`` with the event's fields."""
    created = event.created_at.isoformat().replace("+00:00", "Z")
    return {
        "type": event.type,
        "timestamp": created,
        "data": {
            "id": event.id, "type": event.type, "created_at": created, "actor_id": event.actor_id,
            "contact_id": event.contact_id, "user_id": event.user_id, "data": event.payload or {},
        },
    }


def message_id(delivery_id: int) -> str:
    """``webhook-id``: the same for every attempt of one event to one endpoint."""
    return f"msg_{delivery_id}"


@dataclass(frozen=True)
class _Claimed:
    url: str
    secret: str
    body: str


def _lease_seconds() -> float:
    return max(60.0, 3 * float(current_app.config["WEBHOOK_TIMEOUT"]))


def deliver(session: Session, delivery_id: int, *, due_only: bool = True) -> leases.Attempt:
    """One attempt at one delivery: claim it, POST it (no redirects followed,
    ``WEBHOOK_TIMEOUT`` for the whole exchange: ``_Deadline``), record what happened. 2xx is
    delivered; anything else is retried."""

    def claim() -> _Claimed | None:
        if not leases.claim(session, WebhookDelivery, delivery_id, lease_seconds=_lease_seconds(), due_only=due_only):
            return None
        delivery = session.execute(
            select(WebhookDelivery).options(joinedload(WebhookDelivery.event), joinedload(WebhookDelivery.endpoint))
            .where(WebhookDelivery.id == delivery_id).execution_options(populate_existing=True)
        ).scalar_one()
        body = json.dumps(payload(delivery.event), separators=(",", ":"))
        return _Claimed(delivery.endpoint.url, delivery.endpoint.secret, body)

    claimed = run_in_transaction(session, claim)
    if claimed is None:
        return leases.Attempt(leases.SKIPPED)
    status_code, error = _post(claimed, delivery_id)
    if error is None:
        leases.finish(session, WebhookDelivery, delivery_id, status="delivered", delivered_at=utcnow(),
                      last_status_code=status_code, last_error=None)
        return leases.Attempt(leases.SENT)
    log.warning("webhook delivery %s failed: %s", delivery_id, error)
    schedule = current_app.config["WEBHOOK_RETRY_SCHEDULE"]
    return leases.record_failure(
        session, WebhookDelivery, delivery_id, error=error, schedule=schedule,
        max_attempts=len(schedule) + 1, last_status_code=status_code,
    )


@functools.lru_cache(maxsize=1)
def _client() -> httpx.Client:
    """One HTTP client per process (thread-safe, its TLS context built once): redirects are
    never followed, no proxy settings from the environment, and no connection kept for the
    next delivery, so each exchange has a socket of its own for ``_Deadline`` to end."""
    return httpx.Client(follow_redirects=False, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))


class _Deadline:
    """Ends an HTTP exchange ``seconds`` after it starts, in all. httpx's timeouts bound each
    network operation, so a receiver answering a byte at a time, each within the timeout,
    would hold a delivery for as long as it liked, beyond its lease (and another worker could
    then send it again). At the deadline the exchange's socket is shut down, which ends the
    blocked read at once; httpx reports it as a network error. Pass ``trace`` as the request's
    ``trace`` extension: it learns the socket when the connection is made (or wrapped in TLS)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def trace(self, name: str, info: dict[str, Any]) -> None:
        if name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            with self._lock:
                self._socket = info["return_value"].get_extra_info("socket")
                if self.expired:
                    self._shut_down()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut_down()

    def _shut_down(self) -> None:
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _post(claimed: _Claimed, delivery_id: int) -> tuple[int | None, str | None]:
    """(status code, error): error None means delivered."""
    problem = _check_url(claimed.url)  # DNS may have changed since registration
    if problem:
        return None, f"Not sent: {problem}"
    msg_id, now = message_id(delivery_id), utcnow()
    headers = {
        "content-type": "application/json",
        "user-agent": "Onboarding-Webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(claimed.secret).sign(msg_id, now, claimed.body),
    }
    timeout = float(current_app.config["WEBHOOK_TIMEOUT"])
    with _Deadline(timeout) as deadline:
        try:
            response = _client().post(claimed.url, content=claimed.body.encode(), headers=headers, timeout=timeout,
                                      extensions={"trace": deadline.trace})
        except httpx.HTTPError as exc:
            if deadline.expired:
                return None, f"Timed out: no complete answer within {timeout:g} s."
            return None, f"{type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}"


def deliver_due(session: Session, *, limit: int = 500) -> int:
    """Every delivery that is due and not being delivered (the worker's sweep)."""
    ids = leases.pending_ids(session, WebhookDelivery, due_only=True, limit=limit)
    return sum(deliver(session, delivery_id).outcome == leases.SENT for delivery_id in ids)
