"""The background worker (issue 11): mail and webhooks leave the request, are claimed once
whatever the number of workers, time out, back off and retry; webhooks are signed per
Standard Webhooks and refused for private addresses. Real parts: aiosmtpd, a TCP server that
accepts and never answers, a local HTTP receiver, Huey's SQLite and Redis storage."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from onboarding_app import feed, outbox, provisioning, webhooks
from onboarding_app.errors import ValidationFailed
from onboarding_app.extensions import db, huey
from onboarding_app.models import OutboundEmail, WebhookDelivery, utcnow

from .conftest import ON_POSTGRES, Factory, make_app


# --- real peers -------------------------------------------------------------------------------


class Tarpit:
    """A TCP server that accepts connections and never says a word: a hung mail server."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def tarpit():
    pit = Tarpit()
    yield pit
    pit.close()


class Receiver:
    """A local webhook receiver that verifies every request with the standardwebhooks library.
    ``plan`` says how it answers the next requests: an HTTP status, "hang" (say nothing), or
    "trickle" (a 200 whose headers come a byte every 0.2 s, each well within any read timeout)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.secret: str | None = None
        self.plan: list = []
        self.received: list[dict] = []
        self.verified: list[dict] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k: v for k, v in self.headers.items()}
                receiver.received.append({"headers": headers, "body": body})
                step = receiver.plan.pop(0) if receiver.plan else 204
                if step == "hang":
                    receiver.release.wait(10)
                    return
                if step == "trickle":
                    try:
                        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Slow: " + b"z" * 200 + b"\r\n\r\n":
                            if receiver.release.wait(0.2):
                                return
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                    except OSError:  # the sender hung up
                        pass
                    return
                if step < 300:
                    receiver.verified.append(Webhook(receiver.secret).verify(body, headers))
                self.send_response(step)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_address[1]}/hooks"
        # A short poll interval: shutdown() waits for the serving loop's next poll.
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _now_naive_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)  # Huey's clock with utc=True


def drain() -> int:
    """Run every job in the queue that is due, as a consumer does (a job with a later ``eta``
    goes to the schedule), then whatever the schedule holds that is due; returns how many ran."""
    ran = 0
    while (task := huey.dequeue()) is not None:
        if task.eta and task.eta > _now_naive_utc():
            huey.add_schedule(task)
            continue
        huey.execute(task)
        ran += 1
    for task in huey.read_schedule(_now_naive_utc()):
        huey.execute(task)
        ran += 1
    return ran


@pytest.fixture
def queued_app(app_config, tmp_path):
    """An app whose jobs go to a real queue (Redis on PostgreSQL runs, a SQLite file
    otherwise) instead of running in the request: what production does."""
    url = "redis://127.0.0.1:6379/15" if ON_POSTGRES else f"sqlite:///{tmp_path / 'huey.sqlite3'}"
    app = make_app({**app_config, "HUEY_IMMEDIATE": False, "HUEY_URL": url,
                      "MAIL_TIMEOUT": 1.0, "MAIL_RETRY_SCHEDULE": (3, 3, 3, 3, 3, 3)})
    huey.flush()
    yield app
    huey.flush()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# --- mail off the request path ----------------------------------------------------------------


def test_provisioning_answers_at_once_while_the_mail_server_hangs_and_mails_once_it_recovers(
    queued_app, tarpit, smtp_server, mailbox
):
    queued_app.extensions["mail"].port = tarpit.port
    factory = Factory(queued_app)
    contact_id = factory.contact("QUALIFIED", email="ada@example.com")
    with queued_app.app_context():
        started = time.perf_counter()
        provisioning.provision_account(db.session, contact_id)
        elapsed = time.perf_counter() - started
        assert elapsed < 0.8, f"provisioning waited {elapsed:.2f}s on the mail server"
        assert db.session.execute(select(OutboundEmail.status)).scalar_one() == "pending"

        started = time.perf_counter()
        assert drain() == 1  # the worker tries: the server hangs, MAIL_TIMEOUT ends it
        assert 0.9 < time.perf_counter() - started < 5
        db.session.expire_all()
        email = db.session.execute(select(OutboundEmail)).scalar_one()
        assert email.status == "pending" and email.attempts == 1 and "timed out" in email.last_error.lower()
        assert mailbox.messages == []

        queued_app.extensions["mail"].port = smtp_server.port  # the server is back
        time.sleep(3.1)
        assert drain() == 1  # the retry the worker scheduled
        outbox.deliver_pending(db.session, due_only=True)  # the sweep finds nothing left to send
        drain()
        db.session.expire_all()
        email = db.session.execute(select(OutboundEmail)).scalar_one()
        assert email.status == "sent" and email.attempts == 2
    assert len(mailbox.to("ada@example.com")) == 1


def test_three_workers_at_once_deliver_each_email_once(queued_app, mailbox):
    factory = Factory(queued_app)
    with queued_app.app_context():
        for n in range(6):
            provisioning.provision_account(db.session, factory.contact("QUALIFIED", email=f"w{n}@example.com"))
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def consumer() -> None:
        try:
            with queued_app.app_context():
                barrier.wait()
                drain()
                outbox.deliver_pending(db.session, due_only=True)
                db.session.remove()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=consumer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(m["To"] for m in mailbox.messages) == [f"w{n}@example.com" for n in range(6)]
    with queued_app.app_context():
        assert db.session.execute(
            select(func.count()).select_from(OutboundEmail).where(OutboundEmail.status == "sent")
        ).scalar_one() == 6


def test_one_job_delivers_the_due_emails_in_one_conversation_and_a_refused_one_fails_alone(queued_app, mailbox):
    factory = Factory(queued_app)
    with queued_app.app_context():
        for n in range(3):
            provisioning.provision_account(db.session, factory.contact("QUALIFIED", email=f"b{n}@example.com"))
    mailbox.refuse_to = {"b1@example.com"}
    assert drain() == 3  # the first job sends all three; the other two find nothing left to do
    assert mailbox.conversations == 1
    assert sorted(m["To"] for m in mailbox.messages) == ["b0@example.com", "b2@example.com"]
    with queued_app.app_context():
        emails = {e.recipient: e for e in db.session.execute(select(OutboundEmail)).scalars()}
        assert [emails[f"b{n}@example.com"].status for n in range(3)] == ["sent", "pending", "sent"]
        refused = emails["b1@example.com"]
        assert refused.attempts == 1 and "SMTPRecipientsRefused" in refused.last_error
        assert refused.body_text is not None and outbox.REDACTED in refused.body_text
    mailbox.refuse_to = set()
    time.sleep(3.1)
    assert drain() == 1  # the retry its job scheduled
    assert len(mailbox.to("b1@example.com")) == 1


def test_a_refusing_server_backs_off_on_the_schedule_then_fails_and_retry_now_sends(app, make, session, mailbox):
    mailbox.refuse = True
    app.config["MAIL_MAX_ATTEMPTS"] = 3
    provisioning.provision_account(session, make.contact("QUALIFIED", email="ada@example.com"))
    email = session.execute(select(OutboundEmail)).scalar_one()
    delay = email.next_attempt_at - utcnow()
    assert email.attempts == 1 and timedelta(seconds=50) < delay <= timedelta(seconds=60)  # 1 minute
    assert outbox.deliver(session, [email.id]) == {}  # not due yet: not attempted
    outbox.deliver_pending(session)  # an operator's "now": attempt 2, then 5 minutes
    session.expire_all()
    delay = session.get(OutboundEmail, email.id).next_attempt_at - utcnow()
    assert timedelta(minutes=4) < delay <= timedelta(minutes=5)
    outbox.deliver_pending(session)
    session.expire_all()
    assert session.get(OutboundEmail, email.id).status == "failed"
    assert mailbox.messages == []

    mailbox.refuse = False
    outbox.retry_now(session, email.contact_id, email.id)
    session.expire_all()
    assert session.get(OutboundEmail, email.id).status == "sent"
    assert len(mailbox.to("ada@example.com")) == 1


def test_a_lease_keeps_a_second_worker_away_until_it_expires(app, make, session, mailbox):
    mailbox.refuse = True
    provisioning.provision_account(session, make.contact("QUALIFIED"))
    email_id = session.execute(select(OutboundEmail.id)).scalar_one()
    from onboarding_app import leases

    assert leases.claim(session, OutboundEmail, email_id, lease_seconds=60, due_only=False)
    session.commit()
    assert not leases.claim(session, OutboundEmail, email_id, lease_seconds=60, due_only=False)
    session.rollback()
    session.get(OutboundEmail, email_id).claimed_until = utcnow() - timedelta(seconds=1)  # the worker died
    session.commit()
    mailbox.refuse = False
    assert outbox.deliver_pending(session).sent == 1


# --- webhooks -----------------------------------------------------------------------------------


@pytest.fixture
def private_ok(app):
    app.config["WEBHOOK_ALLOW_PRIVATE_HOSTS"] = True
    app.config["WEBHOOK_RETRY_SCHEDULE"] = (0, 0, 0)
    app.config["WEBHOOK_TIMEOUT"] = 1.0


def test_events_reach_a_receiver_signed_per_standard_webhooks(app, make, session, receiver, private_ok):
    new = webhooks.create_endpoint(session, {"url": receiver.url, "events": ["onboarding.account.provisioned"]})
    receiver.secret = new.secret
    assert new.secret.startswith("whsec_") and len(new.secret) > 40
    contact_id = make.contact("QUALIFIED", email="ada@example.com")
    provisioning.provision_account(session, contact_id)

    assert len(receiver.verified) == 1  # contact created / qualified are not subscribed
    body = receiver.verified[0]
    assert body["type"] == "onboarding.account.provisioned"
    assert body["data"]["contact_id"] == contact_id and body["data"]["data"]["email"] == "ada@example.com"
    headers = receiver.received[0]["headers"]
    assert headers["webhook-id"].startswith("msg_")
    delivery = session.execute(select(WebhookDelivery)).scalar_one()
    assert delivery.status == "delivered" and delivery.last_status_code == 204 and delivery.attempts == 1


def test_checklist_edits_reach_a_subscribed_receiver(app, make, session, receiver, private_ok):
    from onboarding_app import checklists

    assert {"checklist.task.added", "checklist.task.changed"} <= set(webhooks.known_event_types())
    new = webhooks.create_endpoint(session, {"url": receiver.url, "events": ["checklist.task.changed"]})
    receiver.secret = new.secret
    admin_id = make.user("admin", email="ada.admin@example.com")
    checklists.add_task(session, "client", {"slug": "audit", "title": "Pass the audit", "kind": "manual", "required": True},
                        actor_id=admin_id)  # added: not subscribed
    checklists.update_task(session, "client", "audit", {"retired": True}, actor_id=admin_id)

    [body] = receiver.verified
    assert body["type"] == "checklist.task.changed"
    assert body["data"]["actor_id"] == admin_id
    assert body["data"]["data"] == {"role": "client", "slug": "audit", "title": "Pass the audit",
                                  "fields": ["retired"], "position": 7, "required": True, "retired": True}


def test_a_failing_receiver_gets_retries_with_the_same_id_until_it_accepts(app, make, session, receiver, private_ok):
    receiver.plan = [500, 503]
    new = webhooks.create_endpoint(session, {"url": receiver.url, "events": ["*"]})
    receiver.secret = new.secret
    event_id = feed.record(session, feed.EVENT_CONTACT_CREATED, data={"name": "X"}).id
    session.commit()  # outside a use case: deliver by hand below
    delivery_id = session.execute(select(WebhookDelivery.id)).scalar_one()
    for _ in range(3):
        webhooks.deliver(session, delivery_id)
    session.expire_all()
    delivery = session.get(WebhookDelivery, delivery_id)
    assert delivery.status == "delivered" and delivery.attempts == 3 and delivery.feed_event_id == event_id
    ids = {r["headers"]["webhook-id"] for r in receiver.received}
    assert len(receiver.received) == 3 and ids == {webhooks.message_id(delivery_id)}
    assert len(receiver.verified) == 1


def test_a_hanging_receiver_costs_the_timeout_and_is_retried_then_failed(app, make, session, receiver, private_ok):
    receiver.plan = ["hang", "hang", 500, 500]
    new = webhooks.create_endpoint(session, {"url": receiver.url, "events": ["*"]})
    receiver.secret = new.secret
    webhooks.send_test(session, new.endpoint.id)  # attempt 1 hangs: about WEBHOOK_TIMEOUT
    delivery_id = session.execute(select(WebhookDelivery.id)).scalar_one()
    started = time.perf_counter()
    webhooks.deliver(session, delivery_id)  # attempt 2 hangs
    assert time.perf_counter() - started < 3
    webhooks.deliver(session, delivery_id)
    webhooks.deliver(session, delivery_id)  # 4 attempts = schedule of 3 + 1: failed
    session.expire_all()
    delivery = session.get(WebhookDelivery, delivery_id)
    assert delivery.status == "failed" and delivery.attempts == 4 and delivery.last_status_code == 500
    assert webhooks.deliver(session, delivery_id).outcome == "skipped"


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_timeout_in_all(app, make, session, receiver, private_ok):
    # Each byte comes well within the timeout, so only a limit on the whole exchange ends it:
    # otherwise the attempt would last 45 s, beyond its lease, and another worker could send
    # the same delivery again meanwhile.
    app.config["WEBHOOK_RETRY_SCHEDULE"] = (3600, 3600, 3600)  # the retry waits: see the first attempt
    receiver.plan = ["trickle"]
    new = webhooks.create_endpoint(session, {"url": receiver.url, "events": ["*"]})
    receiver.secret = new.secret
    started = time.perf_counter()
    webhooks.send_test(session, new.endpoint.id)  # WEBHOOK_TIMEOUT is 1 s here
    assert time.perf_counter() - started < 5  # not the 45 s the answer would take
    delivery = session.execute(select(WebhookDelivery)).scalar_one()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_error == "Timed out: no complete answer within 1 s."
    assert len(receiver.received) == 1


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch):
    """A receiver on https:// with a self-signed certificate, and the webhook client trusting
    it (the same settings as ``webhooks._client`` otherwise)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl (the command) is needed to make the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client = httpx.Client(follow_redirects=False, trust_env=False, verify=ssl.create_default_context(cafile=str(cert)),
                          limits=httpx.Limits(max_keepalive_connections=0))
    monkeypatch.setattr(webhooks, "_client", lambda: client)
    r = Receiver(tls=server_context)
    yield r
    r.close()
    client.close()


