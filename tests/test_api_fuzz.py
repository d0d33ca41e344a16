"""Fuzzing: schemathesis generates requests from the OpenAPI document, valid and invalid, and
sends them to the WSGI app with a staff token. No answer may be a 5xx, break the document's
response schemas, or carry an undocumented status code.

Bounded so the suite stays fast: a few dozen examples per operation and mode, derandomized
(the same examples every run), no example database.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from onboarding_app import accounts, create_app
from onboarding_app.api.spec import document
from onboarding_app.extensions import db

from .conftest import USER_PASSWORD, base_config

API = "/api/v1"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}


def _operations() -> list[tuple[str, str, bool]]:
    """(method, path, whether there is any input to make invalid) for every documented operation."""
    with create_app(base_config("sqlite://")).test_request_context():
        paths = document()["paths"]
    return [
        (method.upper(), path, bool(op.get("parameters") or op.get("requestBody")))
        for path, item in paths.items()
        for method, op in item.items()
    ]


OPERATIONS = _operations()


@pytest.fixture
def app_config(app_config):
    return {**app_config, "API_RATE_LIMIT": "100000 per minute"}


@pytest.fixture
def staff_headers(app, make) -> dict[str, str]:
    """A staff token, and something to find: contacts in several states, one account."""
    make.user("staff", email="fuzz@example.com")
    make.contact("LEAD")
    make.contact("QUALIFIED")
    _, user_id = make.provisioned("client", email="fuzzed-client@example.com")
    with app.app_context():
        accounts.set_password(db.session, user_id, USER_PASSWORD)
        _, token = accounts.create_api_token(db.session, "fuzz@example.com")
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("method, path, has_input", OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_fuzz_operation(app, staff_headers, method, path, has_input):
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)
    operation = schema[path][method]
    for mode, max_examples in EXAMPLES.items():
        if mode is GenerationMode.NEGATIVE and not has_input:
            continue  # nothing to make invalid
        strategy = operation.as_strategy(generation_mode=mode, headers=staff_headers)

        @settings(
            max_examples=max_examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case):
            case.call_and_validate(headers=staff_headers, checks=CHECKS)

        run()
