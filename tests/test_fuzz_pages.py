"""Property-based: every page route (the API has test_api_fuzz.py), with any path values, query
string and form fields (huge numbers, NUL, CR/LF, other scripts' digits), answers without a
5xx, signed in as staff. Derandomized and bounded, so it is fast and the same every run."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import IntegerConverter

from .conftest import csrf_token_from

NASTY = st.sampled_from(["\x00", "\r\n", "2147483648", "99999999999999999999999", "-1", "٣", "%00", "/", "//x",
                         "\t/evil.example", " ", ""])
TEXT = st.one_of(NASTY, st.text(max_size=30), st.integers(-(2**70), 2**70).map(str))
PARAMS = st.dictionaries(
    st.sampled_from(["before", "page", "per_page", "q", "status", "next", "email", "type", "limit", "origin"]),
    TEXT, max_size=4,
)
SKIP = {"static", "auth.logout"}  # logout would end the session the run needs


def _routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP or rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods & {"GET", "POST"}):
            yield rule, method


def _value(converter):
    if isinstance(converter, IntegerConverter):
        return st.integers(0, 2**80)
    return st.one_of(NASTY.filter(lambda v: v and "/" not in v), st.text(min_size=1, max_size=30).filter(lambda v: "/" not in v))


def test_no_page_route_answers_5xx(app, client, staff, make):
    make.contact("QUALIFIED")
    make.provisioned()
    token = csrf_token_from(client.get("/dashboard").get_data(as_text=True))
    routes = list(_routes(app))
    assert len(routes) > 10

    for rule, method in routes:
        values = st.fixed_dictionaries({name: _value(conv) for name, conv in rule._converters.items()})

        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(values=values, params=PARAMS, form=PARAMS)
        def run(values, params, form):
            with app.test_request_context():
                from flask import url_for

                try:
                    path = url_for(rule.endpoint, **values)
                except Exception:  # a value the route cannot even be built with
                    return
            data = {**form, "csrf_token": token} if method == "POST" else None
            response = client.open(path, method=method, query_string=params, data=data)
            assert response.status_code < 500, (method, path, params, form, response.status_code)

        run()
