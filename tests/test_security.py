"""Password hashing parameters and policy, generated secrets."""

import pytest
from argon2 import extract_parameters

from onboarding_app.credentials import generate_temporary_password
from onboarding_app.security import (
    generate_api_token,
    hash_password,
    password_problems,
    verify_password,
)


def test_argon2id_meets_asvs_minimums(app):
    with app.app_context():
        digest = hash_password("violet-teapot-harbour-19")
        params = extract_parameters(digest)
        assert digest.startswith("$argon2id$")
        assert params.time_cost >= 2 and params.memory_cost >= 19 * 1024 and params.parallelism >= 1
        assert verify_password(digest, "violet-teapot-harbour-19")
        assert not verify_password(digest, "violet-teapot-harbour-18")
        assert hash_password("violet-teapot-harbour-19") != digest  # salted


@pytest.mark.parametrize("password,problem", [
    ("", "at least 12"),
    ("abc", "at least 12"),
    ("x" * 129, "at most 128"),
    ("qwerty123456", "commonly used"),
    ("password1234", "commonly used"),
    ("aaaaaaaaaaaa", "easy to guess"),
    ("ada@example.com1", "easy to guess"),
])
def test_weak_passwords_are_refused(password, problem):
    problems = password_problems(password, email="ada@example.com", name="Ada Lovelace")
    assert problems and problem in problems[0].lower()


@pytest.mark.parametrize("password", ["violet-teapot-harbour-19", "correct horse battery staple", "Tr0ub4dor&3-extended"])
def test_strong_passwords_pass(password):
    assert password_problems(password, email="ada@example.com", name="Ada Lovelace") == []


def test_temporary_passwords_are_random_and_pass_the_policy():
    seen = {generate_temporary_password() for _ in range(200)}
    assert len(seen) == 200
    sample = next(iter(seen))
    assert len(sample.replace("-", "")) == 20
    assert password_problems(sample) == []


def test_api_tokens_are_long_and_random():
    tokens = {generate_api_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) >= 46 for t in tokens)
