"""The baseline: a bare Flask app answering every GET with one constant JSON body.

Served by ``benchmarks.run`` under the same gunicorn settings as the real app. The body has
the size of the app's ``GET /api/v1/onboarding`` answer (``BENCH_BODY_BYTES``), so the
difference between the two is what the app does, not what the network carries.
"""

import json
import os

from flask import Flask


def constant_body(size: int) -> bytes:
    """A JSON document of exactly ``size`` bytes (at least 16)."""
    body = json.dumps({"padding": ""}, separators=(",", ":"))
    return json.dumps({"padding": "x" * max(0, size - len(body))}, separators=(",", ":")).encode()


def create_app(body_bytes: int | None = None) -> Flask:
    app = Flask(__name__)
    body = constant_body(body_bytes if body_bytes is not None else int(os.environ.get("BENCH_BODY_BYTES", "600")))

    @app.get("/")
    def constant():
        return app.response_class(body, mimetype="application/json")

    return app


app = create_app()
