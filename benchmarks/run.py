"""The benchmark: the app under gunicorn against a bare Flask app, at N=1,000 and N=100,000,
on SQLite and PostgreSQL, with the worker, in one command.

    .venv/bin/python -m benchmarks.run                          # both databases
    .venv/bin/python -m benchmarks.run --databases sqlite       # one of them
    .venv/bin/python -m benchmarks.run --postgresql-url postgresql+psycopg://postgres@127.0.0.1:5432/onb_bench

Builds the data for each size (benchmarks.build), serves each database with gunicorn exactly
as the README's production section says (``gunicorn --workers 2 wsgi:app`` with
APP_ENV=production, SECRET_KEY, DATABASE_URL, MAIL_SERVER and APP_BASE_URL set) and, next to them, the bare Flask app (benchmarks.bare) with
the same settings; drives each route with wrk on loopback (8 clients, each request on a new
connection as a proxy would send it, bounded in time),
the sizes taking turns route by route so that other load on the machine hits both alike;
prints the table with every figure also as a ratio to the bare endpoint. Next to that, per
size: the API hot path in process against a bare view (benchmarks.inprocess, the issue's
throughput ratios), a real worker process (``flask --app wsgi worker --workers 1``) emptying
the queue the provisioning left (welcome emails to a local SMTP sink, the KDF included), the
RSS of each gunicorn worker and of the Huey worker; per database, the worker benchmark
(benchmarks.worker: webhooks/s, provisioning with a hung mail server). Ends with the table of
measured against target for both databases, and writes benchmarks/results/<database>.json,
<database>.md and summary.md. Databases it made are dropped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa

from . import build

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
# The production settings the README documents: 2 sync workers, one per core, one request at a
# time each. (2 workers with 4 threads each measured worse for every route tried: 8 clients at
# 100,000 contacts, tracker API p90 30 ms against 13 ms on SQLite, 52 against 28 on PostgreSQL:
# a request of a few ms of CPU waits for the GIL behind the other threads' requests.)
GUNICORN_SETTINGS = ["--workers", "2"]
CONNECTIONS = 8
BARE = "bare"
ROUTES = {
    "bare": "GET / (bare Flask, constant JSON)",
    "api_onboarding": "GET /api/v1/onboarding",
    "api_complete": "POST /api/v1/onboarding/complete/<slug>",
    "api_contacts_list": "GET /api/v1/crm/contacts?per_page=20",
    "api_contacts_search": f"GET /api/v1/crm/contacts?status=QUALIFIED&q={build.SEARCH_TERM}",
    "api_contacts_search_one": "GET /api/v1/crm/contacts?status=QUALIFIED&q=<one person's email>",
    "crm_contacts": "GET /crm/contacts (staff page)",
    "dashboard": "GET /dashboard (staff page)",
    "tracker": "GET /crm/onboarding (staff tracker page)",
    "api_tracker": "GET /api/v1/onboarding/accounts",
    "api_provision": "POST /api/v1/crm/contacts/<id>/provision",
}
EXPECTED_STATUS = {"api_complete": 200, "api_provision": 201}
# Routes whose cost must not follow the data (the issue's "search, list, staff dashboard,
# tracker"), for the growth and p95 targets. Routes missing from a run (the tracker before
# its branch lands) are left out.
FLAT_ROUTES = ("api_contacts_search", "api_contacts_search_one", "api_contacts_list", "crm_contacts", "dashboard",
               "tracker", "api_tracker")
P95_LIMIT_MS = {"sqlite": 50, "postgresql": 60}
DEFAULT_POSTGRESQL = "postgresql+psycopg://postgres@127.0.0.1:5432/onb_bench"


# --- servers -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Production mode, as the README's production section runs it: every setting production
# requires (gunicorn.conf.py checks them before any worker boots). Emails go to the local SMTP
# sink this benchmark runs (MAIL_PORT, set per run), jobs to a queue file per size (HUEY_URL).
PRODUCTION_ENV = {"APP_ENV": "production", "SECRET_KEY": secrets.token_hex(32), "MAIL_SERVER": "127.0.0.1",
                  "APP_BASE_URL": "http://127.0.0.1"}


class Server:
    """A gunicorn process serving ``app`` on a loopback port."""

    def __init__(self, app: str, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.log = log
        command = [str(Path(sys.executable).with_name("gunicorn")), *GUNICORN_SETTINGS,
                   "--bind", f"127.0.0.1:{self.port}", app]
        self.command = command
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, path: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log}")
            try:
                if request(self.port, "GET", path)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer {path} in {timeout} s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def request(port: int, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    """One HTTP request on loopback: (status, headers, body). No User-Agent, like wrk."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def staff_cookie(port: int, email: str, password: str) -> str:
    """Sign in once (outside the measured loops) and return the Cookie header value. The
    session cookie is Secure outside development, so a client on plain-HTTP loopback has to
    carry it by hand."""

    def session_from(headers) -> str:
        for header in headers.get_all("Set-Cookie") or []:
            if header.startswith("session="):
                return header.split(";", 1)[0]
        raise RuntimeError("no session cookie was set")

    status, headers, body = request(port, "GET", "/login")
    cookie = session_from(headers)
    form = urlencode({"email": email, "password": password, "csrf_token": build.csrf_token(body)}).encode()
    status, headers, _ = request(port, "POST", "/login", {
        "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}, form)
    if status != 302:
        raise RuntimeError(f"staff sign-in answered {status}")
    return session_from(headers)


# --- wrk -------------------------------------------------------------------------------------------

LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end

function init(args)
  statuses = {}
  answered = 0
  idx = 0
  reqs = {}
%(init)s
end

function request()
%(request)s
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  answered = answered + 1
%(response)s
end

function done(summary, latency, requests)
  local codes = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do codes[#codes + 1] = string.format('"%%d": %%d', k, v) end
  end
  local f = io.open(%(out)s, "w")
  f:write(string.format(
    '{"duration_us": %%d, "requests": %%d, "bytes": %%d, "p50_us": %%d, "p95_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d, "errors": {"connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}, "statuses": {%%s}}',
    summary.duration, summary.requests, summary.bytes, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, table.concat(codes, ", ")))
  f:close()
end
"""


def _lua_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid Lua string literal for this ASCII content


# Every request on a new connection, as a proxy in front of gunicorn sends them (nginx speaks
# HTTP/1.0 to its upstream unless told otherwise). With keep-alive, wrk's 8 connections stay
# with whichever gunicorn worker accepted them for the whole round, and a round where one
# worker got 6 of them and the other 2 measured one busy core: p50 twice as high as a round
# where they split evenly (17 ms and 39 ms in two rounds of the same route, same data).
CLOSE = {"Connection": "close"}


def rotating_script(requests: list[tuple[str, str, dict[str, str], str | None]]) -> str:
    """Cycle through pre-formatted requests (method, path, headers, body)."""
    lines = []
    for method, path, headers, body in requests:
        pairs = {**headers, **CLOSE}.items()
        header_table = "{" + ", ".join(f"[{_lua_str(k)}] = {_lua_str(v)}" for k, v in pairs) + "}"
        lines.append(f"  reqs[#reqs + 1] = wrk.format({_lua_str(method)}, {_lua_str(path)}, {header_table}, "
                     f"{_lua_str(body) if body is not None else 'nil'})")
    return LUA % {
        "init": "\n".join(lines),
        "request": "  idx = idx % #reqs + 1\n  return reqs[idx]",
        "response": "",
        "out": "OUT_PATH",
    }


def provision_script(ids: list[int], tokens: list[str]) -> str:
    """Each QUALIFIED contact once; the thread stops before the list runs out."""
    init = (
        "  ids = {" + ", ".join(map(str, ids)) + "}\n"
        "  tokens = {" + ", ".join(map(_lua_str, tokens)) + "}\n"
    )
    req = (
        "  idx = idx + 1\n"
        "  local id = ids[(idx - 1) % #ids + 1]\n"
        "  local token = tokens[(idx - 1) % #tokens + 1]\n"
        '  return wrk.format("POST", "/api/v1/crm/contacts/" .. id .. "/provision", '
        '{["Authorization"] = "Bearer " .. token, ["Connection"] = "close"}, nil)'
    )
    resp = f"  if answered >= #ids - {CONNECTIONS * 2} then wrk.thread:stop() end"
    return LUA % {"init": init, "request": req, "response": resp, "out": "OUT_PATH"}


def wrk(port: int, script: str, seconds: float, workdir: Path, name: str) -> dict:
    lua = workdir / f"{name}.lua"
    out = workdir / f"{name}.json"
    lua.write_text(script.replace("OUT_PATH", _lua_str(str(out))))
    out.unlink(missing_ok=True)
    command = ["wrk", "-t", "1", "-c", str(CONNECTIONS), "-d", f"{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", str(lua), f"http://127.0.0.1:{port}"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=workdir)
    raw = json.loads(out.read_text())
    seconds_run = raw["duration_us"] / 1e6
    ok = sum(n for code, n in raw["statuses"].items() if 200 <= int(code) < 300)
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds_run, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p95_ms": round(raw["p95_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "statuses": raw["statuses"],
        "non_2xx": raw["requests"] - ok if raw["statuses"] else raw["requests"],
        "socket_errors": raw["errors"],
        "seconds": round(seconds_run, 2),
    }


# --- one size ----------------------------------------------------------------------------------


class Size:
    """One data size: its database, its app server, and what the load generator sends it."""

    def __init__(self, base_url: str, n: int, workdir: Path, mail_port: int) -> None:
        backend = sa.make_url(base_url).get_backend_name()
        print(f"\n== N={n:,} on {backend}", flush=True)
        self.n = n
        self.url = build.prepare_database(base_url, n, workdir)
        self.data = build.build(self.url, n, quiet=True)
        print(f"  data built in {self.data.seconds} s: {self.data.counts}", flush=True)
        # Production mode, as the README's production section runs it: every setting production
        # requires is given; emails go to the benchmark's SMTP sink, jobs to this size's queue.
        self.env = {**PRODUCTION_ENV, "DATABASE_URL": self.url, "MAIL_PORT": str(mail_port),
                    "HUEY_URL": f"sqlite:///{workdir}/huey_{backend}_{n}.sqlite3"}
        self.server = Server("wsgi:app", self.env, workdir / f"gunicorn_{n}.log")
        self.results: dict[str, dict] = {}
        self.samples: dict[str, list[dict]] = {}
        self.load = {"before": _loadavg()}

    def start(self) -> None:
        self.server.wait_ready("/healthz")
        data = self.data
        user_token, _ = data.user_tokens[0]
        status, _, body = request(self.server.port, "GET", "/api/v1/onboarding",
                                  {"Authorization": f"Bearer {user_token}"})
        assert status == 200, (status, body[:300])
        self.onboarding_bytes = len(body)
        cookie = staff_cookie(self.server.port, data.staff_email, data.staff_password)
        staff = [{"Authorization": f"Bearer {t}"} for t in data.staff_tokens]
        users = [({"Authorization": f"Bearer {t}"}, slug) for t, slug in data.user_tokens]
        self.plans = {
            "api_onboarding": [("GET", "/api/v1/onboarding", h, None) for h, _ in users],
            **{name: [("GET", path, {"Cookie": cookie}, None)] if page else [("GET", path, h, None) for h in staff]
               for name, (path, page) in build.staff_gets(data).items()},
            "api_complete": [("POST", f"/api/v1/onboarding/complete/{slug}", h, None) for h, slug in users],
        }

    def stop(self) -> None:
        self.memory = {"gunicorn_workers_rss_mib": [rss_mib(pid) for pid in children(self.server.process.pid)]}
        self.server.stop()
        self.load["after"] = _loadavg()


# --- memory, the worker ----------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (gunicorn's workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process now (VmRSS), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class SmtpSink:
    """A local SMTP server that accepts every message (aiosmtpd), counting them."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.count = 0
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                sink.count += 1
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=_free_port())
        self.controller.start()
        self.port = self.controller.port

    def stop(self) -> None:
        self.controller.stop()


def _email_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        counts = dict(conn.exec_driver_sql("SELECT status, count(*) FROM outbound_emails GROUP BY status").all())
    engine.dispose()
    return counts


def drain_with_worker(size: Size, workdir: Path, timeout: float = 180) -> dict:
    """Start one real worker process (``flask --app wsgi worker --workers 1``, the README's
    command) on the queue the provisioning filled, wait until no email is pending, and report
    emails per second (from its first delivery to its last, so start-up is not counted) and
    the worker's RSS once the queue is empty."""
    pending = _email_counts(size.url).get("pending", 0)
    log = workdir / f"worker_{size.n}.log"
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("flask")), "--app", "wsgi", "worker", "--workers", "1"],
        cwd=ROOT, env={**os.environ, **size.env}, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    first = last = None
    sent_first = sent = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            counts = _email_counts(size.url)
            now = time.perf_counter()
            if counts.get("sent", 0) != sent:
                sent = counts.get("sent", 0)
                if first is None:
                    first, sent_first = now, sent
                last = now
            if not counts.get("pending"):
                break
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited; see {log}")
            time.sleep(0.1)
        rss = rss_mib(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    counts = _email_counts(size.url)
    rate = (sent - sent_first) / (last - first) if first is not None and last > first else None
    return {"pending_at_start": pending, "emails": counts, "per_second": round(rate, 1) if rate else None,
            "worker_rss_mib": rss}


def worker_benchmark(base_url: str, workdir: Path) -> dict:
    """benchmarks.worker in its own process: webhooks/s of one worker, provisioning while the
    mail server hangs, emails/s in process."""
    out = workdir / "worker_benchmark.json"
    command = [sys.executable, "-m", "benchmarks.worker", "--json", str(out)]
    if base_url.startswith("postgresql"):
        command += ["--database-url", base_url]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def check(port: int, name: str, requests: list) -> bytes:
    method, path, headers, body = requests[0]
    status, _, answer = request(port, method, path, headers, body)
    if status != EXPECTED_STATUS.get(name, 200):
        raise RuntimeError(f"{name}: {method} {path} answered {status}: {answer[:300]!r}")
    return answer


def best_round(samples: list[dict]) -> dict:
    """The round with the lowest p50 (its req/s and tails go with it), plus every round: other
    work on a shared machine only ever makes a round slower."""
    chosen = dict(min(samples, key=lambda r: r["p50_ms"]))
    chosen["rounds"] = [{k: r[k] for k in ("rps", "p50_ms", "p95_ms", "p99_ms", "non_2xx")} for r in samples]
    chosen["non_2xx"] = sum(r["non_2xx"] for r in samples)
    return chosen


def measure(base_url: str, args, workdir: Path, sink: SmtpSink) -> list[dict]:
    """Every route at every size, the sizes taking turns route by route and round by round,
    so a change in the machine's other load hits both sizes alike."""
    from . import inprocess

    sizes = [Size(base_url, n, workdir, sink.port) for n in (int(x) for x in args.sizes.split(","))]
    bare = None
    try:
        for size in sizes:
            size.start()
        bare = Server("benchmarks.bare:app", {**PRODUCTION_ENV, "BENCH_BODY_BYTES": str(sizes[0].onboarding_bytes)},
                      workdir / "gunicorn_bare.log")
        bare.wait_ready("/")
        targets_ = [(BARE, size, bare.port, [("GET", "/", {}, None)]) for size in sizes]
        for name in sizes[0].plans:
            targets_ += [(name, size, size.server.port, size.plans[name]) for size in sizes]
        order = [BARE, *sizes[0].plans]
        for name in order:
            for round_ in range(args.rounds):
                for route, size, port, requests in targets_:
                    if route != name:
                        continue
                    answer = check(port, name, requests)
                    script = rotating_script(requests)
                    if round_ == 0:
                        wrk(port, script, args.warmup, workdir, f"{name}_{size.n}_warmup")
                    sample = wrk(port, script, args.duration, workdir, f"{name}_{size.n}_{round_}")
                    sample["body_bytes"] = len(answer)
                    if name.startswith("api_contacts_search"):
                        sample["matches"] = json.loads(answer)["total"]
                    size.samples.setdefault(name, []).append(sample)
            for size in sizes:
                r = size.results[name] = best_round(size.samples[name])
                print(f"  N={size.n:<7,} {name:24s} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                      f"p95 {r['p95_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  non-2xx {r['non_2xx']}", flush=True)
        # Provisioning: fresh QUALIFIED contacts, each once; no warm-up (it would use them up).
        for size in sizes:
            script = provision_script(size.data.qualified_ids[: args.provision_contacts], size.data.staff_tokens)
            r = wrk(size.server.port, script, args.provision_duration, workdir, f"api_provision_{size.n}")
            r["body_bytes"] = None
            size.results["api_provision"] = r
            print(f"  N={size.n:<7,} {'api_provision':24s} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                  f"p95 {r['p95_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  non-2xx {r['non_2xx']}", flush=True)
        # The API hot path in process (limiter on), against a bare view with the same body.
        for size in sizes:
            size.inprocess = inprocess.measure(size.url, requests=args.inprocess_requests, rounds=args.rounds + 1,
                                               data=size.data)
            print(f"  N={size.n:<7,} in process: " + ", ".join(
                f"{name} {r['rps']:.0f} req/s = {r['ratio']:.2f}× bare" for name, r in size.inprocess.items()),
                flush=True)
        # One real worker process empties the queue the provisioning left.
        for size in sizes:
            size.worker = drain_with_worker(size, workdir)
            print(f"  N={size.n:<7,} worker: {size.worker['emails']} at {size.worker['per_second']} emails/s, "
                  f"RSS {size.worker['worker_rss_mib']} MiB", flush=True)
    finally:
        for size in sizes:
            size.stop()
        if bare is not None:
            bare.stop()
    runs = []
    for size in sizes:
        base = size.results[BARE]
        for r in size.results.values():
            r["ratio"] = {
                "rps": round(r["rps"] / base["rps"], 3),
                "p50": round(r["p50_ms"] / base["p50_ms"], 2),
                "p95": round(r["p95_ms"] / base["p95_ms"], 2),
                "p99": round(r["p99_ms"] / base["p99_ms"], 2),
            }
        runs.append({"n": size.n, "data": size.data.to_json(), "token_writes": token_touches(size.url, size.data),
                     "load_average": size.load, "routes": size.results, "inprocess": size.inprocess,
                     "worker": size.worker, "memory": {**size.memory, "huey_worker_rss_mib": size.worker["worker_rss_mib"]}})
        if not args.keep:
            build.drop_database(size.url)
    return runs


def _loadavg() -> list[float]:
    """The machine's 1/5/15-minute load: other work on the box shows up in the figures."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]] if Path("/proc/loadavg").exists() else []


def token_touches(url: str, data: build.BenchData) -> dict:
    """Evidence that bearer auth does not write per request: how many tokens carry a
    last_used_at, and (PostgreSQL) how many UPDATEs api_tokens received in the whole run."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        touched = conn.exec_driver_sql("SELECT count(*) FROM api_tokens WHERE last_used_at IS NOT NULL").scalar_one()
        result = {"tokens": len(data.staff_tokens) + len(data.user_tokens), "tokens_touched": touched}
        if conn.dialect.name == "postgresql":
            time.sleep(1)  # let the server flush its statistics
            result["api_tokens_updates"] = conn.exec_driver_sql(
                "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'api_tokens'").scalar_one()
    engine.dispose()
    return result


# --- report --------------------------------------------------------------------------------------


def growth(runs: list[dict]) -> dict[str, float]:
    """p50 at the largest N over p50 at the smallest."""
    small, large = runs[0]["routes"], runs[-1]["routes"]
    return {name: round(large[name]["p50_ms"] / small[name]["p50_ms"], 2) for name in small if name in large}


def growth_vs_bare(runs: list[dict]) -> dict[str, float]:
    """The same, with each p50 first divided by the bare app's p50 measured next to it: on a
    machine shared with other work the bare app's own p50 drifts between the two sizes, and
    this takes that drift out."""
    small, large = runs[0]["routes"], runs[-1]["routes"]
    return {name: round(large[name]["ratio"]["p50"] / small[name]["ratio"]["p50"], 2)
            for name in small if name in large and name != BARE}


def table(result: dict) -> str:
    lines = [
        f"{result['database']} · gunicorn {' '.join(GUNICORN_SETTINGS)} · wrk -t1 -c{CONNECTIONS} (Connection: close) "
        f"-d{result['settings']['duration_s']}s × {result['settings'].get('rounds', 1)} rounds, sizes taking turns "
        f"(best round shown) · {result['machine']['cpus']} CPUs",
        "",
        "| route | N | req/s | ×bare | p50 ms | ×bare | p95 ms | ×bare | p99 ms | ×bare | non-2xx |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in ROUTES:
        for run in result["runs"]:
            r = run["routes"].get(name)
            if r is None:
                continue
            q = r["ratio"]
            lines.append(
                f"| {ROUTES[name]} | {run['n']:,} | {r['rps']:,.0f} | {q['rps']:.2f} | {r['p50_ms']:.2f} | "
                f"{q['p50']:.1f} | {r['p95_ms']:.2f} | {q['p95']:.1f} | {r['p99_ms']:.2f} | {q['p99']:.1f} | "
                f"{r['non_2xx']} |"
            )
    if len(result["runs"]) > 1:
        first, last = result["runs"][0], result["runs"][-1]
        lines += [
            "",
            "p50 growth from N={:,} to N={:,}: ".format(first["n"], last["n"])
            + ", ".join(f"{name} {g:.2f}×" for name, g in result["growth"].items() if name != BARE),
            "",
            "load average (1 min) before/after each size: " + "; ".join(
                f"N={run['n']:,}: {run['load_average']['before'][0]:.1f}/{run['load_average']['after'][0]:.1f}"
                for run in result["runs"] if run.get("load_average", {}).get("before")),
        ]
    return "\n".join(lines)


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        value = f"{value:,.2f}" if value < 10 else f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return f"{value}{unit}"


def targets(result: dict) -> dict[str, dict]:
    """The issue's targets, checked against this run: for each, the measured value (the
    worst over the sizes where the target applies to every size), the limit, and whether it
    is met. Ratios to the bare app come from this same run."""
    runs = result["runs"]
    database = "postgresql" if result["database"] == "PostgreSQL" else "sqlite"
    largest = runs[-1]["routes"]
    out: dict[str, dict] = {}

    def add(name: str, label: str, measured, limit, met: bool | None, detail: str = "") -> None:
        out[name] = {"label": label, "values": measured, "limit": limit, "met": met, "detail": detail}

    for route, floor, label in (("api_onboarding", 0.5, "`GET /api/v1/onboarding` in process, × bare throughput"),
                                ("api_contacts", 0.3, "`GET /api/v1/crm/contacts?per_page=20` in process, × bare")):
        ratios = [run["inprocess"][route]["ratio"] for run in runs if run.get("inprocess")]
        if ratios:
            detail = "; ".join(f"N={run['n']:,}: {run['inprocess'][route]['ms']:.2f} ms vs bare "
                               f"{run['inprocess'][route]['bare_ms']:.3f} ms" for run in runs)
            add(f"{route}_inprocess_vs_bare", label, min(ratios), f"≥ {floor}×", min(ratios) >= floor, detail)
    flat = [name for name in FLAT_ROUTES if name in largest]
    if len(runs) > 1:
        worst = max(flat, key=lambda name: result["growth"][name])
        add("p50_growth", f"p50 growth N={runs[0]['n']:,} → {runs[-1]['n']:,} (search, list, dashboard, tracker)",
            result["growth"][worst], "≤ 1.5×", result["growth"][worst] <= 1.5,
            ", ".join(f"{name} {result['growth'][name]:.2f}×" for name in flat))
    worst = max(flat, key=lambda name: largest[name]["p95_ms"])
    limit = P95_LIMIT_MS[database]
    add("p95_at_largest_n", f"p95 at N={runs[-1]['n']:,} (the same routes), ms", largest[worst]["p95_ms"],
        f"≤ {limit} ms", largest[worst]["p95_ms"] <= limit,
        ", ".join(f"{name} {largest[name]['p95_ms']:.1f}" for name in flat))
    p95s = [run["routes"]["api_provision"]["p95_ms"] for run in runs if "api_provision" in run["routes"]]
    if p95s:
        add("provision_p95", f"provision request p95, {CONNECTIONS} clients, ms", max(p95s), "≤ 150 ms",
            max(p95s) <= 150, ", ".join(f"N={run['n']:,}: {run['routes']['api_provision']['p95_ms']:.1f}"
                                        for run in runs if "api_provision" in run["routes"]))
    rates = [run["worker"]["per_second"] for run in runs if run.get("worker", {}).get("per_second")]
    if rates:
        add("worker_emails", "one worker process, local SMTP sink: welcome emails/s (KDF included, one thread = "
            "one core)", min(rates), "≥ 25 /s", min(rates) >= 25,
            ", ".join(f"N={run['n']:,}: {run['worker']['per_second']}" for run in runs if run.get("worker")))
    bench = result.get("worker_benchmark")
    if bench:
        add("webhooks", "one worker, local receiver: webhooks/s (signed)", bench["webhooks"]["per_second"],
            "report", None, f"emails/s in process {bench['emails']['per_second']}; provision with the mail server "
                            f"hung: p95 {bench['provision_hung_mail']['p95_ms']} ms")
    gunicorn = [rss for run in runs for rss in run.get("memory", {}).get("gunicorn_workers_rss_mib", []) if rss]
    huey = [run["memory"]["huey_worker_rss_mib"] for run in runs if run.get("memory", {}).get("huey_worker_rss_mib")]
    if gunicorn or huey:
        add("memory", "RSS after the run, MiB: per gunicorn worker / per Huey worker",
            f"{max(gunicorn or [0]):.0f} / {max(huey or [0]):.0f}", "report", None,
            "gunicorn workers " + ", ".join(f"{x:.0f}" for x in gunicorn) + "; Huey workers "
            + ", ".join(f"{x:.0f}" for x in huey))
    out["gunicorn_api_onboarding_vs_bare"] = {
        "label": "(for reference) `GET /api/v1/onboarding` under gunicorn, × bare req/s",
        "values": min(run["routes"]["api_onboarding"]["ratio"]["rps"] for run in runs), "limit": "—", "met": None,
        "detail": ""}
    return out


def _verdict(target: dict) -> str:
    return "—" if target["met"] is None else ("met" if target["met"] else "**missed**")


def targets_table(results: list[dict]) -> str:
    """Measured against target, one column per database."""
    names = list(dict.fromkeys(name for result in results for name in result["targets"]))
    head = "| target | limit | " + " | ".join(r["database"] for r in results) + " |"
    lines = [head, "| --- | --- | " + " | ".join("---" for _ in results) + " |"]
    for name in names:
        first = next(r["targets"][name] for r in results if name in r["targets"])
        cells = []
        for r in results:
            t = r["targets"].get(name)
            cells.append("n/a" if t is None else f"{_fmt(t['values'])} ({_verdict(t)})")
        limits = list(dict.fromkeys(r["targets"][name]["limit"] for r in results if name in r["targets"]))
        limit = " / ".join(limits)  # the p95 limit differs by database
        lines.append(f"| {first['label']} | {limit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def details(result: dict) -> str:
    return "\n".join(f"- {t['label']}: {t['detail']}" for t in result["targets"].values() if t["detail"])


def markdown(result: dict) -> str:
    """One database's run as Markdown (benchmarks/results/<database>.md)."""
    return "\n".join([
        f"**{result['database']}** ({result['date']}, commit {result['commit']}, {result['seconds']:.0f} s; "
        f"load average before/after: {' '.join(map(str, result['load']['before']))} / "
        f"{' '.join(map(str, result['load']['after']))})",
        "",
        table(result),
        "",
        targets_table([result]),
        "",
        details(result),
        "",
    ])


def summary(results: list[dict]) -> str:
    """Both databases' targets side by side (benchmarks/results/summary.md)."""
    lines = [f"Measured against target ({', '.join(r['database'] + ' ' + r['date'] for r in results)}; "
             f"commit {results[0]['commit']}; {results[0]['machine']['cpus']} CPUs)", "", targets_table(results), ""]
    for r in results:
        lines += [f"{r['database']}:", "", details(r), ""]
    return "\n".join(lines)


def run_database(database_url: str, args, workdir: Path, sink: SmtpSink) -> dict:
    database = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    started = time.perf_counter()
    load_before = _loadavg()
    runs = measure(database_url, args, workdir, sink)
    result = {
        "database": "PostgreSQL" if database == "postgresql" else "SQLite",
        "command": "python -m benchmarks.run",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version},
        "settings": {"gunicorn": GUNICORN_SETTINGS, "wrk_threads": 1, "connections": CONNECTIONS,
                     "duration_s": args.duration, "rounds": args.rounds, "warmup_s": args.warmup,
                     "provision_duration_s": args.provision_duration},
        "routes": ROUTES,
        "runs": runs,
    }
    if not args.skip_worker_benchmark:
        print("  worker benchmark (benchmarks.worker) ...", flush=True)
        result["worker_benchmark"] = worker_benchmark(database_url, workdir)
    result["load"] = {"before": load_before, "after": _loadavg()}
    if database == "postgresql":
        engine = sa.create_engine(database_url.rsplit("/", 1)[0] + "/postgres", poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            result["machine"]["postgresql"] = conn.exec_driver_sql("SHOW server_version").scalar_one()
        engine.dispose()
    result["growth"] = growth(runs) if len(runs) > 1 else {}
    result["growth_vs_bare"] = growth_vs_bare(runs) if len(runs) > 1 else {}
    result["targets"] = targets(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgresql", help="which to run (default: sqlite,postgresql)")
    parser.add_argument("--postgresql-url", default=DEFAULT_POSTGRESQL,
                        help="PostgreSQL server URL; the benchmark creates <database>_<N> there and drops it after "
                             f"(default: {DEFAULT_POSTGRESQL}). SQLite files go to a temporary directory.")
    parser.add_argument("--sizes", default="1000,100000", help="comma-separated N (default: 1000,100000)")
    parser.add_argument("--duration", type=int, default=3, help="measured seconds per route and round (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per route and size; the best is reported")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per route (default 1)")
    parser.add_argument("--provision-duration", type=int, default=5, help="seconds of provisioning (default 5)")
    parser.add_argument("--provision-contacts", type=int, default=400,
                        help="QUALIFIED contacts offered to provisioning (default 400)")
    parser.add_argument("--inprocess-requests", type=int, default=300,
                        help="requests per in-process round (default 300)")
    parser.add_argument("--skip-worker-benchmark", action="store_true", help="leave out benchmarks.worker")
    parser.add_argument("--output-dir", default=str(RESULTS), help="where the JSON and Markdown go")
    parser.add_argument("--keep", action="store_true", help="keep the databases and the work directory")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk)")
    urls = {"sqlite": "sqlite:///", "postgresql": args.postgresql_url}
    chosen = [d.strip() for d in args.databases.split(",") if d.strip()]
    if not chosen or any(d not in urls for d in chosen):
        parser.error("--databases takes sqlite and/or postgresql")
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="onb_bench_"))
    sink = SmtpSink()
    results = []
    try:
        for database in chosen:
            result = run_database(urls[database], args, workdir, sink)
            results.append(result)
            (output / f"{database}.json").write_text(json.dumps(result, indent=2) + "\n")
            (output / f"{database}.md").write_text(markdown(result))
            print("\n" + markdown(result))
    finally:
        sink.stop()
    (output / "summary.md").write_text(summary(results))
    print("\n" + summary(results))
    print(f"written to {output}: " + ", ".join(f"{d}.json, {d}.md" for d in chosen) + ", summary.md")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"work directory (logs, wrk scripts): {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
