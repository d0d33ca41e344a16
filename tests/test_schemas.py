"""The field rules of schemas.py on their own: one rule per field, the same sentence from
every shape that uses it, and query strings where an empty value means "not given"."""

from __future__ import annotations

import pytest

from onboarding_app.errors import ValidationFailed
from onboarding_app.schemas import ContactCreate, ContactListQuery, ContactUpdate, FeedQuery, check, normalise_email


def refusal(model, data) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        check(model, data)
    return caught.value.fields


def test_email_is_checked_trimmed_and_lower_cased():
    assert normalise_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"
    assert check(ContactCreate, {"name": "Ada", "email": " ADA@example.com"}).email == "ada@example.com"
    for bad, sentence in [("", "Enter an email address."), (None, "Enter an email address."),
                          ("ada@", "Enter a valid email address"), ("a" * 250 + "@example.com", "An email address has at most 254")]:
        assert refusal(ContactCreate, {"name": "Ada", "email": bad})["email"].startswith(sentence), bad


BAD_VALUES = [
    ("name", "", "This field is required."),
    ("name", "  ", "This field is required."),
    ("name", None, "This field is required."),
    ("name", "N" * 201, "At most 200 characters."),
    ("name", 7, "Must be text."),
    ("company", "C" * 201, "At most 200 characters."),
    ("company", "a\x00b", "Contains a character that is not allowed."),
    ("phone", "call me", "Use digits, spaces and + ( ) - . / x only."),
    ("phone", "1" * 51, "At most 50 characters."),
    ("role", "admin", "Choose one of: client, partner."),
    ("role", "CLIENT", "Choose one of: client, partner."),
    ("email", "not-an-email", "Enter a valid email address"),
]


@pytest.mark.parametrize("field, value, sentence", BAD_VALUES, ids=[f"{f}={v!r}"[:40] for f, v, _ in BAD_VALUES])
def test_create_and_update_refuse_the_same_value_with_the_same_sentence(field, value, sentence):
    created = refusal(ContactCreate, {"name": "Ada", "email": "ada@example.com", field: value})
    updated = refusal(ContactUpdate, {field: value})
    assert created[field] == updated[field]
    assert created[field].startswith(sentence)


def test_unknown_fields_are_refused_and_the_known_ones_still_checked():
    fields = refusal(ContactUpdate, {"owner_id": 1, "status": "lead", "name": "Fine"})
    assert fields == {"owner_id": "Unknown field.",
                      "status": "Choose one of: LEAD, QUALIFIED, ONBOARDING, ACTIVE, LOST."}


def test_an_update_knows_which_fields_were_sent():
    update = check(ContactUpdate, {"company": None, "phone": " +44 20 "})
    assert update.model_dump(exclude_unset=True) == {"company": "", "phone": "+44 20"}
    assert check(ContactUpdate, {}).model_dump(exclude_unset=True) == {}


def test_query_strings_treat_empty_values_as_not_given():
    query = check(ContactListQuery, {"status": "", "q": "", "page": "", "per_page": "", "utm_source": "mail"})
    assert query.filters(default_per_page=25) == {"status": None, "q": "", "page": 1, "per_page": 25}
    query = check(ContactListQuery, {"status": "LEAD", "q": " ada ", "page": "3", "per_page": "100"})
    assert query.filters(default_per_page=25) == {"status": "LEAD", "q": "ada", "page": 3, "per_page": 100}


def test_query_strings_are_refused_field_by_field():
    error = pytest.raises(ValidationFailed, check, ContactListQuery, {"per_page": "101", "page": "1.5"}).value
    assert error.fields == {"per_page": "Must be at most 100.", "page": "Must be a whole number."}
    assert error.message == "Invalid filter."
    assert refusal(FeedQuery, {"before": "0", "limit": "ten"}) == {
        "before": "Must be at least 1.", "limit": "Must be a whole number."}
    assert check(FeedQuery, {"before": "9"}).filters(default_limit=20) == {"type": None, "before": 9, "limit": 20}
