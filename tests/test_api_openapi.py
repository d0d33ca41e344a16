"""The OpenAPI 3.1 document at /api/v1/openapi.json: valid, and naming every API route."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from onboarding_app import contacts

API = "/api/v1"
ROUTE_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def document(client) -> dict:
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_api_route_is_documented_and_nothing_else(app, document):
    rules = {
        (method.lower(), re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API + "/")
        for method in rule.methods & ROUTE_METHODS
    }
    documented = {
        (method, path) for path, item in document["paths"].items() for method in item if method.upper() in ROUTE_METHODS
    }
    assert documented == rules


def test_bearer_auth_is_the_security_scheme(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert {"bearerAuth": []} in document["security"]
    assert document["paths"][f"{API}/openapi.json"]["get"]["security"] == []


def _operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method.upper() in ROUTE_METHODS:
                yield method, path, operation


def _resolve(document: dict, node: dict) -> dict:
    while "$ref" in node:
        _, kind, name = node["$ref"].lstrip("#/").split("/")
        node = document["components"][kind][name]
    return node


def test_every_operation_documents_its_errors_with_the_error_schema(document):
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        public = operation.get("security") == []
        expected = {"429", "500"} | (set() if public else {"401", "403"})
        if method in ("post", "patch"):
            expected |= {"400"}
        if "{" in path:
            expected |= {"404"}
        if operation.get("requestBody"):
            expected |= {"413", "422"}
        assert expected <= set(responses), (method, path, expected - set(responses))
        for status, response in responses.items():
            response = _resolve(document, response)
            schema = response["content"]["application/json"]["schema"]
            if status.startswith(("4", "5")):
                names = re.findall(r"#/components/schemas/(\w+)", str(schema))
                assert {"Error", "ValidationError", "AlreadyProvisioned"} & set(names), (method, path, status)


def test_documented_parameters_match_the_handlers(document):
    listing = {p["name"] for p in document["paths"][f"{API}/crm/contacts"]["get"]["parameters"]}
    assert listing == {"status", "q", "page", "per_page"}
    feed = {p["name"] for p in document["paths"][f"{API}/feed"]["get"]["parameters"]}
    assert feed == {"type", "before", "limit"}
    create = document["components"]["schemas"]["ContactCreate"]
    assert set(create["properties"]) == contacts.CREATE_FIELDS
    assert set(create["required"]) == {"name", "email"}
    update = document["components"]["schemas"]["ContactUpdate"]
    assert set(update["properties"]) == contacts.UPDATE_FIELDS