def test_the_whole_exchange_limit_holds_over_tls_too(app, make, session, tls_receiver, private_ok):
    app.config["WEBHOOK_RETRY_SCHEDULE"] = (3600, 3600, 3600)
    tls_receiver.plan = ["trickle", 204]
    new = webhooks.create_endpoint(session, {"url": tls_receiver.url, "events": ["*"]})
    tls_receiver.secret = new.secret
    started = time.perf_counter()
    webhooks.send_test(session, new.endpoint.id)
    assert time.perf_counter() - started < 5  # not the 45 s the answer would take
    delivery = session.execute(select(WebhookDelivery)).scalar_one()
    assert delivery.last_error == "Timed out: no complete answer within 1 s."
    # The next attempt, on a connection of its own, is delivered.
    assert webhooks.deliver(session, delivery.id, due_only=False).outcome == "sent"
    assert len(tls_receiver.verified) == 1


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/x", "http://127.1/x", "http://0x7f000001/x", "http://[::ffff:127.0.0.1]/x",
    "http://localhost/x", "http://10.1.2.3/x", "http://192.168.0.1/x", "http://169.254.169.254/latest",
    "http://224.0.0.1/x", "http://0.0.0.0/x", "http://[::1]/x", "http://no-such-host.invalid/x",
    "ftp://example.com/x", "javascript:alert(1)", "", "not a url", "http://user:pw@127.0.0.1/x",
])
def test_webhook_urls_that_point_inside_are_refused_and_nothing_is_stored(app, session, url):
    with pytest.raises(ValidationFailed) as refused:
        webhooks.create_endpoint(session, {"url": url, "events": ["*"]})
    assert "url" in refused.value.fields
    assert webhooks.list_endpoints(session) == []


