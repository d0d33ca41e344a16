"""Password hashing parameters and policy, generated secrets."""

import pytest
from argon2 import Type, extract_parameters

from onboarding_app import create_app
from onboarding_app.credentials import generate_temporary_password
from onboarding_app.security import (
    generate_api_token,
    hash_password,
    password_problems,
    verify_password,
)

from .conftest import CHEAP_ARGON2, base_config


def test_argon2id_meets_asvs_minimums(tmp_path):
    """The production parameters: an app built without the suite's cheap Argon2 override."""
    config = {k: v for k, v in base_config(f"sqlite:///{tmp_path / 'unused.sqlite3'}").items() if k not in CHEAP_ARGON2}
    app = create_app(config)
    with app.app_context():
        digest = hash_password("violet-teapot-harbour-19")
        params = extract_parameters(digest)
        assert digest.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert (params.type, params.time_cost, params.memory_cost, params.parallelism) == (Type.ID, 2, 19 * 1024, 1)
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
