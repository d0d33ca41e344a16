"""The API's hot path in one process: the app against a bare Flask JSON view, side by side.

    .venv/bin/python -m benchmarks.inprocess                       # SQLite, N=1,000
    .venv/bin/python -m benchmarks.inprocess --database-url postgresql+psycopg://postgres@127.0.0.1:5432/onb_bench
    .venv/bin/python -m benchmarks.inprocess --profile api_onboarding   # cProfile, top functions
    .venv/bin/python -m benchmarks.inprocess --latency --sizes 1000,100000  # the flat routes' p50/p95
    .venv/bin/python -m benchmarks.inprocess --profile dashboard --n 100000

No server and no network: each route is called through Flask's test client in one thread, in
production mode with the rate limiter on (memory storage, as the README's production section
runs it), so what is measured is the app's own cost per request. The bare app (benchmarks.bare)
answers a constant JSON body as large as the route's answer through the same test client. The
rounds alternate between the bare view and the routes, and the best round of each is kept, so
other work on the machine hits both alike.

``--latency`` times the routes whose cost must not follow the data (``run.FLAT_ROUTES``: search,
list, the staff pages, the tracker), sent as benchmarks.run sends them (the same query strings,
the staff member's tokens, the staff page session), one request at a time: p50 and p95 of each
round, the best round kept, at each size, with the p50 growth from the first size to the last.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import secrets
import sys
import tempfile
import statistics
import time
from pathlib import Path

from . import bare, build, run

ROUTES = {
    "api_onboarding": "GET /api/v1/onboarding",
    "api_contacts": "GET /api/v1/crm/contacts?per_page=20",
}


def app_for(database_url: str):
    from onboarding_app import create_app

    return create_app({
        "APP_ENV": "production", "SECRET_KEY": secrets.token_hex(32), "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_SERVER": "127.0.0.1", "APP_BASE_URL": "http://127.0.0.1", "RATELIMIT_ENABLED": True,
        "RATELIMIT_STORAGE_URI": "memory://",
    })


def plans(data: build.BenchData) -> dict[str, list[tuple[str, dict]]]:
    """Per route, the requests to rotate over: many tokens, as many scripts would send (each
    token may make 600 requests a minute)."""
    return {
        "api_onboarding": [("/api/v1/onboarding", {"Authorization": f"Bearer {t}"}) for t, _ in data.user_tokens],
        "api_contacts": [("/api/v1/crm/contacts?per_page=20", {"Authorization": f"Bearer {t}"})
                         for t in data.staff_tokens],
    }


# The routes of run.FLAT_ROUTES, with their labels there (and the same requests: build.staff_gets).
LATENCY_ROUTES = {name: run.ROUTES[name] for name in run.FLAT_ROUTES}


def sign_in_staff(client, data: build.BenchData) -> None:
    """Sign the staff member in through /login (its CSRF token included); the test client keeps
    the session cookie, so the page requests need no header."""
    token = build.csrf_token(client.get("/login").get_data())
    response = client.post("/login", data={"email": data.staff_email, "password": data.staff_password,
                                           "csrf_token": token})
    if response.status_code != 302:
        raise RuntimeError(f"staff sign-in answered {response.status_code}")


def latency_plans(client, data: build.BenchData) -> dict[str, list[tuple[str, dict]]]:
    """Per route of LATENCY_ROUTES, the requests to rotate over (``client`` is signed in as staff
    here: its pages go without a header)."""
    sign_in_staff(client, data)
    staff = [{"Authorization": f"Bearer {t}"} for t in data.staff_tokens]
    return {name: [(path, {})] if page else [(path, h) for h in staff]
            for name, (path, page) in build.staff_gets(data).items()}


def _timed(client, requests: list[tuple[str, dict]], count: int) -> float:
    """Seconds per request over ``count`` requests (every answer checked)."""
    started = time.perf_counter()
    for i in range(count):
        path, headers = requests[i % len(requests)]
        response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.get_data(as_text=True)[:300]}")
    return (time.perf_counter() - started) / count


def measure(database_url: str, *, requests: int = 400, rounds: int = 5, app=None, data=None) -> dict:
    """req/s of each route and of the bare view with a body of the same size, best of
    ``rounds`` rounds taken in turn; the ratio is route / bare."""
    app = app or app_for(database_url)
    client = app.test_client()
    route_plans = plans(data)
    bare_clients = {}
    for name, reqs in route_plans.items():
        body = client.get(reqs[0][0], headers=reqs[0][1]).get_data()
        bare_app = bare.create_app(len(body))
        bare_clients[name] = bare_app.test_client()
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, reqs in route_plans.items():
            for key, c, r in ((f"bare_{name}", bare_clients[name], [("/", {})]), (name, client, reqs)):
                _timed(c, r, max(20, requests // 10))  # warm
                took = _timed(c, r, requests)
                best[key] = min(best.get(key, took), took)
    out = {}
    for name in route_plans:
        rps, bare_rps = 1 / best[name], 1 / best[f"bare_{name}"]
        out[name] = {"rps": round(rps, 1), "ms": round(best[name] * 1000, 3), "bare_rps": round(bare_rps, 1),
                     "bare_ms": round(best[f"bare_{name}"] * 1000, 3), "ratio": round(rps / bare_rps, 3)}
    return out


def _latencies(client, requests: list[tuple[str, dict]], count: int) -> list[float]:
    """Milliseconds of each of ``count`` requests (every answer checked)."""
    out = []
    for i in range(count):
        started = time.perf_counter()
        _timed(client, [requests[i % len(requests)]], 1)
        out.append((time.perf_counter() - started) * 1000)
    return out


def latency(sizes: dict[int, tuple], *, requests: int = 200, rounds: int = 3) -> dict[int, dict[str, dict]]:
    """p50 and p95 (ms) of each route of LATENCY_ROUTES at each size (N: (app, data)), one
    request at a time. The sizes take turns route by route and round by round, and of the
    rounds the one with the lowest p50 is kept (as benchmarks.run does), so other work on the
    machine hits every size alike."""
    clients = {n: app.test_client() for n, (app, _) in sizes.items()}
    route_plans = {n: latency_plans(clients[n], data) for n, (_, data) in sizes.items()}
    for n, client in clients.items():
        for reqs in route_plans[n].values():
            _latencies(client, reqs, max(10, requests // 10))  # warm
    best: dict[int, dict[str, dict]] = {n: {} for n in sizes}
    for _ in range(rounds):
        for name in LATENCY_ROUTES:
            for n, client in clients.items():
                took = sorted(_latencies(client, route_plans[n][name], requests))
                sample = {"p50_ms": round(statistics.median(took), 2),
                          "p95_ms": round(took[min(len(took) - 1, round(0.95 * (len(took) - 1)))], 2)}
                if name not in best[n] or sample["p50_ms"] < best[n][name]["p50_ms"]:
                    best[n][name] = sample
    return best


def latency_table(results: dict[int, dict[str, dict]]) -> str:
    sizes = list(results)
    lines = [f"{'route':24s} " + " ".join(f"{'N=' + format(n, ','):>19s}" for n in sizes) + "  p50 growth"]
    for name in LATENCY_ROUTES:
        cells = " ".join(f"{results[n][name]['p50_ms']:8.2f} / {results[n][name]['p95_ms']:8.2f}" for n in sizes)
        growth = results[sizes[-1]][name]["p50_ms"] / results[sizes[0]][name]["p50_ms"]
        lines.append(f"{name:24s} {cells}  {growth:.2f}x")
    return "\n".join(lines + ["(p50 / p95 in ms, one request at a time in process)"])


def profile(app, data, name: str, count: int = 2000, top: int = 30) -> str:
    client = app.test_client()
    reqs = plans(data)[name] if name in ROUTES else latency_plans(client, data)[name]
    _timed(client, reqs, 100)
    profiler = cProfile.Profile()
    profiler.enable()
    _timed(client, reqs, count)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="sqlite:///")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=sorted({*ROUTES, *LATENCY_ROUTES}),
                        help="print a cProfile of this route instead")
    parser.add_argument("--latency", action="store_true", help="p50/p95 of the flat routes at each of --sizes")
    parser.add_argument("--sizes", default="1000,100000", help="with --latency: the Ns, comma-separated")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="onb_inprocess_"))
    if args.latency:
        return latency_main(args, workdir)
    url = build.prepare_database(args.database_url, args.n, workdir)
    try:
        data = build.build(url, args.n, quiet=True)
        app = app_for(url)
        if args.profile:
            print(profile(app, data, args.profile))
            return 0
        for name, r in measure(url, requests=args.requests, rounds=args.rounds, app=app, data=data).items():
            print(f"{ROUTES[name]:42s} {r['rps']:8.0f} req/s ({r['ms']:.3f} ms)  bare {r['bare_rps']:8.0f} req/s "
                  f"({r['bare_ms']:.3f} ms)  ratio {r['ratio']:.2f}")
        with app.app_context():
            from onboarding_app.extensions import db

            db.engine.dispose()
    finally:
        build.drop_database(url)
    return 0


def latency_main(args, workdir: Path) -> int:
    """Build every size, time the flat routes on them in turns, drop them; print the table."""
    sizes: dict[int, tuple] = {}
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            url = build.prepare_database(args.database_url, n, workdir)
            sizes[n] = (app_for(url), build.build(url, n, quiet=True))
        print(latency_table(latency(sizes, requests=args.requests // 2, rounds=args.rounds)))
    finally:
        for app, data in sizes.values():
            with app.app_context():
                from onboarding_app.extensions import db

                db.engine.dispose()
            build.drop_database(data.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