@pytest.mark.parametrize("events", [None, "onboarding.completed", [], [1], ["no.such.event"]])
def test_webhook_events_must_be_a_list_of_known_types(app, session, events):
    with pytest.raises(ValidationFailed) as refused:
        webhooks.create_endpoint(session, {"url": "https://93.184.215.14/hooks", "events": events})
    assert {name.split(".")[0] for name in refused.value.fields} == {"events"}


def test_private_hosts_are_allowed_when_configured_and_redirects_are_not_followed(app, session, receiver, private_ok):
    receiver.plan = [302] * 4
    new = webhooks.create_endpoint(session, {"url": receiver.url, "events": ["*"]})
    receiver.secret = new.secret
    webhooks.send_test(session, new.endpoint.id)
    delivery_id = session.execute(select(WebhookDelivery.id)).scalar_one()
    while webhooks.deliver(session, delivery_id).outcome != "skipped":
        pass
    delivery = session.get(WebhookDelivery, delivery_id)
    assert delivery.status == "failed" and delivery.last_status_code == 302
    assert len(receiver.received) == 4 and receiver.verified == []  # never followed to a Location


def test_deleting_an_endpoint_removes_it_and_its_deliveries(app, session, receiver, private_ok):
    new = webhooks.create_endpoint(session, {"url": receiver.url, "events": ["*"]})
    receiver.secret = new.secret
    webhooks.send_test(session, new.endpoint.id)
    webhooks.delete_endpoint(session, new.endpoint.id)
    assert webhooks.list_endpoints(session) == []
    assert session.execute(select(func.count()).select_from(WebhookDelivery)).scalar_one() == 0
    payload = json.loads(receiver.received[0]["body"])
    assert payload["type"] == "webhook.test"


