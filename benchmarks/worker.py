"""The worker benchmark (issue 11): what one worker delivers, and what a provision request
costs while the mail server hangs.

    .venv/bin/python -m benchmarks.worker                         # SQLite
    .venv/bin/python -m benchmarks.worker --database-url postgresql+psycopg://postgres@127.0.0.1:5432/onb_bench

In one process, on a fresh migrated database, with the production Argon2 parameters:
1. ``PROVISIONS`` provision requests (POST /api/v1/crm/contacts/<id>/provision, bearer token)
   from 8 client threads while the mail server accepts connections and never answers: p50,
   p95 and the slowest request. Jobs go to a real Huey queue (a SQLite file), so no request
   waits on the mail server.
2. One worker thread empties that queue against a local
   SMTP sink (aiosmtpd): welcome emails per second, the KDF included.
3. ``WEBHOOK_EVENTS`` feed events fanned out to one endpoint on a local HTTP receiver,
   delivered by one worker thread: webhooks per second, signed.
Prints one line per figure and the process's peak RSS; ``--json PATH`` also writes them
(``benchmarks.run`` folds this benchmark into its report that way).
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask_migrate import upgrade

from onboarding_app import accounts, contacts, create_app, feed, webhooks
from onboarding_app.extensions import db, huey
from onboarding_app.models import OutboundEmail, WebhookDelivery
from onboarding_app.transactions import run_in_transaction

from . import build

PROVISIONS = 200
WEBHOOK_EVENTS = 500
CLIENTS = 8


class _Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.count += 1
        return "250 OK"


def _tarpit() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    return sock, sock.getsockname()[1]


def _receiver() -> tuple[ThreadingHTTPServer, list]:
    got: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            got.append(1)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


def _drain_with_one_worker() -> float:
    """Run the queue with one worker (one thread taking jobs one at a time, as a consumer's
    worker does) until it is empty; seconds taken."""
    started = time.perf_counter()
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    figures: dict = {"clients": CLIENTS}
    workdir = Path(tempfile.mkdtemp(prefix="onb-worker-bench-"))
    database_url = build.prepare_database(args.database_url or f"sqlite:///{workdir}/app.sqlite3", 0, workdir)
    pit, pit_port = _tarpit()
    sink = _Sink()
    free, smtp_port = _tarpit()
    free.close()
    smtp = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    app = create_app({
        "APP_ENV": "development", "SECRET_KEY": "worker-benchmark", "SQLALCHEMY_DATABASE_URI": database_url,
        "HUEY_IMMEDIATE": False, "HUEY_URL": f"sqlite:///{workdir}/huey.sqlite3",
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": pit_port, "MAIL_TIMEOUT": 2.0,
        "RATELIMIT_ENABLED": False, "WEBHOOK_ALLOW_PRIVATE_HOSTS": True,
    })
    try:
        with app.app_context():
            upgrade()
            staff = accounts.create_user(db.session, email=build.STAFF_EMAIL, role="staff",
                                         password=build.STAFF_PASSWORD, name="Bench Staff")
            _, token = accounts.create_api_token(db.session, staff.email)
            ids = []
            for i in range(PROVISIONS):
                c = contacts.create_contact(db.session, {"name": f"Worker {i}", "email": f"worker{i}@example.com"})
                contacts.change_status(db.session, c.id, "QUALIFIED")
                ids.append(c.id)
        huey.flush()

        # 1. provision requests while the mail server hangs
        client_ids = [ids[i::CLIENTS] for i in range(CLIENTS)]
        latencies: list[float] = []
        lock = threading.Lock()

        def client(my_ids: list[int]) -> None:
            http = app.test_client()
            for contact_id in my_ids:
                started = time.perf_counter()
                response = http.post(f"/api/v1/crm/contacts/{contact_id}/provision",
                                     headers={"Authorization": f"Bearer {token}"})
                took = time.perf_counter() - started
                assert response.status_code == 201, response.get_data(as_text=True)
                with lock:
                    latencies.append(took)

        threads = [threading.Thread(target=client, args=(chunk,)) for chunk in client_ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
        figures["provision_hung_mail"] = {"requests": len(latencies), "p50_ms": round(p50, 1), "p95_ms": round(p95, 1),
                                          "max_ms": round(latencies[-1] * 1000, 1)}
        print(f"provision, mail server hung, {CLIENTS} clients: p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
              f"max {latencies[-1] * 1000:.1f} ms ({len(latencies)} requests)")

        # 2. one worker delivers the welcome emails to a sink
        app.extensions["mail"].port = smtp.port
        seconds = _drain_with_one_worker()
        with app.app_context():
            sent = db.session.execute(
                sa.select(sa.func.count()).select_from(OutboundEmail).where(OutboundEmail.status == "sent")
            ).scalar_one()
        figures["emails"] = {"sent": sent, "seconds": round(seconds, 2), "per_second": round(sent / seconds, 1),
                             "sink_received": sink.count}
        print(f"one worker, local SMTP sink: {sent} welcome emails in {seconds:.2f} s = "
              f"{sent / seconds:.1f} emails/s (Argon2id t=2 m=19 MiB at delivery); sink got {sink.count}")

        # 3. one worker delivers webhooks to a local receiver
        receiver, got = _receiver()
        with app.app_context():
            webhooks.create_endpoint(
                db.session, {"url": f"http://127.0.0.1:{receiver.server_address[1]}/hook", "events": ["*"]})
            for i in range(WEBHOOK_EVENTS):
                run_in_transaction(db.session, lambda: feed.record(
                    db.session, feed.EVENT_CONTACT_UPDATED, data={"fields": ["phone"], "n": i}))
        seconds = _drain_with_one_worker()
        with app.app_context():
            delivered = db.session.execute(
                sa.select(sa.func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "delivered")
            ).scalar_one()
        figures["webhooks"] = {"delivered": delivered, "seconds": round(seconds, 2),
                               "per_second": round(delivered / seconds, 1), "received": len(got)}
        print(f"one worker, local HTTP receiver: {delivered} webhooks in {seconds:.2f} s = "
              f"{delivered / seconds:.1f} webhooks/s (signed); receiver got {len(got)}")
        receiver.shutdown()
        figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"peak RSS of this process (web app + worker): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    finally:
        smtp.stop()
        pit.close()
        with app.app_context():
            db.engine.dispose()
        if args.database_url:
            build.drop_database(database_url)


if __name__ == "__main__":
    main()
