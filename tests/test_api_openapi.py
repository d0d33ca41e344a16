"""The OpenAPI 3.1 document at /api/v1/openapi.json: generated from the schemas, valid, and
naming every API route with its inputs and its answers (errors in the one error shape)."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

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
    # spectree's own pages are not served: the document is the only thing it adds.
    assert not [rule.rule for rule in app.url_map.iter_rules() if "apidoc" in rule.rule]


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


def _is_error_shape(document: dict, schema: dict) -> bool:
    """``{"error": {"code", "message", ...}}``, or a choice between such shapes."""
    schema = _resolve(document, schema)
    if "anyOf" in schema:
        return all(_is_error_shape(document, option) for option in schema["anyOf"])
    if "error" not in schema.get("required", []):
        return False
    error = _resolve(document, schema["properties"]["error"])
    return {"code", "message"} <= set(error.get("required", [])) and error["properties"]["code"]["type"] == "string"


def test_every_operation_documents_its_errors_with_the_error_schema(document):
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        public = operation.get("security") == []
        expected = {"429", "500"} | (set() if public else {"401", "403"})
        if method in ("post", "patch", "delete"):
            expected |= {"400"}
        if "{" in path:
            expected |= {"404"}
        if operation.get("requestBody"):
            expected |= {"413", "422"}
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            expected |= {"422"}
        assert expected <= set(responses), (method, path, expected - set(responses))
        for status, response in responses.items():
            if status == "204":  # no content
                continue
            if status == "200" and "application/json" not in response["content"]:  # a file download
                assert all(media["schema"]["format"] == "binary" for media in response["content"].values())
                continue
            schema = response["content"]["application/json"]["schema"]
            if status.startswith(("4", "5")):
                assert _is_error_shape(document, schema), (method, path, status)
                assert "Code" in response["description"] or "`" in response["description"], (method, path, status)
        invalid = _resolve(document, responses["422"]["content"]["application/json"]["schema"]) if "422" in responses else None
        if invalid:
            assert "fields" in _resolve(document, invalid["properties"]["error"])["required"]


def test_documented_parameters_match_the_handlers(document):
    listing = {p["name"] for p in document["paths"][f"{API}/crm/contacts"]["get"]["parameters"]}
    assert listing == {"status", "q", "page", "per_page"}
    feed = {p["name"] for p in document["paths"][f"{API}/feed"]["get"]["parameters"]}
    assert feed == {"type", "before", "limit"}
    schemas = document["components"]["schemas"]
    create = schemas["ContactCreate"]
    assert set(create["properties"]) == {"name", "email", "company", "phone", "role"}
    assert set(create["required"]) == {"name", "email"}
    assert create["additionalProperties"] is False
    update = schemas["ContactUpdate"]
    assert set(update["properties"]) == {"name", "email", "company", "phone", "role", "status"}
    assert "required" not in update and update["additionalProperties"] is False


def test_field_rules_are_documented_from_the_same_models(document):
    """The limits a request is checked against are the ones the document states."""
    create = document["components"]["schemas"]["ContactCreate"]["properties"]
    assert (create["name"]["maxLength"], create["name"]["minLength"]) == (200, 1)
    assert (create["email"]["format"], create["email"]["maxLength"]) == ("email", 254)
    assert create["phone"]["maxLength"] == 50 and create["phone"]["pattern"]
    assert create["role"]["enum"] == ["client", "partner"]
    per_page = next(p for p in document["paths"][f"{API}/crm/contacts"]["get"]["parameters"] if p["name"] == "per_page")
    assert per_page["schema"]["maximum"] == 100
    contact = document["components"]["schemas"]["Contact"]
    assert set(contact["required"]) == {"id", "name", "email", "company", "phone", "role", "status", "user_id",
                                        "created_at", "updated_at"}
    detail = document["components"]["schemas"]["ContactDetail"]
    assert "onboarding" in detail["properties"] and "onboarding" not in detail["required"]