def test_staff_see_a_failed_email_and_retry_it_from_the_contact_page(app, make, client, staff, mailbox):
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    app.config["MAIL_MAX_ATTEMPTS"] = 1
    mailbox.refuse = True
    contact_id = make.contact("QUALIFIED", email="ada@example.com")
    with app.app_context():
        provisioning.provision_account(db.session, contact_id)
    page = HTMLParser(client.get(f"/crm/contacts/{contact_id}").get_data(as_text=True))
    assert page.css_first(".welcome-email .badge").text(strip=True) == "failed"
    retry = page.css_first(".welcome-email form")
    assert retry.css_first("button").text(strip=True) == "Retry now"
    mailbox.refuse = False
    token = retry.css_first("input[name=csrf_token]").attributes["value"]
    response = client.post(retry.attributes["action"], data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    fragment = HTMLParser(response.get_data(as_text=True))
    assert fragment.css_first(".welcome-email .badge").text(strip=True) == "sent"
    assert len(mailbox.to("ada@example.com")) == 1
    other = make.contact("QUALIFIED")
    assert client.post(f"/crm/contacts/{other}/emails/1/retry", data={"csrf_token": token}).status_code == 404


# --- the admin page ------------------------------------------------------------------------------


def _page(client, path="/crm/webhooks"):
    from selectolax.lexbor import LexborHTMLParser

    response = client.get(path)
    return response, LexborHTMLParser(response.get_data(as_text=True))


def test_webhooks_page_is_for_admins_only(app, make, client, auth):
    make.user("staff", email="sam@example.com")
    auth.login("sam@example.com")
    assert client.get("/crm/webhooks").status_code == 403
    _, dashboard = _page(client, "/dashboard")
    assert not dashboard.css('nav a[href="/crm/webhooks"]')  # not offered where it would be refused
    token = auth.csrf("/dashboard")
    assert client.post("/crm/webhooks", data={"csrf_token": token, "url": "http://127.0.0.1/x",
                                              "events": "*"}).status_code == 403


def test_admin_adds_an_endpoint_sees_the_secret_once_and_its_deliveries(app, make, client, auth, receiver, private_ok):
    make.user("admin", email="root@example.com")
    auth.login("root@example.com")
    response, page = _page(client)
    assert response.status_code == 200
    [link] = page.css('nav a[href="/crm/webhooks"]')  # in the main navigation, marked as here
    assert link.attributes.get("aria-current") == "page"
    token = page.css_first("input[name=csrf_token]").attributes["value"]

    refused = client.post("/crm/webhooks", data={"csrf_token": token, "url": "ftp://x", "events": "nope"})
    assert refused.status_code == 422
    from selectolax.lexbor import LexborHTMLParser

    form = LexborHTMLParser(refused.get_data(as_text=True))
    assert form.css_first("#webhook-url-error") is not None and form.css_first("#webhook-events-error") is not None
    with app.app_context():
        assert webhooks.list_endpoints(db.session) == []

    added = client.post("/crm/webhooks", data={"csrf_token": token, "url": receiver.url,
                                              "events": ["onboarding.completed", "webhook.test"]})
    assert added.status_code == 201
    shown = LexborHTMLParser(added.get_data(as_text=True)).css_first("#new-secret code").text(strip=True)
    assert shown.startswith("whsec_")
    receiver.secret = shown
    _, page = _page(client)
    assert page.css_first("#new-secret") is None  # never shown again
    assert shown not in page.html

    endpoint = page.css_first("article.endpoint")
    test_action = endpoint.css_first("form").attributes["action"]
    assert client.post(test_action, data={"csrf_token": token}).status_code == 302
    assert len(receiver.verified) == 1
    _, page = _page(client)
    row = page.css_first("table.deliveries tbody tr")
    assert [c.text(strip=True) for c in row.css("td")][:3] == ["webhook.test", "delivered", "1"]

    delete_action = page.css("article.endpoint form")[1].attributes["action"]
    assert client.post(delete_action, data={"csrf_token": token}).status_code == 302
    _, page = _page(client)
    assert page.css_first("article.endpoint") is None
    assert client.post(delete_action, data={"csrf_token": token}).status_code == 404
